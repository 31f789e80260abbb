"""The built-in real screen (Papalexi et al. 2021, THP-1 ECCITE-seq): loading, guides, escapees, the
new-user commands, and the demo model's known biology (issue 11)."""

import numpy as np
import pandas as pd
import pytest

from perturbode_core.cli.common import data_flags
from perturbode_core.cli.main import main
from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import demo_checkpoint_path, load_dataset, truth_edges, write_dataset
from perturbode_core.datasets.registry import demo_holdout, load_options, shipped_path
from perturbode_core.errors import PerturbODEError

NAME = "papalexi2021"
#: The IFN-gamma pathway: knocking out its receptor, kinase or transcription factor lowers its genes.
PATHWAY = ["IFNGR1", "IFNGR2", "JAK2", "STAT1"]
READOUTS = ["JAK2", "PSMB9", "UBE2L6", "STAT1"]


@pytest.fixture(scope="module")
def adata():
    return load_dataset(NAME)


@pytest.fixture(scope="module")
def data(adata):
    return from_anndata(adata, source=NAME, **load_options(NAME))


def _change(data, condition):
    ctrl = data.X[data.cells_of(data.control)].mean(0)
    return pd.Series(data.X[data.cells_of(condition)].mean(0) - ctrl, index=data.gene_names)


def test_the_real_screen_is_shipped_with_its_licence_and_no_known_network(tmp_path):
    path = shipped_path(NAME)
    assert (path.parent / "papalexi2021_LICENSE.md").read_text().startswith("# MIT License")
    assert "papalexi2021.h5ad" in (path.parent / "PROVENANCE.md").read_text()
    assert truth_edges(NAME) is None
    out, edges = write_dataset(NAME, tmp_path / "screen.h5ad")
    assert edges is None and out.read_bytes() == path.read_bytes()
    with pytest.raises(PerturbODEError, match="real screen"):
        load_dataset(NAME, cells_per_condition=10)


def test_loading_assigns_guides_classifies_escapees_and_keeps_unmeasured_targets(data):
    # 16 of the 25 targets with cells are not among the 299 genes (CD274's guides top no cell)
    assert len(data.unmeasured_targets) == 16 and {"IFNGR1", "IRF1", "ATF2"} <= set(data.unmeasured_targets)
    assert set(PATHWAY[1:]) <= set(data.gene_names) and len(data.perturbations) == 25
    aside = data.set_aside.set_index("reason")
    assert aside.loc["several guides", "cells"] == 966  # top guide below half the guide UMIs
    eff = data.escape.set_index("condition")
    for target in PATHWAY:  # the pathway knockouts are classified, most cells perturbed
        assert eff.loc[target, "status"] == "classified" and 0.6 < eff.loc[target, "efficiency"] < 1.0
    # a knockout that lowers only its own gene has no signature to tell escapees by: kept whole
    assert eff.loc["CMTM6", "status"] == "no detectable signature"
    assert (data.labels == "CMTM6").sum() == eff.loc["CMTM6", "cells"]


def test_the_perturbed_cells_show_the_published_biology(data):
    """IFN-gamma pathway knockouts lower its response genes; IRF1's lowers TNFRSF14 and JAK2;
    CMTM6's lowers only CMTM6 (normalize_total + log1p, mean differences vs non-targeting)."""
    for target in PATHWAY:
        change = _change(data, target)
        assert (change[READOUTS] < -1.0).all(), (target, change[READOUTS])
    irf1 = _change(data, "IRF1")
    assert irf1["TNFRSF14"] < -1.3 and irf1["JAK2"] < -1.3
    cmtm6 = _change(data, "CMTM6")
    assert cmtm6["CMTM6"] < -0.5 and cmtm6.drop("CMTM6").abs().max() < 0.3


def test_the_new_user_command_trains_and_simulates_on_the_real_file(tmp_path, capsys):
    """``perturbode train --data papalexi2021_thp1.h5ad --control non-targeting --normalize --out run``
    (one epoch here), then a simulation."""
    screen = tmp_path / "papalexi2021_thp1.h5ad"
    screen.write_bytes(shipped_path(NAME).read_bytes())
    run = tmp_path / "run"
    assert main(["train", "--data", str(screen), "--control", "non-targeting", "--normalize", "--out", str(run),
                 "--epochs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "unmeasured regulators: ATF2" in err  # one line, no traceback
    out = tmp_path / "JAK2.h5ad"
    assert main(["simulate", "--checkpoint", str(run / "model.pt"), "--data", str(screen), "--control",
                 "non-targeting", "--normalize", "--perturb", "JAK2", "--out", str(out), "--max-cells", "50"]) == 0
    assert out.exists()


def test_the_new_user_simulation_of_an_unmeasured_target(tmp_path):
    out = tmp_path / "IFNGR1.h5ad"
    assert main(["simulate", "--checkpoint", str(demo_checkpoint_path(NAME)), "--data", str(shipped_path(NAME)),
                 *data_flags(load_options(NAME)), "--perturb", "IFNGR1", "--out", str(out), "--max-cells", "50"]) == 0
    effects = pd.read_csv(tmp_path / "IFNGR1_effects.csv").set_index("gene")["mean_change"]
    assert (effects[READOUTS] < -0.3).all()


def test_the_benchmark_command_holds_out_measured_knockouts_and_reports_the_baselines(adata, tmp_path, capsys):
    """``perturbode benchmark`` on (a subsample of) the real screen, with knockouts of measured
    targets held out: PerturbODE beside no change, mean shift, linear and additive."""
    rng = np.random.default_rng(0)
    small = adata[np.sort(rng.choice(adata.n_obs, 6000, replace=False))].copy()
    path = tmp_path / "screen.h5ad"
    small.write_h5ad(path)
    held = ["STAT3", "NFKBIA", "TNFRSF14"]
    assert main(["benchmark", "--data", str(path), *data_flags(load_options(NAME)), "--holdout", ",".join(held),
                 "--epochs", "1", "--no-genie3", "--out", str(tmp_path / "bench")]) == 0
    table = pd.read_csv(tmp_path / "bench" / "table.csv").set_index("method")
    assert list(table.index) == ["PerturbODE", "no_change", "mean_shift", "linear", "additive"]
    for column in ("heldout_pearson_delta", "heldout_energy", "heldout_top_overlap"):
        assert table[column].notna().all(), column
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("held out:"))
    assert sorted(line[len("held out:"):].replace(" ", "").split(",")) == sorted(held)


def test_an_unmeasured_target_never_seen_is_refused_with_the_reason(tmp_path):
    from perturbode_core.io.checkpoint import load_model
    from perturbode_core.tools.simulate import effect_table

    model = load_model(demo_checkpoint_path(NAME))
    with pytest.raises(PerturbODEError, match="IRF8"):
        effect_table(model, np.zeros((2, model.n_genes), np.float32) + 1.0, "IRF8:knockout")


# ------------------------------------------------------------------------------ the demo model
@pytest.fixture(scope="module")
def demo():
    from perturbode_core.io.checkpoint import load_checkpoint

    path = demo_checkpoint_path(NAME)
    assert path is not None, "run: python scripts/build_datasets.py --demo-only --only papalexi2021"
    return load_checkpoint(path)


def test_demo_checkpoint_was_trained_by_the_cli_with_the_datasets_load_options(demo, data):
    assert demo.model.gene_names == data.gene_names
    assert demo.model.latent_names == data.unmeasured_targets
    held = demo_holdout(NAME)
    assert held and set(held) <= set(data.gene_names)  # knockouts of measured genes, never shown
    assert demo.settings.train_conditions == [c for c in data.conditions if c not in held]



def test_the_demo_knockouts_leave_the_share_of_their_transcript_the_training_knockouts_left(demo, data, tmp_path,
                                                                                           capsys):
    from perturbode_core.data.knockout_level import knockout_level

    # the training knockouts of measured genes (JAK2 and STAT1 keep a quarter, most others ~80 %)
    level = knockout_level(data, demo.settings.train_conditions)
    assert 0.5 < level < 0.75 and demo.model.config.knockout_level == pytest.approx(level, abs=1e-6)
    out = tmp_path / "STAT2.h5ad"  # held out of the demo's training
    assert main(["simulate", "--checkpoint", str(demo_checkpoint_path(NAME)), "--data", str(shipped_path(NAME)),
                 *data_flags(load_options(NAME)), "--perturb", "STAT2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"leaves {100 * level:.0f} % of its own level" in said
    effects = pd.read_csv(tmp_path / "STAT2_effects.csv").set_index("gene")["mean_change"]
    measured = _change(data, "STAT2")["STAT2"]  # -1.21 of a control level of 3.24
    # the knockout lowers its target to what is left of it: -0.85 (-1.26 before the cells whose
    # prediction fell below zero are clipped there) against the measured -1.21; read as a deletion
    # the target would fall by its whole control level, 3.24
    assert abs(effects["STAT2"] - measured) < 0.4
    assert effects["STAT2"] > -0.5 * data.X[data.cells_of(data.control), data.gene_names.index("STAT2")].mean()


def test_the_build_script_trains_the_demo_with_the_datasets_flags_and_holdouts(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_datasets.py"
    spec = importlib.util.spec_from_file_location("build_datasets", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cmd = build.demo_train_command(NAME, shipped_path(NAME), tmp_path)
    assert cmd[cmd.index("--control") + 1] == "non-targeting" and cmd[cmd.index("--guides") + 1] == "guide_counts"
    assert "--normalize" in cmd and cmd[cmd.index("--escapees") + 1] == "drop"
    assert cmd[cmd.index("--holdout") + 1].split(",") == demo_holdout(NAME)
    assert set(json.loads((tmp_path / "config.json").read_text())) == {"model", "train"}


def test_demo_model_knockouts_lower_the_ifn_gamma_response(demo, data):
    """Simulated knockouts of IFNGR1 (not measured), IFNGR2, JAK2 and STAT1 lower JAK2, PSMB9, UBE2L6
    and STAT1, as the data do; CMTM6's knockout moves little else."""
    model = demo.model
    cells = data.control_cells()[:200]
    base = model.simulate(cells, ["control"])[-1, 0].mean(0)
    idx = [data.gene_names.index(g) for g in READOUTS]
    j = data.gene_names.index("CMTM6")

    def off_target(change, target):  # the change of every gene but the knocked-out ones
        return np.delete(change, [data.gene_names.index(g) for g in {target, "CMTM6"} if g in data.gene_names])

    spread = []
    for target in PATHWAY:
        change = model.simulate(cells, [f"{target}:knockout"])[-1, 0].mean(0) - base
        others = [i for g, i in zip(READOUTS, idx) if g != target]  # a knockout's own gene is clamped
        assert (change[others] < -0.3).all(), (target, dict(zip(READOUTS, change[idx].round(2))))
        observed = _change(data, target).to_numpy()
        assert np.corrcoef(change, observed)[0, 1] > 0.7
        spread.append(np.linalg.norm(off_target(change, target)))
    cmtm6 = model.simulate(cells, ["CMTM6:knockout"])[-1, 0].mean(0) - base
    assert cmtm6[j] < -0.5  # its own gene goes down
    # and the rest moves a fraction of what any pathway knockout moves (0.25 when measured)
    assert np.linalg.norm(off_target(cmtm6, "CMTM6")) < 0.35 * min(spread), (np.linalg.norm(cmtm6), spread)


def test_a_demo_module_is_enriched_for_the_interferon_gamma_response(demo):
    from perturbode_core.tools.enrichment import enrich_modules

    res = enrich_modules(demo.model, "hallmark", top_n=20)
    ifng = res[res["term"] == "HALLMARK_INTERFERON_GAMMA_RESPONSE"].sort_values("qvalue")
    assert len(ifng) and ifng["qvalue"].iloc[0] < 0.05, ifng.head()


def test_demo_network_is_supported_by_the_literature_beyond_random(demo):
    """STAT1 (knocked out in the screen) regulates known STAT1 targets in the model; over all TF
    edges, TRRUST supports the strongest 100 beyond the degree-preserving expectation."""
    from perturbode_core.tools import grn
    from perturbode_core.tools.evaluate import literature_check
    from perturbode_core.tools.metrics.literature import load_reference

    edges = grn.model_edges(demo.model)
    stat1 = edges[edges["source"] == "STAT1"].head(5)["target"]
    known = load_reference("collectri", demo.model.gene_names)
    assert stat1.isin(known.loc[known["source"] == "STAT1", "target"]).sum() >= 2, stat1.tolist()
    score = literature_check(demo.model, n_permutations=500)
    table = score.table.set_index(["reference", "top_k"])
    assert set(table.index.get_level_values(0)) == {"collectri", "trrust"} and "degree" in score.note
    row = table.loc[("trrust", 100)]
    assert row["precision"] > 2 * row["random_precision"] and row["p_value"] < 0.05, score.table


def test_the_report_holds_the_knockout_efficiency_and_the_literature_support(demo, data, tmp_path):
    from perturbode_core.tools import report
    from perturbode_core.tools.evaluate import literature_check

    text = report.build_report(report.ReportInputs(data=data, literature_score=literature_check(demo.model,
                                                                                                n_permutations=50)))
    assert "Knockout efficiency (perturbed vs escaping cells)" in text and "IFNGR1" in text
    assert "Set aside on load" in text and "several guides" in text
    assert "Literature support (published TF networks)" in text and "random_precision" in text
