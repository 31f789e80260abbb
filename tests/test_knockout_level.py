"""What a knockout leaves of its target's own level (perturbode_core.data.knockout_level)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from perturbode_core.data.dataset import from_anndata
from perturbode_core.data.knockout_level import describe_knockout_level, knockout_level, knockout_pairs
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import load_model, save_checkpoint
from perturbode_core.model import ModelConfig, PerturbODE

GENES = ["g0", "g1", "g2", "g3", "g4"]
CONTROL = np.array([4.0, 2.0, 0.001, 3.0, 1.0])


def screen(left: dict, cells: int = 20, *, as_anndata: bool = False):
    """Control cells at :data:`CONTROL` (no noise); a knockout of g cells at ``left[g]`` times its
    control level on g and the control elsewhere; one overexpression of g3 beside them."""
    labels, rows = ["control"] * cells, [np.tile(CONTROL, (cells, 1))]
    for gene, frac in left.items():
        mean = CONTROL.copy()
        mean[GENES.index(gene)] *= frac
        rows.append(np.tile(mean, (cells, 1)))
        labels += [gene] * cells
    mean = CONTROL.copy()
    mean[3] += 2.0
    rows.append(np.tile(mean, (cells, 1)))
    labels += ["g3_oe"] * cells
    kinds = ["knockout" if lab != "g3_oe" else "overexpression" for lab in labels]
    perts = [lab if lab != "g3_oe" else "g3" for lab in labels]
    adata = ad.AnnData(X=np.vstack(rows).astype(np.float32),
                       obs=pd.DataFrame({"perturbation": perts, "intervention_type": kinds,
                                         "condition": labels}),
                       var=pd.DataFrame(index=GENES))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    return adata if as_anndata else from_anndata(adata, condition_key="condition")


def test_the_fraction_is_the_ratio_of_sums_over_the_training_knockouts_of_expressed_targets():
    # g0 keeps 1/4 (1 of 4), g1 1/2 (1 of 2): (1 + 1) / (4 + 2) = 1/3; g2 is barely expressed in
    # the control cells (0.001: its ratio 0.9 would be noise) and the overexpression is no knockout
    data = screen({"g0": 0.25, "g1": 0.5, "g2": 0.9})
    assert sorted(g for g, _, _ in knockout_pairs(data)) == ["g0", "g1", "g2"]
    assert knockout_level(data) == pytest.approx(1 / 3, abs=1e-6)
    # only the training conditions count
    assert knockout_level(data, ["control", "g1", "g3_oe"]) == pytest.approx(0.5, abs=1e-6)
    # a simulator's knockout deletes the transcript: 0; no measured knockout at all: 0
    assert knockout_level(screen({"g0": 0.0, "g1": 0.0})) == 0.0
    assert knockout_level(data, ["control", "g3_oe"]) == 0.0
    # a few percent left is the noise of a level measured at zero: 0 (the bulk design's 1 %)
    assert knockout_level(screen({"g0": 0.03, "g1": 0.03})) == 0.0
    assert knockout_level(screen({"g0": 0.06, "g1": 0.06})) == pytest.approx(0.06, abs=1e-6)
    # a knockout can leave more than the control (noise) but the fraction stays at most 1
    assert knockout_level(screen({"g0": 1.5})) == 1.0


def test_from_data_resolves_auto_and_a_model_built_by_hand_takes_zero():
    data = screen({"g0": 0.25, "g1": 0.5})
    assert PerturbODE.from_data(data, ModelConfig()).config.knockout_level == pytest.approx(1 / 3, abs=1e-6)
    assert PerturbODE.from_data(data, ModelConfig(knockout_level=0.8)).config.knockout_level == 0.8
    assert PerturbODE(GENES, ModelConfig()).config.knockout_level == 0.0
    # checkpoints made before the option have no such key: the transcript removed, as they were trained
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "knockout_level"}
    assert PerturbODE(GENES, ModelConfig.from_dict(old)).config.knockout_level == 0.0


@pytest.mark.parametrize("bad", [1.5, -0.1, "half", True])
def test_a_bad_knockout_level_is_refused_with_the_valid_values(bad):
    with pytest.raises(PerturbODEError, match="knockout_level must be 'auto' or a fraction from 0 to 1"):
        ModelConfig(knockout_level=bad)


def _model(level: float) -> PerturbODE:
    model = PerturbODE(GENES, ModelConfig(n_modules=3, knockout_level=level), control_level=CONTROL,
                       mean=CONTROL, scale=np.ones(5), seed=3)
    with torch.no_grad():  # g0 feeds every module strongly: its knockout moves the other genes
        model.B[:, 0] = torch.tensor([2.0, -1.5, 1.0])
    return model


def test_a_knockout_leaves_that_fraction_of_its_target_and_removes_its_whole_effect_on_others():
    x0 = CONTROL[None, :].astype(np.float32)  # the anchor: a fixed point of the unperturbed field
    removed = _model(0.0).simulate(x0, ["g0:knockout"], [0.0, 30.0])[-1, 0, 0]
    kept = _model(0.4).simulate(x0, ["g0:knockout"], [0.0, 30.0])[-1, 0, 0]
    assert removed[0] == pytest.approx(0.0, abs=1e-3)
    assert kept[0] == pytest.approx(0.4 * CONTROL[0], abs=1e-3)  # 1.6 of 4 measured
    # the other genes respond as to the protein gone, whatever is left of the transcript
    moved = np.abs(removed[1:] - CONTROL[1:])
    assert moved.max() > 0.05
    np.testing.assert_allclose(kept[1:], removed[1:], atol=1e-4)
    # a knock-down of 60 % leaves the same level, but the remaining 40 % still acts on the others
    knocked_down = _model(0.4).simulate(x0, ["g0:knockdown=0.6"], [0.0, 30.0])[-1, 0, 0]
    assert knocked_down[0] == pytest.approx(0.4 * CONTROL[0], abs=1e-3)
    assert np.abs(knocked_down[1:] - removed[1:]).max() > 0.01


def test_the_level_is_kept_by_checkpoints(tmp_path):
    model = _model(0.4)
    save_checkpoint(tmp_path / "m.pt", model)
    back = load_model(tmp_path / "m.pt")
    assert back.config.knockout_level == pytest.approx(0.4)
    x0 = CONTROL[None, :].astype(np.float32)
    np.testing.assert_allclose(back.simulate(x0, ["g0"])[-1], model.simulate(x0, ["g0"])[-1], atol=1e-6)


def test_the_command_line_says_what_a_knockout_leaves(tmp_path):
    from test_cli import cli

    path = tmp_path / "partial.h5ad"
    screen({"g0": 0.25, "g1": 0.5}, as_anndata=True).write_h5ad(path)
    out = cli("train", "--data", path, "--condition-key", "condition", "--out", tmp_path / "run", "--epochs", 1)
    assert out.returncode == 0, out.stderr
    assert describe_knockout_level(1 / 3) in out.stderr and "leaves 33 % of its own level" in out.stderr
    assert load_model(tmp_path / "run" / "model.pt").config.knockout_level == pytest.approx(1 / 3, abs=1e-4)
    # a simulated screen's knockouts left nothing: no sentence
    path = tmp_path / "deleted.h5ad"
    screen({"g0": 0.0, "g1": 0.0}, as_anndata=True).write_h5ad(path)
    out = cli("train", "--data", path, "--condition-key", "condition", "--out", tmp_path / "run0", "--epochs", 1)
    assert out.returncode == 0, out.stderr
    assert "leaves" not in out.stderr
