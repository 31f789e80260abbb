"""The quick simulation preview agrees with the full solve, and the full solve stays one call away.

Stated tolerance: the preview's per-gene effects (mean change versus the control simulation of
the same cells) lie within 2 % of the full solve's largest effect, and the strongest effects are
the same genes. Measured at 2,000 genes: within 0.5 % (benchmarks/results/preview.md).
"""

import numpy as np
import pytest

from perturbode_core.tools import simulate
from perturbode_ui.simulation import run_scenario
from perturbode_ui.state import AppState


def _cells(model, n=1000, seed=0):
    level = model.unstandardize(model.anchor).detach().numpy()
    return (level + 0.2 * np.random.default_rng(seed).standard_normal((n, model.n_genes))).astype(np.float32)


@pytest.mark.parametrize("which", ["teacher", "trained"])
def test_preview_effects_agree_with_the_full_solve(which, teacher, trained):
    model = teacher if which == "teacher" else trained.model
    cells = _cells(model)
    for spec in ("G001", "G004:overexpression=2"):
        full = simulate.effect_table(model, cells, spec)
        quick = simulate.effect_table(model, cells, spec, preview=True)
        a, b = full.set_index("gene")["mean_change"], quick.set_index("gene")["mean_change"].reindex(full["gene"])
        assert np.abs(a.to_numpy() - b.to_numpy()).max() <= 0.02 * np.abs(a).max(), spec
        assert list(full["gene"].head(3)) == list(quick["gene"].head(3)), spec


def test_preview_simulates_a_fixed_subsample_at_the_fast_precision(teacher):
    cells = _cells(teacher, n=700)
    out = simulate.trajectories(teacher, cells, ["control", "G002"], n_times=5, preview=True)
    assert out["states"].shape == (5, 2, simulate.PREVIEW_CELLS, teacher.n_genes)
    again = simulate.trajectories(teacher, cells, ["control", "G002"], n_times=5, preview=True)
    np.testing.assert_array_equal(out["cells"], again["cells"])  # the same cells every time
    assert len(set(out["cells"])) == simulate.PREVIEW_CELLS and out["precision"] == simulate.preview_precision(teacher)
    np.testing.assert_array_equal(out["states"][0, 0], cells[out["cells"]])  # the chosen cells, unchanged at t=0
    few = simulate.trajectories(teacher, cells[:50], ["G002"], preview=True)
    np.testing.assert_array_equal(few["cells"], np.arange(50))  # small populations: every cell
    full = simulate.trajectories(teacher, cells, ["G002"])
    assert full["states"].shape[2] == 700 and full["precision"] == "float32"


def test_preview_cell_count_shrinks_with_the_model_so_the_preview_stays_interactive():
    """The work budget (cells x genes x modules): small models get every one of 200 cells, a
    2,000-gene model with 512 modules 160, one with 2,000 modules the floor of 64; and the
    preview of such a model simulates that many of its start cells."""
    from perturbode_core.model import ModelConfig, PerturbODE

    assert simulate.preview_cell_count(264, 48) == simulate.PREVIEW_CELLS == 200
    assert simulate.preview_cell_count(2000, 512) == 160
    assert simulate.preview_cell_count(2000, 2000) == simulate.PREVIEW_MIN_CELLS == 64
    # float32 (no AMX): 2.5x less work, as quick as the bfloat16 preview
    assert simulate.preview_cell_count(2000, 256, "float32") == 128  # 160 * 2000 * 512 / 2.5 // (2000 * 256)
    assert simulate.preview_cell_count(2000, 512, "float32") == 64 and simulate.preview_cell_count(100, 64, "float32") == 200
    big = PerturbODE([f"G{i}" for i in range(2000)], ModelConfig(n_modules=1000), seed=0)
    assert len(simulate.preview_cells(1000, big, "bfloat16")) == 81  # 160 * 2000 * 512 // (2000 * 1000)
    assert len(simulate.preview_cells(1000, big)) == simulate.preview_cell_count(2000, 1000, simulate.preview_precision(big))
    assert len(simulate.preview_cells(50, big)) == 50  # fewer start cells than the budget: all


def test_scenario_preview_is_the_default_switch_and_full_is_one_flag_away(teacher_data, trained):
    state = AppState()
    try:
        state.set_data(teacher_data, name="teacher", source="test")
        state.set_model(trained.model, source="test")
        state.settings.max_sim_cells = 10_000  # every control cell
        n_control = len(teacher_data.cells_of(teacher_data.control))
        quick = run_scenario(state, "G001", preview=True)
        full = run_scenario(state, "G001")
        assert full.n_cells == n_control and "preview" not in full.start
        assert quick.n_cells == min(n_control, simulate.PREVIEW_CELLS) and "quick preview" in quick.start
        a = full.effects.set_index("gene")["mean_change"]
        b = quick.effects.set_index("gene")["mean_change"].reindex(a.index)
        assert np.abs(a - b).max() <= 0.02 * a.abs().max()
    finally:
        state.close()
