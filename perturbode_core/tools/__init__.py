"""What you do with a trained model (each module one job).

Modules
-------
grn           the network G = A diag(alpha) B read off the model
simulate      trajectories and per-gene perturbation effects
modules       the hidden units as gene modules: members, summaries, module network
enrichment    gene-set libraries and over-representation in modules
baselines     the simple methods every number is shown beside
metrics       network and prediction metrics, the interventional check, stability over seeds
evaluate      a model beside the baselines (scores, benchmark, seed stability)
network_view  edges against a known network, a gene's neighbourhood
embedding     2-D embeddings of cells (PCA, UMAP)
report        the self-contained HTML report and figure export
fdr           Benjamini-Hochberg
"""

import importlib

_MODULES = ("baselines", "embedding", "enrichment", "evaluate", "fdr", "grn", "metrics", "modules", "network_view",
            "report", "simulate")


def __getattr__(name: str):
    # sub-modules load on first use (PEP 562): a command that needs one tool does not import all
    if name in _MODULES:
        return importlib.import_module(f"perturbode_core.tools.{name}")
    raise AttributeError(f"module 'perturbode_core.tools' has no attribute {name!r}")


__all__ = list(_MODULES)
