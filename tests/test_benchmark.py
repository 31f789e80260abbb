"""The benchmark end to end on a tiny dataset: one row per method, baselines beside the model."""

import subprocess
import sys

import pandas as pd
import pytest

from perturbode_core.tools.evaluate import run_benchmark, run_stability, to_markdown
from perturbode_core.cli.cmd_benchmark import parse_holdout
from perturbode_core.errors import PerturbODEError
from perturbode_core.datasets.teacher import teacher_edges
from perturbode_core.train import TrainConfig


def test_cli_benchmark_writes_one_row_per_method(teacher, teacher_h5ad, tmp_path):
    truth = tmp_path / "truth.csv"
    teacher_edges(teacher).to_csv(truth, index=False)
    out = subprocess.run([sys.executable, "-m", "perturbode_core", "benchmark", "--data", str(teacher_h5ad),
                          "--truth", str(truth), "--holdout", "G003,G007", "--epochs", "40", "--out",
                          str(tmp_path / "bench")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "bench" / "table.csv")
    assert table.method.tolist() == ["PerturbODE", "PerturbODE, G only", "correlation", "knockout_zscore",
                                     "knockout_zscore_control", "genie3", "no_change", "mean_shift", "linear", "additive"]
    assert table.set_index("method").loc["PerturbODE, G only", "kind"] == "model reading"
    assert {"aupr", "auroc", "early_precision", "heldout_w2", "heldout_pearson_delta"} <= set(table.columns)
    model = table.set_index("method")
    # the teacher's network is learnable: far above the random AUPR (its edge density, about 0.18)
    assert model.loc["PerturbODE", "aupr"] > 0.5
    # and the held-out knockouts are predicted better than "no change"
    assert model.loc["PerturbODE", "heldout_w2"] < model.loc["no_change", "heldout_w2"]
    assert "| PerturbODE |" in (tmp_path / "bench" / "table.md").read_text()
    per = pd.read_csv(tmp_path / "bench" / "per_condition.csv")
    assert set(per.condition) == {"G003", "G007"}


def test_stability_over_seeds(teacher_data, teacher):
    out = run_stability(teacher_data, [0, 1, 2], truth=teacher_edges(teacher),
                        train_config=TrainConfig(epochs=15, cells_per_condition=16, learning_rate=0.02), log=None)
    assert out["metrics"].seed.tolist() == [0, 1, 2]
    assert {"mean", "std"} <= set(out["spread"].columns) and "aupr" in out["spread"].index
    cons = out["consensus"]
    assert cons.frequency.between(0, 1).all() and len(cons) >= len(teacher_edges(teacher))
    with pytest.raises(PerturbODEError, match="at least two seeds"):
        run_stability(teacher_data, [0])


def test_holdout_parsing_and_markdown():
    assert parse_holdout("3") == 3 and parse_holdout("0.25") == 0.25 and parse_holdout("A, B") == ["A", "B"]
    md = to_markdown(pd.DataFrame({"method": ["x"], "aupr": [0.5], "w2": [float("nan")]}))
    assert md.splitlines()[2] == "| x | 0.500 | - |"


def test_unknown_baseline_is_named(teacher_data):
    with pytest.raises(PerturbODEError, match="Unknown network baseline.*magic"):
        run_benchmark(teacher_data, network_baselines=("magic",), log=None)
