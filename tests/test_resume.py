"""Resume continues a run as saved; one rule for the module count; the dashboard reads a checkpoint once.

Three defects of issue 13, each with the test that failed before the restructuring:
1. the Train page's estimate of K ignored the perturbation count that training uses;
2. ``train --resume`` without ``--epochs`` changed the run length, and dropped ``--modules`` /
   ``--config`` silently;
3. a dashboard resume loaded and gene-checked the checkpoint twice.
"""

import json
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import load_dataset
from perturbode_core.errors import PerturbODEError
from perturbode_core.io import checkpoint
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train import TrainConfig, fit


def cli(*args):
    return subprocess.run([sys.executable, "-m", "perturbode_core", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name, k", [("human-tf-atlas", 45), ("sergio-ds2", 41)])
def test_train_page_estimate_uses_the_module_count_training_builds(name, k):
    from perturbode_ui import training

    data = from_anndata(load_dataset(name))
    built = PerturbODE.from_data(data, ModelConfig()).n_modules
    estimate = training.estimate(SimpleNamespace(data=data), ModelConfig(), TrainConfig(), timed=False)
    assert built == k and estimate["n_modules"] == built


def test_cli_resume_continues_as_saved_and_refuses_conflicts(teacher_h5ad, tmp_path):
    run = tmp_path / "run"
    base = ("train", "--data", teacher_h5ad, "--out", run, "--quiet")
    out = cli(*base, "--epochs", 3, "--modules", 6)
    assert out.returncode == 0, out.stderr
    # no --epochs: the saved run length stands (3 epochs are done: nothing more to train)
    out = cli(*base, "--resume")
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [1, 2, 3]
    assert checkpoint.load_checkpoint(run / "model.pt").settings.train_config.epochs == 3
    # options that would change the saved run are refused by name, and nothing is written
    before = (run / "model.pt").read_bytes()
    out = cli(*base, "--resume", "--modules", 9)
    assert out.returncode == 2 and "n_modules (saved 6, given 9)" in out.stderr, out.stderr
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"train": {"learning_rate": 0.5}}))
    out = cli(*base, "--resume", "--config", cfg)
    assert out.returncode == 2 and "learning_rate" in out.stderr and "Traceback" not in out.stderr
    assert (run / "model.pt").read_bytes() == before
    # what may change does: a longer run
    out = cli(*base, "--resume", "--epochs", 4)
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [1, 2, 3, 4]


def test_fit_resume_refuses_conflicting_options_by_name(teacher_data, tmp_path):
    cfg = TrainConfig(epochs=2, cells_per_condition=8)
    fit(teacher_data, train_config=cfg, checkpoint_path=tmp_path / "m.pt")
    with pytest.raises(PerturbODEError, match=r"l1 \(saved 0.03, given 0.5\)"):
        fit(teacher_data, train_config=TrainConfig(epochs=3, cells_per_condition=8, l1=0.5), resume=tmp_path / "m.pt")
    with pytest.raises(PerturbODEError, match="activation"):
        fit(teacher_data, model_config=ModelConfig(activation="tanh"), resume=tmp_path / "m.pt")
    result = fit(teacher_data, train_config=TrainConfig(epochs=3, cells_per_condition=8), resume=tmp_path / "m.pt")
    assert result.history.epoch.tolist() == [1, 2, 3]


def test_dashboard_resume_reads_the_checkpoint_once(teacher_data, tmp_path, monkeypatch):
    from perturbode_ui import training
    from perturbode_ui.state import AppState

    fit(teacher_data, train_config=TrainConfig(epochs=1, cells_per_condition=8), checkpoint_path=tmp_path / "m.pt")
    state = AppState()
    state.set_data(teacher_data, name="teacher", source="test")
    loads = []
    real = checkpoint.load_checkpoint

    def counting(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "load_checkpoint", counting)
    job = training.start_training(state, train_config=TrainConfig(epochs=2), resume=tmp_path / "m.pt")
    assert job.join(120) and job.status == "done", job.error
    assert len(loads) == 1, loads  # loaded (and gene-checked) once, by the page's call; fit reuses it
    assert job.result.history.epoch.tolist() == [1, 2]
    state.close()
