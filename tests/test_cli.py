"""The command line end to end, in a subprocess, as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import networkx as nx
import pandas as pd
import pytest


ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    # this checkout's code first, whatever the working folder (an installed copy must not answer)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "perturbode_core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=env)


def test_help_lists_every_command_and_option():
    out = cli("--help")
    assert out.returncode == 0
    for cmd in ("train", "grn", "simulate"):
        assert cmd in out.stdout
    train_help = cli("train", "--help").stdout
    for opt in ("--data", "--out", "--perturbation-key", "--control", "--epochs", "--seed", "--config", "--resume"):
        assert opt in train_help


def test_train_grn_simulate(teacher_h5ad, tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"train": {"cells_per_condition": 16, "learning_rate": 0.02}, "model": {"n_modules": 8}}')
    out = cli("train", "--data", teacher_h5ad, "--out", run, "--epochs", 3, "--seed", 1, "--config", cfg, "--quiet")
    assert out.returncode == 0, out.stderr
    assert (run / "model.pt").exists() and (run / "grn.csv").exists()
    hist = pd.read_csv(run / "history.csv")
    assert hist.epoch.tolist() == [1, 2, 3]
    out = cli("train", "--data", teacher_h5ad, "--out", run, "--epochs", 5, "--resume", "--quiet")
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [1, 2, 3, 4, 5]

    out = cli("grn", "--checkpoint", run / "model.pt", "--out", tmp_path / "e.csv", "--top-k", 7)
    assert out.returncode == 0 and len(pd.read_csv(tmp_path / "e.csv")) == 7
    out = cli("grn", "--checkpoint", run / "model.pt", "--out", tmp_path / "e.graphml", "--sparsity", 0.1)
    assert out.returncode == 0 and nx.read_graphml(tmp_path / "e.graphml").number_of_edges() == 13

    out = cli("simulate", "--checkpoint", run / "model.pt", "--data", teacher_h5ad, "--perturb",
              "G001:knockout+G004:overexpression=2", "--out", tmp_path / "pred.h5ad")
    assert out.returncode == 0, out.stderr
    pred = ad.read_h5ad(tmp_path / "pred.h5ad")
    assert set(pred.obs.perturbation) == {"control", "G001:knockout+G004:overexpression=2"}
    effects = pd.read_csv(tmp_path / "pred_effects.csv")
    assert effects.set_index("gene").loc["G001", "mean_change"] < 0


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.h5ad", "--out", "r"], "File not found"),
    (["train", "--data", "{h5ad}", "--out", "r", "--control", "ctl"], "Control label 'ctl' does not occur"),
    (["train", "--data", "{h5ad}", "--out", "r", "--perturbation-key", "guide"], "No perturbation column 'guide'"),
    (["train", "--data", "{h5ad}", "--out", "r", "--resume"], "Nothing to resume"),
    (["train", "--data", "{h5ad}", "--out", "r", "--config", "{badcfg}"], "Unknown training option"),
    (["grn", "--checkpoint", "{h5ad}", "--out", "e.csv"], "Not a PerturbODE checkpoint"),
    (["grn", "--checkpoint", "nothing.pt", "--out", "e.csv"], "Checkpoint not found"),
])
def test_errors_are_one_line_without_traceback(args, message, teacher_h5ad, tmp_path):
    badcfg = tmp_path / "bad.json"
    badcfg.write_text('{"train": {"epoch": 3}}')
    args = [a.format(h5ad=teacher_h5ad, badcfg=badcfg) for a in args]
    out = cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")


def test_dataset_without_out_writes_a_default_name(tmp_path):
    """``perturbode dataset myeloid`` writes myeloid.h5ad (and its edges) in the current folder."""
    out = cli("dataset", "myeloid", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "myeloid.h5ad").exists() and (tmp_path / "myeloid_edges.csv").exists()
    assert ad.read_h5ad(tmp_path / "myeloid.h5ad").n_vars == 11


def test_train_seeds_writes_each_seed_and_their_consensus(teacher_h5ad, tmp_path):
    import numpy as np

    from perturbode_core.io.checkpoint import load_model
    from perturbode_core.tools.grn import grn_matrix, network_matrix

    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"train": {"cells_per_condition": 16, "warmup_steps": 100}, "model": {"n_modules": 8}}')
    out = cli("train", "--data", teacher_h5ad, "--out", run, "--epochs", 2, "--seed", 4, "--seeds", 2, "--jobs", 2,
              "--config", cfg, "--quiet", "--top-k", "all")
    assert out.returncode == 0, out.stderr
    assert "consensus of 2 seeds" in out.stdout
    members = [load_model(run / f"seed_{s}" / "model.pt") for s in (4, 5)]
    assert (run / "model.pt").read_bytes() == (run / "seed_4" / "model.pt").read_bytes()  # model.pt: the first
    edges = pd.read_csv(run / "grn.csv")
    genes = members[0].gene_names
    assert len(edges) == len(genes) * (len(genes) - 1)
    assert set(edges.confidence.unique()) <= {0.0, 0.5, 1.0}
    # the weight is the mean of the two seeds' signed scores (the default reading), G the mean of their G
    assert all(m.response_evidence is not None for m in members)
    mean = np.mean([network_matrix(m) for m in members], axis=0)
    mean_G = np.mean([grn_matrix(m) for m in members], axis=0)
    idx = {g: i for i, g in enumerate(genes)}
    for row in edges.head(20).itertuples():
        assert row.weight == pytest.approx(mean[idx[row.target], idx[row.source]], rel=1e-5, abs=1e-7)
        assert row.G == pytest.approx(mean_G[idx[row.target], idx[row.source]], rel=1e-5, abs=1e-7)
    # the two seeds differ (else a consensus would mean nothing)
    assert not np.allclose(grn_matrix(members[0]), grn_matrix(members[1]))


def test_simulate_averages_the_seeds_of_a_run_and_one_seed_when_named(teacher_h5ad, tmp_path):
    import numpy as np

    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.io.checkpoint import load_model
    from perturbode_core.tools.simulate import effect_table, predict_anndata

    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"train": {"cells_per_condition": 16, "warmup_steps": 100}, "model": {"n_modules": 8}}')
    out = cli("train", "--data", teacher_h5ad, "--out", run, "--epochs", 2, "--seed", 9, "--seeds", 2, "--jobs", 2,
              "--config", cfg, "--quiet")
    assert out.returncode == 0, out.stderr
    spec = "G001:knockout"
    out = cli("simulate", "--checkpoint", run / "model.pt", "--data", teacher_h5ad, "--perturb", spec,
              "--out", tmp_path / "mean.h5ad", "--max-cells", 40)
    assert out.returncode == 0, out.stderr
    assert "averaging the predictions of the run's 2 seeds (seed_9, seed_10)" in out.stdout  # numeric order
    members = [load_model(run / f"seed_{s}" / "model.pt") for s in (9, 10)]
    cells = from_anndata(ad.read_h5ad(teacher_h5ad)).control_cells()
    cells = cells[np.random.default_rng(0).choice(len(cells), 40, replace=False)]  # what --max-cells 40 takes
    preds = [predict_anndata(m, cells, ["control", spec]).X for m in members]
    assert not np.allclose(preds[0], preds[1], atol=1e-4)  # the seeds predict differently
    pred = ad.read_h5ad(tmp_path / "mean.h5ad")
    np.testing.assert_allclose(pred.X, (preds[0] + preds[1]) / 2, atol=1e-5)
    assert list(pred.uns["perturbode"]["members"]) == [str(run / "seed_9" / "model.pt"),
                                                      str(run / "seed_10" / "model.pt")]
    table = pd.read_csv(tmp_path / "mean_effects.csv").set_index("gene")
    changes = [effect_table(m, cells, spec).set_index("gene")["mean_change"] for m in members]
    for gene in table.index:
        assert table.loc[gene, "mean_change"] == pytest.approx((changes[0][gene] + changes[1][gene]) / 2, abs=1e-5)
        assert table.loc[gene, "change_sd"] == pytest.approx(abs(changes[0][gene] - changes[1][gene]) / np.sqrt(2),
                                                             abs=1e-5)
        same_sign = np.sign(changes[0][gene]) == np.sign(changes[1][gene])
        assert table.loc[gene, "agreement"] == (1.0 if same_sign else 0.5)
    # one seed named directly: that model alone, the single-model table
    out = cli("simulate", "--checkpoint", run / "seed_10" / "model.pt", "--data", teacher_h5ad, "--perturb", spec,
              "--out", tmp_path / "one.h5ad", "--max-cells", 40)
    assert out.returncode == 0 and "averaging" not in out.stdout, out.stderr
    np.testing.assert_allclose(ad.read_h5ad(tmp_path / "one.h5ad").X, preds[1], atol=1e-5)
    assert "change_sd" not in pd.read_csv(tmp_path / "one_effects.csv").columns


def test_train_seeds_refuses_resume(teacher_h5ad, tmp_path):
    out = cli("train", "--data", teacher_h5ad, "--out", tmp_path / "r", "--seeds", 2, "--resume")
    assert out.returncode != 0 and "cannot resume" in out.stderr and "Traceback" not in out.stderr
