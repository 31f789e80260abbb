"""PerturbODE: interpretable neural ODEs for gene regulatory network discovery under perturbations.

The library behind the dashboard and the command line. It never imports streamlit.

Modules
-------
data         read, validate, describe and split perturbation data (AnnData)
interventions  intervention types and ``GENE:type=value+GENE2`` specs
model        the vector field ``A (alpha * sigma(Bx + b)) + c - gamma * x`` with interventions
train        ``fit()``: optimal-transport training with callbacks, stop and resume
checkpoint   safe save / load (``weights_only=True``)
grn          the network ``G = A diag(alpha) B`` and its exports
simulate     trajectories and perturbation effects
"""

__version__ = "0.1.0"

from perturbode_core.errors import PerturbODEError, PerturbODEWarning  # noqa: E402

__all__ = ["PerturbODEError", "PerturbODEWarning", "__version__"]
