"""What a knockout, or a knock-down without a dose, leaves of its target's own level
(perturbode_core.data.knockout_level)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from perturbode_core.data.dataset import from_anndata
from perturbode_core.data.knockout_level import (describe_knockdown_level, describe_knockout_level, knockdown_level,
                                                 knockdown_rule, knockout_level, own_level_pairs)
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import load_model, save_checkpoint
from perturbode_core.model import ModelConfig, PerturbODE

GENES = ["g0", "g1", "g2", "g3", "g4"]
CONTROL = np.array([4.0, 2.0, 0.001, 3.0, 1.0])


def screen(left: dict, cells: int = 20, *, as_anndata: bool = False, kind: str = "knockout", doses=None):
    """Control cells at :data:`CONTROL` (no noise); a ``kind`` perturbation of g (``doses[g]``
    written as its dose when given) cells at ``left[g]`` times its control level on g and the
    control elsewhere; one overexpression of g3 beside them."""
    doses = doses or {}
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
    kinds = [kind if lab != "g3_oe" else "overexpression" for lab in labels]
    perts = [lab if lab != "g3_oe" else "g3" for lab in labels]
    perts = [f"{lab}:{kind}={doses[lab]}" if lab in doses else lab for lab in perts]
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
    assert sorted(g for g, _, _ in own_level_pairs(data)) == ["g0", "g1", "g2"]
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


@pytest.mark.parametrize("option", ["knockout_level", "knockdown_level"])
@pytest.mark.parametrize("bad", [1.5, -0.1, "half", True])
def test_a_bad_level_is_refused_with_the_valid_values(option, bad):
    with pytest.raises(PerturbODEError, match=f"{option} must be 'auto'(, | or )a fraction from 0 to 1"):
        ModelConfig(**{option: bad})


@pytest.mark.parametrize("bad", [[1.0], [-0.5, 1.0], [1.0, float("nan")], ["a", 1.0]])
def test_a_bad_knockdown_line_is_refused(bad):
    with pytest.raises(PerturbODEError, match=r"\[slope, intercept\]"):
        ModelConfig(knockdown_level=bad)


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


# ---------------------------------------------------------------- knock-downs without a dose

#: Every target one unit below its control level (a constant drop: log-normalised data lose a share
#: of their transcripts so), g4 (control 1) down to 0: the line slope 1, intercept -1.
DROP_ONE = {"g0": 3 / 4, "g1": 1 / 2, "g3": 2 / 3, "g4": 0.0}


def test_the_knockdown_level_is_the_line_the_training_undosed_knockdowns_show():
    data = screen(DROP_ONE, kind="knockdown")
    np.testing.assert_allclose(knockdown_level(data), [1.0, -1.0], atol=1e-5)
    # fewer than three expressed targets: the pooled fraction through zero (g0 keeps 1 of 4, g1 0.2
    # of 2: 1.2 / 6); g2 is barely expressed (0.001) and gives no reading
    two = screen({"g0": 0.25, "g1": 0.1, "g2": 0.9}, kind="knockdown")
    np.testing.assert_allclose(knockdown_level(two), [0.2, 0.0], atol=1e-6)
    np.testing.assert_allclose(knockdown_level(data, ["control", "g1"]), [0.5, 0.0], atol=1e-6)
    # a line that would raise its target (slope < 0) is no knock-down: the pooled fraction
    rising = screen({"g0": 0.0, "g1": 0.9, "g4": 0.95}, kind="knockdown")
    np.testing.assert_allclose(knockdown_level(rising), [2.75 / 7, 0.0], atol=1e-6)
    # a knock-down with a stated dose is the user's word: not measured, not counted
    dosed = screen({"g0": 0.25, "g1": 0.1}, kind="knockdown", doses={"g0": 0.3})
    assert [g for g, _, _ in own_level_pairs(dosed, kind="knockdown")] == ["g1"]
    np.testing.assert_allclose(knockdown_level(dosed), [0.1, 0.0], atol=1e-6)
    # nothing measured: None (the caller keeps the library default); knockouts are not knock-downs
    assert knockdown_level(data, ["control", "g3_oe"]) is None
    assert knockdown_level(screen({"g0": 0.25})) is None
    assert knockout_level(data) == 0.0


def test_from_data_resolves_the_knockdown_level_and_otherwise_keeps_the_default_dose():
    data = screen(DROP_ONE, kind="knockdown")
    np.testing.assert_allclose(knockdown_rule(PerturbODE.from_data(data, ModelConfig()).config), [1.0, -1.0],
                               atol=1e-5)
    assert knockdown_rule(PerturbODE.from_data(data, ModelConfig(knockdown_level=0.3)).config) == (0.3, 0.0)
    assert knockdown_rule(PerturbODE.from_data(screen({"g0": 0.25}), ModelConfig()).config) == (0.5, 0.0)
    assert knockdown_rule(PerturbODE(GENES, ModelConfig()).config) == (0.5, 0.0)
    # a line read back from JSON is a list: kept as a tuple, so the options stay hashable
    assert ModelConfig.from_dict({"knockdown_level": [1.0, -1.0]}).knockdown_level == (1.0, -1.0)
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "knockdown_level"}
    from perturbode_core.io.checkpoint import _model_config

    assert knockdown_rule(_model_config(old)) == (0.5, 0.0)  # checkpoints before the option: the default dose


def test_an_undosed_knockdown_follows_the_models_line_and_a_dosed_one_its_dose(tmp_path):
    model = PerturbODE(GENES, ModelConfig(n_modules=3, knockdown_level=[1.0, -1.0]), control_level=CONTROL,
                       mean=CONTROL, scale=np.ones(5), seed=3)
    with torch.no_grad():
        model.B[:, 0] = torch.tensor([2.0, -1.5, 1.0])
    x0 = CONTROL[None, :].astype(np.float32)
    undosed = model.simulate(x0, ["g0:knockdown"], [0.0, 30.0])[-1, 0, 0]
    dosed = model.simulate(x0, ["g0:knockdown=0.3"], [0.0, 30.0])[-1, 0, 0]
    assert undosed[0] == pytest.approx(3.0, abs=1e-3)  # 4 - 1
    assert dosed[0] == pytest.approx(0.7 * CONTROL[0], abs=1e-3)  # 2.8
    assert np.abs(undosed[1:] - dosed[1:]).max() > 0.01  # the others follow the level left
    # the line never takes a target below zero: g4 (control 1) goes to 0, not -0 ... -1
    assert model.simulate(x0, ["g4:knockdown"], [0.0, 30.0])[-1, 0, 0, 4] == pytest.approx(0.0, abs=1e-3)
    save_checkpoint(tmp_path / "m.pt", model)
    back = load_model(tmp_path / "m.pt")
    assert knockdown_rule(back.config) == (1.0, -1.0)
    np.testing.assert_allclose(back.simulate(x0, ["g0:knockdown"])[-1], model.simulate(x0, ["g0:knockdown"])[-1],
                               atol=1e-6)


def test_the_command_line_says_what_an_undosed_knockdown_leaves(tmp_path):
    from test_cli import cli

    path = tmp_path / "crispri.h5ad"
    screen(DROP_ONE, as_anndata=True, kind="knockdown").write_h5ad(path)
    out = cli("train", "--data", path, "--condition-key", "condition", "--out", tmp_path / "run", "--epochs", 1)
    assert out.returncode == 0, out.stderr
    assert "takes its target's level to 1.00 x its control level - 1.00" in out.stderr
    model_path = tmp_path / "run" / "model.pt"
    np.testing.assert_allclose(knockdown_rule(load_model(model_path).config), [1.0, -1.0], atol=1e-4)
    sim = cli("simulate", "--checkpoint", model_path, "--data", path, "--condition-key", "condition",
              "--perturb", "g1:knockdown", "--out", tmp_path / "sim.h5ad")
    assert sim.returncode == 0, sim.stderr
    # g1 was knocked down in training: its own level (half of it left), not the line
    assert "The knock-down of g1 removes 50 % of its level, as its training knock-downs did" in sim.stdout
    dosed = cli("simulate", "--checkpoint", model_path, "--data", path, "--condition-key", "condition",
                "--perturb", "g1:knockdown=0.4", "--out", tmp_path / "sim2.h5ad")
    assert dosed.returncode == 0, dosed.stderr
    assert "knock-down of g1" not in dosed.stdout + dosed.stderr  # a stated dose needs no note
    # a knockout screen says nothing of knock-downs
    path = tmp_path / "ko.h5ad"
    screen({"g0": 0.0, "g1": 0.0}, as_anndata=True).write_h5ad(path)
    out = cli("train", "--data", path, "--condition-key", "condition", "--out", tmp_path / "run0", "--epochs", 1)
    assert out.returncode == 0, out.stderr
    assert "knock-down" not in out.stderr
    assert describe_knockdown_level((0.2, 0.0)).startswith("a knock-down without a dose leaves 20 % of its target")


def test_the_train_and_simulate_pages_say_what_an_undosed_knockdown_leaves(start_app):
    import dataclasses

    from perturbode_ui.state import STATE_KEY

    app = start_app()
    state = app.session_state[STATE_KEY]
    # the myeloid demo is a knockout screen (the library's default dose); as if trained on CRISPRi
    assert "knock-down" not in " ".join(c.value for c in app.switch_page("pages/train_page.py").run().caption)
    state.model.config = dataclasses.replace(state.model.config, knockdown_level=(1.0, -0.5))
    app.switch_page("pages/train_page.py").run()
    assert not app.exception and not app.error
    assert any(describe_knockdown_level((1.0, -0.5)) in c.value for c in app.caption)
    app.switch_page("pages/simulate_page.py").run()
    app.text_input(key="sim_spec").set_value("Pu.1:knockdown").run()
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    control = float(state.model.control_level()[state.model.gene_index["Pu.1"]])
    said = [c.value for c in app.caption if "as this screen's training knock-downs did" in c.value]  # Pu.1: the line
    share = min(0.5 / control, 1)
    assert said and said[0].startswith(f"The knock-down of Pu.1 removes {100 * share:.0f} % of its level")
    # the builder's knock-down starts at that share of the gene (the typed spec off)
    app.text_input(key="sim_spec").set_value("").run()
    app.multiselect(key="sim_genes").set_value(["Pu.1"]).run()
    app.selectbox(key="sim_kind_Pu.1").set_value("knock-down").run()
    assert not app.exception and not app.error
    assert app.number_input(key="sim_value_knock-down_Pu.1").value == pytest.approx(round(share, 2))
    # the in-silico screen offers the screen's own knock-down (no dose) beside the dosed one
    from perturbode_ui.screening import AS_TRAINED

    app.switch_page("pages/screen_page.py").run()
    assert not app.exception and not app.error
    assert AS_TRAINED in app.selectbox(key="screen_kind").options
    app.selectbox(key="screen_kind").set_value(AS_TRAINED).run()
    app.selectbox(key="screen_readout_gene").set_value("Fog1").run()
    app.button(key="screen_run").click().run()
    assert not app.exception and not app.error
    specs = set(state.screens.last.table["perturbation"])
    assert "Pu.1:knockdown" in specs and not any("=" in s for s in specs)


def test_a_knockout_screen_offers_no_undosed_knockdown():
    from perturbode_ui.screening import AS_TRAINED, screen_kinds

    assert AS_TRAINED not in screen_kinds(PerturbODE(GENES, ModelConfig()))
    assert AS_TRAINED in screen_kinds(PerturbODE(GENES, ModelConfig(knockdown_level=[1.0, -1.0])))


def test_the_on_target_table_lists_each_knockout_and_knockdown_with_what_it_left():
    from perturbode_core import plots
    from perturbode_core.data.knockout_level import own_level_table

    table = own_level_table(screen({"g0": 0.25, "g1": 0.5, "g2": 0.9}))
    assert list(table["target"]) == ["g0", "g1", "g2"]  # ordered by what is left
    np.testing.assert_allclose(table["left"], [0.25, 0.5, 0.9], atol=1e-4)
    np.testing.assert_allclose(table["control_level"], CONTROL[:3], rtol=1e-5)
    assert set(table["type"]) == {"knockout"} and table["dose"].isna().all()  # the overexpression is not listed
    dosed = own_level_table(screen({"g0": 0.25, "g1": 0.1}, kind="knockdown", doses={"g0": 0.3}))
    assert dosed.set_index("target")["dose"].to_dict()["g0"] == pytest.approx(0.3)
    fig = plots.target_level_figure(dosed, rule=(1.0, -1.0))
    names = [t.name for t in fig.data]
    assert names == ["knockdown", "nothing removed", "the model's undosed knock-down"]
    assert list(fig.data[0].y) == pytest.approx(list(dosed["level"]))
    assert min(fig.data[2].y) == 0.0  # the line is kept at or above zero



# ---------------------------------------------------------------- each training target's own level


def test_each_training_target_keeps_its_own_measured_level_and_the_others_the_pooled_one():
    from perturbode_core.data.knockout_level import per_target_left

    data = screen({"g0": 0.25, "g1": 0.5, "g2": 0.9})
    assert per_target_left(data) == pytest.approx({"g0": 0.25, "g1": 0.5})  # g2 is not expressed enough
    assert per_target_left(data, ["control", "g1"]) == pytest.approx({"g1": 0.5})  # training conditions only
    model = PerturbODE.from_data(data, ModelConfig(n_modules=3), conditions=["control", "g0", "g1", "g3_oe"])
    assert model.config.knockout_level == pytest.approx(1 / 3, abs=1e-6)
    assert model.knockout_share_left("g0") == pytest.approx(0.25) and model.knockout_share_left("g1") == pytest.approx(0.5)
    assert model.knockout_share_left("g3") == pytest.approx(1 / 3, abs=1e-6)  # never knocked out: the pooled level
    assert model.knockout_share_left("g2") == pytest.approx(1 / 3, abs=1e-6)  # held out: the pooled level
    x0 = CONTROL[None, :].astype(np.float32)
    out = model.simulate(x0, ["g0:knockout", "g3:knockout"], [0.0, 60.0])[-1, :, 0]
    assert out[0, 0] == pytest.approx(0.25 * CONTROL[0], abs=2e-3)
    assert out[1, 3] == pytest.approx(CONTROL[3] / 3, abs=2e-3)
    # switched off: the pooled level for every target
    pooled = PerturbODE.from_data(data, ModelConfig(n_modules=3, per_target_levels=False))
    assert pooled.knockout_share_left("g0") == pytest.approx(pooled.config.knockout_level)
    # a screen whose knockouts delete the transcript keeps every knockout a deletion
    deleted = PerturbODE.from_data(screen({"g0": 0.0, "g1": 0.02}), ModelConfig(n_modules=3))
    assert deleted.config.knockout_level == 0.0 and deleted.knockout_share_left("g1") == 0.0
    # undosed knock-downs: g1's own share, the line for the rest
    from perturbode_core.data.knockout_level import knocked_down_level

    kd_data = screen({**DROP_ONE, "g1": 0.9}, kind="knockdown")
    train = ["control", "g0", "g1", "g4", "g3_oe"]  # g3's knock-down held out
    kd = PerturbODE.from_data(kd_data, ModelConfig(n_modules=3), conditions=train)
    assert kd.knockdown_share_left("g1") == pytest.approx(0.9)
    rule = knockdown_level(kd_data, train)
    assert rule[0] != pytest.approx(1.0)  # g1's weak knock-down bends the line
    assert kd.knockdown_share_left("g3") == pytest.approx(float(knocked_down_level(rule, CONTROL[3])) / CONTROL[3],
                                                          abs=1e-5)


def test_checkpoints_keep_the_per_target_levels_and_older_ones_read_the_pooled_level(tmp_path):
    from perturbode_core.io import checkpoint

    data = screen({"g0": 0.25, "g1": 0.5})
    model = PerturbODE.from_data(data, ModelConfig(n_modules=3))
    save_checkpoint(tmp_path / "m.pt", model)
    back = load_model(tmp_path / "m.pt")
    assert back.knockout_share_left("g0") == pytest.approx(0.25)
    bundle = torch.load(tmp_path / "m.pt", weights_only=True)
    state = {k: v for k, v in bundle["state_dict"].items() if k not in ("knockout_left", "knockdown_left")}
    old = checkpoint._build_model(bundle, state)  # a checkpoint written before the buffers
    assert old.knockout_share_left("g0") == pytest.approx(1 / 3, abs=1e-6)
