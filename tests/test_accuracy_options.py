"""Known answers for the model and training options behind the defaults (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perturbode_core.data.dataset import PerturbationData, from_anndata
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train import TrainConfig, fit
from perturbode_core.train.warmup import fit_means


def _model(**kw):
    p = 6
    return PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=4, **kw), mean=np.zeros(p), scale=np.ones(p),
                      control_level=np.ones(p), seed=2)


def test_paired_control_is_the_difference_of_trajectories_and_keeps_controls():
    cells = np.random.default_rng(0).normal(1.0, 0.5, size=(9, 6)).astype(np.float32)
    plain, paired = _model(), _model(paired_control=True)
    with torch.no_grad():
        for m in (plain, paired):
            m.A.mul_(3.0)
    out = plain.simulate(cells, ["control", "g1", "g2:overexpression"])
    both = paired.simulate(cells, ["control", "g1", "g2:overexpression"])
    assert np.allclose(both[-1, 0], cells, atol=1e-6)  # controls stay exactly what they were
    assert np.allclose(both[-1, 1], cells + out[-1, 1] - out[-1, 0], atol=1e-5)
    alone = paired.simulate(cells, ["g1"])  # no control in the batch: one is added for the pairing
    assert np.allclose(alone[-1, 0], both[-1, 1], atol=1e-5)
    # the spread of the start cells is carried over instead of relaxing onto the fixed point
    assert both[-1, 1].std(0).mean() > 2 * out[-1, 1].std(0).mean()


def test_unseen_overexpression_uses_the_learned_shared_strength():
    """Every overexpression in the data is 3x the default strength: a target never overexpressed
    in training is then predicted at the strength learned from the others, not at the default."""
    from perturbode_core.datasets.teacher import teacher_dataset, teacher_model

    truth = teacher_model(12, seed=4)
    with torch.no_grad():
        truth.log_delta_shared.fill_(np.log(3.0))
    genes = truth.gene_names
    adata = teacher_dataset(truth, perturbations=[f"{g}:overexpression" for g in genes[:9]], cells_per_condition=40,
                            noise=0.05, seed=3)
    data = from_anndata(adata)
    held = f"{genes[8]}:overexpression"
    train = [c for c in data.conditions if c != held]
    ctrl = data.control_cells()
    observed = data.X[data.cells_of(held)].mean(0) - ctrl.mean(0)
    own_error = {}
    for learn in (False, True):
        r = fit(data, model_config=ModelConfig(learn_shift=learn, n_modules=12, paired_control=True),
                train_config=TrainConfig(epochs=1, warmup_steps=400, seed=0), train_conditions=train)
        predicted = r.model.simulate(ctrl, [held])[-1, 0].mean(0) - ctrl.mean(0)
        own_error[learn] = abs(float(predicted[8] - observed[8])) / abs(float(observed[8]))
        if learn:
            shared = float(r.model.log_delta_shared.detach().exp())
            # the unseen target gets the shared strength (in data units: divided by its scale)
            assert float((r.model.delta[8] * r.model.scale[8]).detach()) == pytest.approx(shared, rel=1e-5)
    assert own_error[True] < 0.25 < own_error[False]


def test_perturbation_offset_learns_the_response_all_perturbed_cells_share(teacher_data, teacher_adata):
    """Add the same shift to every perturbed cell: with the offset, a held-out knockout is
    predicted with that shift on genes it does not regulate; without it, not."""
    held = "G004"
    truth = teacher_adata.uns["true_edges"]
    regulated = {t for s_, t in zip(truth["source"], truth["target"]) if s_ == held} | {held}
    genes = [i for i, g in enumerate(teacher_data.gene_names) if g not in regulated][:3]
    shared = np.zeros(teacher_data.n_genes, np.float32)
    shared[genes] = 0.8
    X = teacher_data.X.copy()
    X[teacher_data.labels != teacher_data.control] += shared
    data = PerturbationData(X=X, gene_names=list(teacher_data.gene_names), labels=teacher_data.labels,
                            control=teacher_data.control, conditions=list(teacher_data.conditions),
                            interventions=dict(teacher_data.interventions))
    train = [c for c in data.conditions if c != held]
    ctrl = data.control_cells()
    observed = data.X[data.cells_of(held)].mean(0) - ctrl.mean(0)
    err = {}
    for mode in ("none", "per_type"):
        r = fit(data, model_config=ModelConfig(perturbation_offset=mode, paired_control=True),
                train_config=TrainConfig(epochs=1, warmup_steps=400, seed=0), train_conditions=train)
        predicted = r.model.simulate(ctrl, [held])[-1, 0].mean(0) - ctrl.mean(0)
        err[mode] = float(np.abs(predicted[genes] - observed[genes]).mean())
    assert err["none"] > 0.6 and err["per_type"] < 0.4 * err["none"]  # the shared 0.8 is missed without


def test_means_phase_fits_the_condition_means(teacher_data, teacher_adata, truth_matrix):
    from perturbode_core.tools.grn import grn_matrix
    from perturbode_core.tools.metrics import network_metrics

    r = fit(teacher_data, train_config=TrainConfig(epochs=1, warmup_steps=600, seed=0))
    assert r.events[0].startswith("means phase: 600 steps")
    error = float(r.events[0].split("error ")[1].split()[0])
    assert error < 0.01  # the mean shifts of every condition are explained
    truth = teacher_adata.uns["true_edges"]
    import pandas as pd

    aupr = network_metrics(grn_matrix(r.model), pd.DataFrame(truth), teacher_data.gene_names)["aupr"]
    assert aupr > 0.6  # density is ~0.18


def test_cosine_schedule_and_resume_keep_the_rate():
    cfg = TrainConfig(epochs=11, learning_rate=0.02, lr_schedule="cosine")
    assert cfg.learning_rate_at(1) == pytest.approx(0.02)
    assert cfg.learning_rate_at(11) == pytest.approx(0.001)
    assert cfg.learning_rate_at(6) == pytest.approx(0.02 * (0.05 + 0.95 * 0.5))
    assert TrainConfig(learning_rate=0.01).learning_rate_at(7) == 0.01
