"""Shared fixtures: a small teacher network, its data, and a model trained on it."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbode_core.datasets import teacher as synthetic
from perturbode_core.data.dataset import from_anndata
from perturbode_core.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def start_app():
    """Factory: a fresh dashboard session (AppTest of app.py) that has run once, demo loaded.

    The first run in a process prepares the demo model, hence the generous timeout.
    """
    from streamlit.testing.v1 import AppTest

    def start():
        return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()

    return start


@pytest.fixture(scope="session")
def teacher():
    return synthetic.teacher_model(12, seed=1)


@pytest.fixture(scope="session")
def teacher_adata(teacher):
    return synthetic.teacher_dataset(teacher, cells_per_condition=60, seed=1)


@pytest.fixture(scope="session")
def teacher_h5ad(teacher_adata, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "teacher.h5ad"
    teacher_adata.write_h5ad(path)
    return path


@pytest.fixture(scope="session")
def teacher_data(teacher_adata):
    return from_anndata(teacher_adata)


@pytest.fixture(scope="session")
def trained(teacher_data):
    """A model trained on all but two knockouts of the teacher (held out for prediction tests)."""
    held = ["G003", "G007"]
    train_conditions = [c for c in teacher_data.conditions if c not in held]
    cfg = TrainConfig(epochs=60, cells_per_condition=32, batch_conditions=12, seed=0)  # the default rates
    result = fit(teacher_data, train_config=cfg, train_conditions=train_conditions)
    result.heldout = held
    return result


@pytest.fixture(scope="session")
def truth_matrix():
    """Function: edge table -> 0/1 matrix T[target, source]."""
    return _truth_matrix


def _truth_matrix(edges, genes):
    idx = {g: i for i, g in enumerate(genes)}
    T = np.zeros((len(genes), len(genes)))
    for s, t in zip(edges["source"], edges["target"]):
        T[idx[t], idx[s]] = 1
    return T


@pytest.fixture(scope="session")
def sem_data():
    """Function ``(seed=0, n=60, p=10) -> (PerturbationData, truth edges)``: a linear SEM's screen."""
    return _sem_data


def _sem_data(seed=0, n=60, p=10):
    """Control + single knockouts (+ one double) of a linear acyclic SEM with known edges."""
    rng = np.random.default_rng(seed)
    genes = [f"g{k}" for k in range(p)]
    W = np.zeros((p, p))
    W[1, 0], W[3, 2], W[5, 4], W[7, 6] = 1.0, -1.0, 0.8, 1.2
    mu = np.full(p, 3.0)
    conds = ["control"] + genes[:8] + ["g0+g2"]
    Xs, labs = [], []
    for c in conds:
        ko = [] if c == "control" else [genes.index(g) for g in c.split("+")]
        x = mu + 0.3 * rng.standard_normal((n, p))
        for i in range(p):  # topological order: parents have lower index
            if i in ko:
                x[:, i] = 0.05 * np.abs(rng.standard_normal(n))
            else:
                x[:, i] += (x - mu) @ W[i]
        Xs.append(x)
        labs += [c] * n
    adata = ad.AnnData(np.vstack(Xs).astype(np.float32),
                       obs=pd.DataFrame({"perturbation": labs}, index=[f"c{i}" for i in range(len(labs))]),
                       var=pd.DataFrame(index=genes))
    truth = pd.DataFrame({"source": ["g0", "g2", "g4", "g6"], "target": ["g1", "g3", "g5", "g7"],
                          "sign": [1, -1, 1, 1]})
    return from_anndata(adata), truth
