"""Units a biologist reads (issue 15, item 4): overexpression as a fold change of expression,
predictions never below zero without a flag, a start condition's perturbation kept on on request."""

from __future__ import annotations

import numpy as np
import pytest

from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import demo_checkpoint_path, load_dataset
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import load_checkpoint
from perturbode_core.tools import simulate
from perturbode_core.tools.intervention_units import overexpression_for_fold


@pytest.fixture(scope="module")
def myeloid():
    data = from_anndata(load_dataset("myeloid"))
    return data, load_checkpoint(demo_checkpoint_path("myeloid")).model


@pytest.mark.parametrize("fold", [1.5, 2.0, 4.0])
def test_overexpression_fold_is_a_fold_change_of_expression(myeloid, fold):
    """'Pu.1 overexpressed 2-fold' gives a log2 fold change of 1 in the effect table (it gave 14.9:
    'fold 2' meant twice the learned strength)."""
    data, model = myeloid
    cells = data.control_cells()[:64]
    cal = overexpression_for_fold(model, cells, "Pu.1", fold)
    assert cal.reached and cal.achieved_fold == pytest.approx(fold, rel=0.02)
    table = simulate.effect_table(model, cells, [cal.intervention]).set_index("gene")
    assert table.loc["Pu.1", "log2_fold_change"] == pytest.approx(np.log2(fold), abs=0.03)
    old = simulate.effect_table(model, cells, "Pu.1:overexpression=2").set_index("gene")
    assert old.loc["Pu.1", "log2_fold_change"] > 3 * np.log2(fold)  # the strength unit is a different thing


def test_fold_below_one_or_out_of_reach(myeloid):
    data, model = myeloid
    with pytest.raises(PerturbODEError, match="below 1"):
        overexpression_for_fold(model, data.control_cells(), "Pu.1", 0.5)
    far = overexpression_for_fold(model, data.control_cells(), "Pu.1", 1e300)  # beyond the largest strength
    assert not far.reached and far.strength == 64.0 and far.achieved_fold < 1e300


def test_predictions_are_clipped_at_zero_and_flagged(myeloid):
    """No predicted expression below 0 (SCL reached -0.38); the share of clipped cells is a column."""
    data, model = myeloid
    cells = data.control_cells()[:100]
    raw = simulate.trajectories(model, cells, ["control", "Gata2:knockout+Gata1:knockout"], n_times=2)["states"][-1, 1]
    table = simulate.effect_table(model, cells, "Gata2:knockout+Gata1:knockout").set_index("gene")
    assert (table["perturbed"] >= 0).all() and (table["control"] >= 0).all()
    below = (raw < -1e-6).mean(0)
    np.testing.assert_allclose(table.loc[model.gene_names, "clipped"], below, atol=1e-9)
    unclipped = simulate.effect_table(model, cells, "Gata2:knockout+Gata1:knockout", floor=None)
    assert "clipped" in unclipped and (unclipped["clipped"] == 0).all()


def test_baseline_keeps_the_start_condition_perturbed(myeloid):
    """From the cells of the Gata1 knockout, Gata1 rebounds (0 -> 1.46) unless its knockout is kept on."""
    data, model = myeloid
    cells = data.X[data.cells_of("Gata1")][:60]
    free = simulate.effect_table(model, cells, "Pu.1:knockout").set_index("gene")
    kept = simulate.effect_table(model, cells, simulate.combine_interventions(
        simulate.as_interventions("Gata1:knockout", model.gene_names),
        simulate.as_interventions("Pu.1:knockout", model.gene_names)),
        baseline="Gata1:knockout").set_index("gene")
    assert free.loc["Gata1", "perturbed"] > 0.5  # the rebound
    assert kept.loc["Gata1", "perturbed"] < 0.05 and kept.loc["Gata1", "control"] < 0.05  # a double knockout
    ivs = simulate.combine_interventions(simulate.as_interventions("Gata1:knockout+Pu.1:knockout", model.gene_names),
                                         simulate.as_interventions("Gata1:overexpression=2", model.gene_names))
    assert [iv.to_spec() for iv in ivs] == ["Pu.1:knockout", "Gata1:overexpression=2"]  # extra wins per gene


def test_calibrating_several_genes_at_once_equals_one_at_a_time(myeloid):
    from perturbode_core.tools.intervention_units import calibrate_overexpression

    data, model = myeloid
    cells = data.control_cells()[:64]
    many = calibrate_overexpression(model, cells, ["Pu.1", "Gata1", "Cebpa"], 3.0)
    for cal in many:
        one = overexpression_for_fold(model, cells, cal.gene, 3.0)
        assert cal.gene == one.gene and cal.strength == pytest.approx(one.strength, rel=1e-4)
        assert cal.achieved_fold == pytest.approx(3.0, rel=0.02)
