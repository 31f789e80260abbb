"""Targets outside the measured genes enter the model as latent regulators (issue 11, model side)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perturbode_core.data.dataset import PerturbationData
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import load_checkpoint, save_checkpoint
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.tools import grn
from perturbode_core.train import TrainConfig, fit

HIDDEN = "G000"


def _without_gene(data: PerturbationData, gene: str) -> PerturbationData:
    """The same screen with ``gene`` not measured (its column removed; its knockout kept)."""
    keep = [i for i, g in enumerate(data.gene_names) if g != gene]
    return PerturbationData(X=np.ascontiguousarray(data.X[:, keep]), gene_names=[data.gene_names[i] for i in keep],
                            labels=data.labels, control=data.control, conditions=list(data.conditions),
                            interventions=dict(data.interventions), obs=data.obs, source="teacher without G000")


@pytest.fixture(scope="module")
def hidden_data(teacher_data):
    return _without_gene(teacher_data, HIDDEN)


@pytest.fixture(scope="module")
def hidden_fit(hidden_data):
    cfg = TrainConfig(epochs=60, learning_rate=0.02, cells_per_condition=32, batch_conditions=12, seed=0)
    return fit(hidden_data, train_config=cfg)


def test_data_lists_unmeasured_targets(hidden_data):
    assert hidden_data.unmeasured_targets == [HIDDEN]
    model = PerturbODE.from_data(hidden_data)
    assert model.latent_names == [HIDDEN] and model.n_latent == 1
    assert tuple(model.W_latent.shape) == (model.n_modules, 1)


def test_latent_knockout_encodes_a_module_input_and_control_stays_fixed(hidden_data):
    model = PerturbODE.from_data(hidden_data, ModelConfig(n_modules=6), seed=3)
    with torch.no_grad():
        model.W_latent.normal_()
    batch = model.encode(["control", f"{HIDDEN}:knockout", f"{HIDDEN}:knockdown=0.25",
                          f"{HIDDEN}:overexpression=2"])
    assert batch.has_latent and not batch.has_clamp
    assert batch.latent[:, 0, 0].tolist() == pytest.approx([0.0, -1.0, -0.25, 2.0])
    z = model.anchor.expand(4, 1, -1)
    f = model.vector_field(z, batch)
    assert torch.allclose(f[0], torch.zeros_like(f[0]), atol=1e-5)  # control: still a fixed point
    assert f[1].abs().max() > 1e-3  # the knockout moves the modules' input, hence the genes
    # the input it adds is exactly -W_latent (knockout: level 1 -> 0)
    u_ko = model.module_input(z[1:2], batch.select([1]))
    u_ctrl = model.module_input(z[0:1])
    assert torch.allclose(u_ko - u_ctrl, -model.W_latent[:, 0].view(1, 1, -1), atol=1e-5)


def test_unmeasured_target_never_seen_is_refused_with_the_reason(hidden_data):
    model = PerturbODE.from_data(hidden_data)
    with pytest.raises(PerturbODEError, match="not in the model's genes: IRF1"):
        model.encode(["IRF1:knockout"])
    with pytest.raises(PerturbODEError, match="cannot be clamped"):
        model.encode([f"{HIDDEN}:clamp=1"])


def test_trained_latent_knockout_moves_its_true_targets(hidden_fit, hidden_data, teacher_data, teacher_adata):
    """G000 is not measured, yet its knockout's learned effect matches what the data show, and its
    strongest latent edges are its true targets."""
    model = hidden_fit.model
    ctrl = hidden_data.control_cells()
    pred = model.simulate(ctrl, [f"{HIDDEN}:knockout"])[-1, 0].mean(0) - ctrl.mean(0)
    obs = hidden_data.X[hidden_data.cells_of(HIDDEN)].mean(0) - ctrl.mean(0)
    assert np.corrcoef(pred, obs)[0, 1] > 0.8
    truth = teacher_adata.uns["true_edges"]
    targets = {t for s, t in zip(truth["source"], truth["target"]) if s == HIDDEN}
    top = grn.latent_edges(model, top_k=len(targets))
    assert set(top["source"]) == {HIDDEN} and not top["measured"].any()
    assert set(top["target"]) == targets
    big = np.argsort(-np.abs(obs))[:len(targets)]
    assert (np.sign(pred[big]) == np.sign(obs[big])).all()


def test_checkpoint_keeps_latent_regulators_and_old_files_load(hidden_fit, hidden_data, tmp_path):
    model = hidden_fit.model
    path = save_checkpoint(tmp_path / "m.pt", model, data=hidden_data)
    back = load_checkpoint(path, genes=hidden_data.gene_names).model
    assert back.latent_names == [HIDDEN]
    assert torch.equal(back.W_latent, model.W_latent)
    # a checkpoint written before latent regulators and offsets existed loads, with both inert
    bundle = torch.load(path, weights_only=True)
    for key in ("W_latent", "type_offset"):
        bundle["state_dict"].pop(key)
    bundle.pop("latent_regulators")
    bundle["best_state_dict"] = None
    torch.save(bundle, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt").model
    assert old.n_latent == 0 and float(old.type_offset.abs().sum()) == 0.0
