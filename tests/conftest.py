"""Shared fixtures: a small teacher network, its data, and a model trained on it."""

from __future__ import annotations

import numpy as np
import pytest

from perturbode_core import synthetic
from perturbode_core.data import from_anndata
from perturbode_core.train import TrainConfig, fit


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
    cfg = TrainConfig(epochs=60, learning_rate=0.02, cells_per_condition=32, batch_conditions=12, seed=0)
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
