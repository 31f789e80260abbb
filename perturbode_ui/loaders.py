"""Cached, pure loaders: built-in datasets and the demo checkpoint.

Only pure functions are cached (same arguments, same result, no session state), with
``st.cache_resource`` for objects shared read-only by every session (datasets: never modify them)
and ``st.cache_data`` for bytes (each caller gets its own copy; a model built from them is private
to the session, so training or editing it never leaks into another session).

The dataset registry (``perturbode_core.datasets``) may be missing parts; every lookup goes
through :func:`_registry_call` and falls back to a small synthetic dataset with a known network,
so the dashboard always starts.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import streamlit as st

from perturbode_core.data import dataset as pdata

log = logging.getLogger(__name__)

#: The dataset loaded on first start.
DEMO_DATASET = "myeloid"
#: Always available, even without the registry: a 12-gene teacher network with known edges.
SYNTHETIC_DATASET = "synthetic-12"
#: Seconds the fallback demo model may train when no demo checkpoint is shipped.
FALLBACK_TRAIN_SECONDS = 5.0


def _registry():
    try:
        from perturbode_core import datasets
    except Exception:  # the registry is optional; the synthetic dataset always works
        log.exception("dataset registry could not be imported")
        return None
    return datasets


def _registry_call(name: str, *args, **kwargs):
    """Call ``perturbode_core.datasets.<name>`` if it exists, else return None."""
    reg = _registry()
    fn = getattr(reg, name, None) if reg is not None else None
    if fn is None:
        return None
    return fn(*args, **kwargs)


def _names_of(listing) -> list[str]:
    """Dataset names from whatever ``list_datasets()`` returns (list, dict or DataFrame)."""
    if listing is None:
        return []
    if isinstance(listing, pd.DataFrame):
        col = "name" if "name" in listing.columns else listing.columns[0]
        return [str(v) for v in listing[col]]
    if isinstance(listing, dict):
        return [str(k) for k in listing]
    out = []
    for item in listing:
        out.append(str(item if isinstance(item, str) else getattr(item, "name", item)))
    return out


def builtin_datasets() -> list[str]:
    """Names of the built-in datasets (the demo first), plus the synthetic fallback."""
    try:
        names = _names_of(_registry_call("list_datasets"))
    except Exception:
        log.exception("list_datasets failed")
        names = []
    names = sorted(names, key=lambda n: (n != DEMO_DATASET, n))
    return names + [SYNTHETIC_DATASET]


def demo_dataset() -> str:
    """The dataset shown on first start: ``myeloid`` when shipped, else the synthetic one."""
    names = builtin_datasets()
    return DEMO_DATASET if DEMO_DATASET in names else SYNTHETIC_DATASET


def dataset_description(name: str) -> str:
    """A one-line description of a built-in dataset (empty when unknown)."""
    if name == SYNTHETIC_DATASET:
        return "12 genes simulated by a teacher PerturbODE with a known sparse network (knockout of every gene)."
    try:
        listing = _registry_call("list_datasets")
    except Exception:
        return ""
    if isinstance(listing, pd.DataFrame) and "description" in listing.columns:
        col = "name" if "name" in listing.columns else listing.columns[0]
        hit = listing.loc[listing[col].astype(str) == name, "description"]
        return str(hit.iloc[0]) if len(hit) else ""
    if isinstance(listing, dict):
        v = listing.get(name)
        if isinstance(v, dict):
            return str(v.get("description", ""))
        return v if isinstance(v, str) else str(getattr(v, "description", "") or "")
    for item in listing or []:
        if getattr(item, "name", None) == name:
            return str(getattr(item, "description", "") or "")
    return ""


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=8)
def load_builtin_anndata(name: str):
    """The AnnData of a built-in dataset (shared by all sessions: read only)."""
    if name == SYNTHETIC_DATASET:
        from perturbode_core.datasets import teacher as synthetic

        return synthetic.teacher_dataset(synthetic.teacher_model(12, seed=0), cells_per_condition=80, seed=0)
    adata = _registry_call("load_dataset", name)
    if adata is None:
        from perturbode_core.errors import PerturbODEError

        raise PerturbODEError(f"Unknown built-in dataset {name!r}", where="dataset registry",
                              fix=f"Choose one of: {', '.join(builtin_datasets())}")
    return adata


def truth_from_uns(uns) -> pd.DataFrame | None:
    """A ground-truth edge list stored in ``uns['true_edges']`` (dict of columns or DataFrame)."""
    edges = (uns or {}).get("true_edges") if hasattr(uns, "get") else None
    if edges is None:
        return None
    try:
        df = pd.DataFrame(edges)
    except Exception:
        return None
    return df if {"source", "target"} <= set(df.columns) else None


@st.cache_resource(show_spinner="Preparing the dataset…", max_entries=8)
def load_builtin(name: str):
    """A built-in dataset as ``(PerturbationData, truth edges or None, warnings)``; shared, read only."""
    adata = load_builtin_anndata(name)
    key = pdata.guess_perturbation_key(adata.obs) or "perturbation"
    control = pdata.guess_control_label(adata.obs[key]) if key in adata.obs.columns else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = pdata.from_anndata(adata, perturbation_key=key, control=control, source=name)
    truth = None
    try:
        truth = _registry_call("truth_edges", name) if name != SYNTHETIC_DATASET else None
    except Exception:
        log.exception("truth_edges(%s) failed", name)
    if truth is None:
        truth = truth_from_uns(adata.uns)
    if truth is not None and not isinstance(truth, pd.DataFrame):
        truth = pd.DataFrame(truth)
    return data, truth, [str(w.message) for w in caught]


def _shipped_checkpoint(name: str) -> Path | None:
    """The shipped demo checkpoint of dataset ``name``, if the registry has one."""
    for fn, args in (("demo_checkpoint_path", (name,)), ("demo_checkpoint_path", ()),
                     ("checkpoint_path", (name,))):
        try:
            path = _registry_call(fn, *args)
        except TypeError:
            continue
        except Exception:
            log.exception("%s failed", fn)
            continue
        if path is not None and Path(path).is_file():
            return Path(path)
    return None


@st.cache_data(show_spinner="Preparing the demo model…", max_entries=4)
def demo_checkpoint_bytes(name: str) -> bytes:
    """Checkpoint bytes of the demo model for dataset ``name``.

    The shipped checkpoint when there is one and it fits the data; otherwise a quick model trained
    here for at most :data:`FALLBACK_TRAIN_SECONDS` (once per server: the result is cached).
    """
    from perturbode_core.io import checkpoint
    from perturbode_core.train.loop import TrainConfig, fit

    data = load_builtin(name)[0]
    shipped = _shipped_checkpoint(name) if name != SYNTHETIC_DATASET else None
    if shipped is not None:
        try:
            checkpoint.check_genes(checkpoint.load_checkpoint(shipped), data.gene_names, where=str(shipped))
            return shipped.read_bytes()
        except Exception:
            log.exception("shipped demo checkpoint %s is unusable; training a quick one", shipped)
    stop = threading.Event()
    t0 = time.perf_counter()

    def cb(_p):
        if time.perf_counter() - t0 > FALLBACK_TRAIN_SECONDS:
            stop.set()

    cfg = TrainConfig(epochs=40, learning_rate=0.02, cells_per_condition=32, batch_conditions=16, seed=0)
    with tempfile.TemporaryDirectory(prefix="perturbode-demo-") as tmp:
        path = Path(tmp) / "model.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(data, train_config=cfg, callback=cb, stop=stop, checkpoint_path=path)
        return path.read_bytes()


@st.cache_resource
def warm_up() -> threading.Thread:
    """Import torch's optimiser machinery once per server in the background.

    The first ``torch.optim.Adam`` of a process imports torch._dynamo (3-4 s); doing it while
    the user reads the first page makes their first Start training click respond at once.
    """
    def work():
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    thread = threading.Thread(target=work, name="perturbode-warm-up", daemon=True)
    thread.start()
    return thread
