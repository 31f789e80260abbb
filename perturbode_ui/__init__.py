"""Streamlit glue of the PerturbODE dashboard (the core, ``perturbode_core``, never imports this).

Modules
-------
state     the one typed session state (:class:`~perturbode_ui.state.AppState`, :func:`get_state`)
jobs      the background training worker (:class:`~perturbode_ui.jobs.TrainingJob`) and estimates
loaders   cached pure loaders: built-in datasets and the demo checkpoint
widgets   small shared page helpers (error display, "needs data / model" guards)
"""
