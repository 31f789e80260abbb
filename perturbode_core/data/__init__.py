"""The dataset: :class:`~perturbode_core.data.dataset.PerturbationData` read from an AnnData
(``dataset``), interventions and their specs (``interventions``), held-out and validation splits
(``splits``), per-gene statistics (``gene_stats``)."""
