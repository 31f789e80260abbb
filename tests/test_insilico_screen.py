"""In-silico screens (issue 15): every single perturbation simulated in batched solves, ranked by
its effect on a gene, a module or a cell state; known answers on the myeloid demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import demo_checkpoint_path, load_dataset
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import load_checkpoint
from perturbode_core.tools.insilico_screen import Readout, candidate_perturbations, run_screen


@pytest.fixture(scope="module")
def myeloid():
    data = from_anndata(load_dataset("myeloid"))
    model = load_checkpoint(demo_checkpoint_path("myeloid")).model
    return data, model, data.control_cells()[:120]


@pytest.mark.parametrize("target", ["Fog1", "EKLF", "SCL"])
def test_gata1_knockout_ranks_near_the_top_for_its_known_targets(myeloid, target):
    """Krumsiek 2011: Gata1 activates Fog1, EKLF and SCL, so its knockout lowers each of them."""
    data, model, cells = myeloid
    res = run_screen(model, cells, readout=Readout("gene", target), direction="decrease")
    table = res.table
    assert len(table) == model.n_genes and list(table["rank"]) == list(range(1, model.n_genes + 1))
    row = table.set_index("perturbation").loc["Gata1:knockout"]
    assert row["effect"] < 0
    others = table[~table["hits_readout"]].reset_index(drop=True)  # the target's own knockout is trivial
    assert "Gata1:knockout" in set(others["perturbation"].head(2)), others.head(4)
    assert table.iloc[0]["effect"] <= table.iloc[-1]["effect"]  # sorted by decrease


def test_movement_towards_a_measured_state(myeloid):
    """Ranking by movement towards the measured Gata1-knockout cells puts Gata1's knockout near the top."""
    data, model, cells = myeloid
    state = data.X[data.cells_of("Gata1")].mean(0)
    res = run_screen(model, cells, readout=Readout("state", "Gata1 knockout cells", profile=state),
                     direction="increase")
    assert "Gata1:knockout" in set(res.table["perturbation"].head(2))
    assert res.table.iloc[0]["effect"] > 0.3  # moves a good part of the way


def test_module_readout_is_the_module_activity(myeloid):
    data, model, cells = myeloid
    res = run_screen(model, cells, ["Pu.1:knockout"], readout=Readout("module", "M0"))
    end = np.maximum(model.simulate(cells, ["control", "Pu.1:knockout"])[-1], 0.0)  # clipped at the floor
    with torch.no_grad():
        h = model._sigma(model.standardize(end) @ model.B[0] + model.b[0]) * model.alpha[0]
    expected = float(h[1].mean() - h[0].mean())
    assert res.table.loc[0, "effect"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_batches_give_the_same_screen(myeloid):
    data, model, cells = myeloid
    one = run_screen(model, cells[:20], readout=Readout("gene", "Pu.1"))
    many = run_screen(model, cells[:20], readout=Readout("gene", "Pu.1"), batch_values=20 * model.n_genes)
    assert list(one.table["perturbation"]) == list(many.table["perturbation"])
    np.testing.assert_allclose(one.table["effect"], many.table["effect"], rtol=1e-5, atol=1e-6)


def test_ensemble_gives_mean_spread_and_agreement(trained, teacher_data):
    from perturbode_core.train import TrainConfig, fit

    other = fit(teacher_data, train_config=TrainConfig(epochs=8, cells_per_condition=16, seed=5)).model
    cells = teacher_data.control_cells()[:30]
    res = run_screen([trained.model, other], cells, readout=Readout("gene", "G005"), model_names=["a", "b"])
    t = res.table
    assert res.n_models == 2 and {"effect_a", "effect_b"} <= set(t.columns)
    np.testing.assert_allclose(t["effect"], (t["effect_a"] + t["effect_b"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(t["effect_sd"], np.abs(t["effect_a"] - t["effect_b"]) / np.sqrt(2), rtol=1e-5)
    assert set(np.round(t["agreement"], 6)) <= {0.5, 1.0}
    same = run_screen([trained.model, trained.model], cells, readout=Readout("gene", "G005"))
    assert (same.table["effect_sd"] < 1e-9).all() and (same.table["agreement"] == 1).all()


def test_a_kept_base_perturbation_is_on_in_every_simulation(myeloid):
    """From the cells of a Gata1 knockout, with Gata1 kept out: a Gata1 knockout adds nothing."""
    data, model, _ = myeloid
    cells = data.X[data.cells_of("Gata1")][:60]
    res = run_screen(model, cells, ["Gata1:knockout", "Pu.1:knockout"], readout=Readout("gene", "Gata1"),
                     base="Gata1:knockout")
    eff = res.table.set_index("perturbation")["effect"]
    assert abs(eff["Gata1:knockout"]) < 1e-6 and res.base_perturbation == "Gata1:knockout"


def test_gene_lists_and_bad_input(myeloid):
    data, model, cells = myeloid
    assert candidate_perturbations(model.gene_names, genes=["Gata1", "Pu.1"], kind="overexpression", value=2) == \
        ["Gata1:overexpression=2", "Pu.1:overexpression=2"]
    with pytest.raises(PerturbODEError, match="not in the model"):
        candidate_perturbations(model.gene_names, genes=["GATA9"])
    with pytest.raises(PerturbODEError, match="Readout gene"):
        run_screen(model, cells, readout=Readout("gene", "nope"))
    with pytest.raises(PerturbODEError, match="No module"):
        run_screen(model, cells, readout=Readout("module", "M999"))
    with pytest.raises(PerturbODEError, match="profile"):
        Readout("state", "x")
