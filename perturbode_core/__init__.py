"""PerturbODE: interpretable neural ODEs for gene regulatory network discovery under perturbations.

The library behind the dashboard and the command line; it never imports streamlit. The names a
user needs are here; everything else lives in the sub-packages (one job each, data flowing one
way: ``data`` -> ``model`` -> ``train`` -> ``io.checkpoint`` -> ``tools`` -> ``plots``)::

    import perturbode_core as po

    data = po.load_data("screen.h5ad", control="non-targeting", normalize=True)
    result = po.fit(data, train_config=po.TrainConfig(epochs=200))
    edges = po.tools.grn.model_edges(result.model, top_k=100)
    ckpt = po.load("run/model.pt", genes=data.gene_names)   # model, history, settings

Sub-packages
------------
io        files: ``.h5ad`` reading, checkpoints, edge tables, atomic writes
data      the dataset object, interventions, splits
model     the vector field, its options and solvers
train     ``fit`` and its options
tools     network, simulation, modules, enrichment, baselines, metrics, evaluation, report
plots     plotly figure builders
datasets  built-in datasets and the simulator of screens with a known network
cli       ``python -m perturbode_core`` / ``perturbode``
"""

__version__ = "0.1.0"

import importlib

from perturbode_core.errors import PerturbODEError, PerturbODEWarning

#: Public names -> the module that owns them. Imported on first use (PEP 562), so that
#: ``import perturbode_core`` and the command line start without loading torch, plotly or scanpy;
#: an import error in any of them surfaces as it is, never as a silent fallback.
_LAZY = {
    "PerturbationData": "perturbode_core.data.dataset",
    "load_data": ("perturbode_core.data.dataset", "load"),
    "Checkpoint": "perturbode_core.io.checkpoint",
    "load": ("perturbode_core.io.checkpoint", "load_checkpoint"),
    "ModelConfig": "perturbode_core.model",
    "PerturbODE": "perturbode_core.model",
    "FitResult": "perturbode_core.train",
    "TrainConfig": "perturbode_core.train",
    "fit": "perturbode_core.train",
}
_SUBPACKAGES = ("cli", "data", "datasets", "io", "model", "plots", "tools", "train")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"perturbode_core.{name}")
    if name in _LAZY:
        owner = _LAZY[name]
        module, attr = owner if isinstance(owner, tuple) else (owner, name)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'perturbode_core' has no attribute {name!r}")


__all__ = ["PerturbODEError", "PerturbODEWarning", "__version__", *_LAZY, *_SUBPACKAGES]
