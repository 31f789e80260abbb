"""Cached, pure loaders: built-in datasets and the demo checkpoint.

Only pure functions are cached (same arguments, same result, no session state), with
``st.cache_resource`` for objects shared read-only by every session (datasets: never modify them)
and ``st.cache_data`` for bytes (each caller gets its own copy; a model built from them is private
to the session, so training or editing it never leaks into another session).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import streamlit as st

from perturbode_core import datasets
from perturbode_core.data import dataset as pdata
from perturbode_core.io.edges import truth_from_uns

# torch-backed modules (the teacher network, training, checkpoints) are imported where they are
# used: the first page shows the data without loading torch

log = logging.getLogger(__name__)

#: The dataset loaded on first start.
DEMO_DATASET = "myeloid"
#: The real screen offered beside it (a choice on the Data page).
REAL_DEMO_DATASET = "papalexi2021"
#: A 12-gene teacher network with known edges, simulated in a second (no file behind it).
SYNTHETIC_DATASET = "synthetic-12"
#: Seconds the fallback demo model may train when no demo checkpoint is shipped.
FALLBACK_TRAIN_SECONDS = 5.0


def builtin_datasets() -> list[str]:
    """Names of the built-in datasets (the simulated demo and the real screen first), then the
    synthetic one."""
    names = sorted(datasets.dataset_names(), key=lambda n: (n != DEMO_DATASET, n != REAL_DEMO_DATASET, n))
    return names + [SYNTHETIC_DATASET]


def dataset_label(name: str) -> str:
    """How the Data page names a built-in dataset: with what kind of data it is."""
    if name == SYNTHETIC_DATASET:
        return f"{name} (simulated, known network)"
    kind = datasets.dataset_info(name)["kind"]
    demo = ", demo model" if has_demo_model(name) else ""
    return f"{name} ({'simulated, known network' if kind == 'simulated' else 'real screen, no known network'}{demo})"


def has_demo_model(name: str) -> bool:
    """Whether loading built-in dataset ``name`` also loads its trained demo model: the two demos (the
    simulated one and the real screen), when their checkpoint ships."""
    return name in (DEMO_DATASET, REAL_DEMO_DATASET) and datasets.demo_checkpoint_path(name) is not None


def demo_dataset() -> str:
    """The dataset shown on first start."""
    return DEMO_DATASET


def dataset_description(name: str) -> str:
    """A one-line description of a built-in dataset."""
    if name == SYNTHETIC_DATASET:
        return "12 genes simulated by a teacher PerturbODE with a known sparse network (knockout of every gene)."
    return datasets.dataset_info(name)["description"] if name in datasets.dataset_names() else ""


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=8)
def load_builtin_anndata(name: str):
    """The AnnData of a built-in dataset (shared by all sessions: read only)."""
    if name == SYNTHETIC_DATASET:
        from perturbode_core.datasets import teacher

        return teacher.teacher_dataset(teacher.teacher_model(12, seed=0), cells_per_condition=80, seed=0)
    return datasets.load_dataset(name)


@st.cache_resource(show_spinner="Preparing the dataset…", max_entries=8)
def load_builtin(name: str):
    """A built-in dataset as ``(PerturbationData, truth edges or None, warnings)``; shared, read only."""
    adata = load_builtin_anndata(name)
    options = {} if name == SYNTHETIC_DATASET else datasets.load_options(name)  # e.g. the real screen's
    key = options.pop("perturbation_key", None) or pdata.guess_perturbation_key(adata.obs) or "perturbation"
    control = options.pop("control", None) or (pdata.guess_control_label(adata.obs[key])
                                                 if key in adata.obs.columns else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = pdata.from_anndata(adata, perturbation_key=key, control=control, source=name, **options)
    truth = datasets.truth_edges(name) if name != SYNTHETIC_DATASET else truth_from_uns(adata)
    return data, truth, [str(w.message) for w in caught]


def shipped_demo_checkpoint(name: str) -> Path | None:
    """The checkpoint shipped for dataset ``name`` (None when there is none)."""
    return datasets.demo_checkpoint_path(name) if name != SYNTHETIC_DATASET else None


@st.cache_data(show_spinner="Preparing the demo model…", max_entries=4)
def demo_checkpoint_bytes(name: str) -> bytes:
    """Checkpoint bytes of the demo model for dataset ``name``.

    The shipped checkpoint when there is one (checked, genes included, when it is loaded);
    otherwise a quick model trained here for at most :data:`FALLBACK_TRAIN_SECONDS` (once per
    server: the result is cached).
    """
    from perturbode_core.train import TrainConfig, fit

    data = load_builtin(name)[0]
    shipped = shipped_demo_checkpoint(name)
    if shipped is not None:
        return shipped.read_bytes()
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


#: Seconds between the first page's script run and the start of the background warm-up.
WARM_UP_DELAY_S = 6.0


@st.cache_resource
def warm_up() -> threading.Thread:
    """Prepare, once per server and in the background, what the first clicks would wait for.

    The first ``torch.optim.Adam`` of a process imports torch._dynamo (3-4 s) and the first UMAP
    compiles numba kernels (8 s); doing both while the user reads the first page makes the first
    Start training and the first UMAP respond at once. ``app.py`` calls this after the first page's
    script has run; the work starts :data:`WARM_UP_DELAY_S` later, once the browser has fetched the
    page's scripts and drawn it. Why the delay: the warm-up holds Python's interpreter lock for
    long stretches (importing torch, compiling numba kernels; a thread's OS priority does not
    change the lock), and the server thread that sends the page's elements and its JavaScript
    chunks (4.7 MB for the charts) needs that lock too: started at once, it delayed the first
    page's content by 0.3-3.5 s (benchmarks/results/dashboard.md).
    """
    def work():
        try:  # Linux schedules threads as tasks: this one yields the CPU to every request meanwhile
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        try:
            from perturbode_core.tools.embedding import warm_up_umap

            warm_up_umap()
        except Exception:  # noqa: BLE001 - a missing optional part only makes the first UMAP slower
            log.exception("UMAP warm-up failed")

    # modules both threads import (the UMAP stack pulls in PIL; Streamlit checks PIL.Image when it
    # writes a value): imported here first, on the script thread, so the two threads never import
    # them at once (CI saw "partially initialized module 'PIL.Image'" from that race)
    import PIL.Image  # noqa: F401

    thread = threading.Timer(WARM_UP_DELAY_S, work)
    thread.name, thread.daemon = "perturbode-warm-up", True
    thread.start()
    return thread
