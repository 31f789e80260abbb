"""Train page: a background run with progress, Stop, a crash shown on the page, checkpoints in and out."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest


from perturbode_core.io import checkpoint
from perturbode_core.model import PerturbODE
from perturbode_core.train import TrainConfig
from perturbode_ui import training
from perturbode_ui.state import STATE_KEY


@pytest.fixture()
def app(start_app):
    at = start_app()
    at.switch_page("pages/train_page.py").run()
    assert not at.exception
    yield at
    job = at.session_state[STATE_KEY].job
    if job is not None:  # never leave a worker running after a test
        job.stop()
        job.join(30)


def _wait(predicate, timeout=60.0):
    t0 = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - t0 < timeout, "timed out"
        time.sleep(0.05)


def _errors(at):
    return " ".join(e.value for e in at.error)


def test_estimate_then_short_training(app):
    state = app.session_state[STATE_KEY]
    demo_model = state.model
    app.number_input(key="train_epochs").set_value(4)
    app.number_input(key="train_cells").set_value(16)
    app.button(key="train_estimate").click().run()
    assert not app.exception and "Estimate: about" in app.info[0].value and "MB" in app.info[0].value
    app.button(key="train_start").click().run()
    assert not app.exception
    job = state.job
    assert job is not None and job.status in ("running", "done")
    assert job._thread is not None and job._thread.name != "MainThread"  # never in the script thread
    lengths = []
    _wait(lambda: lengths.append(len(job.snapshot().history)) or not job.running)
    assert job.snapshot().status == "done"
    assert lengths[-1] == 4 * job.snapshot().progress.steps_per_epoch and lengths[-1] >= lengths[0]
    app.run()
    assert not app.exception and not app.error
    assert state.model is not demo_model and state.model_source.startswith("trained (run 1")
    assert len(state.history) == 4
    assert app.get("download_button")  # the checkpoint can be downloaded
    assert state.checkpoint_bytes()[:2] == b"PK"  # a torch zip archive
    # issue 15, item 1: a finished run is current, not silently: the demo is kept and one click away
    assert set(state.models) == {"demo", state.current_model} and "now the current model" in state.notice.text
    # the loss is drawn once (the run's history), not also as the finished job's live curve
    losses = [c for c in app.get("plotly_chart") if "Loss" in c.proto.spec or "history" in c.proto.spec]
    assert len(losses) == 1, len(losses)
    app.button(key="page_notice_undo").click().run()
    assert not app.exception and state.current_model == "demo" and state.model is demo_model
    assert len(state.models) == 2


def test_stop_keeps_the_best_model(app):
    """Issue 15, item 1: a stopped run is kept and offered; the current model stays until the user
    takes the stopped one."""
    state = app.session_state[STATE_KEY]
    demo_model = state.model
    app.number_input(key="train_epochs").set_value(5000)
    app.number_input(key="train_cells").set_value(16)
    app.button(key="train_start").click().run()
    job = state.job
    _wait(lambda: len(job.snapshot().history) >= 3)
    app.run()  # the live fragment shows progress and the Stop button
    assert any(p.value >= 0 for p in app.get("progress"))
    app.button(key="train_stop").click().run()
    assert job.join(30)
    assert job.snapshot().status == "stopped" and job.result.best_epoch is not None
    app.run()
    assert not app.exception
    assert state.model is demo_model and state.current_model == "demo"  # not imposed
    offered = state.notice.offer_model
    assert offered in state.models and state.models[offered].source.endswith("stopped early)")
    assert "stopped at epoch" in state.notice.text
    app.button(key="page_notice_use").click().run()  # ... but offered
    assert not app.exception
    assert "stopped early" in state.model_source and state.model is job.result.model and state.notice is None
    # resume continues from the stopped run's checkpoint in a new run
    new = training.start_training(state, train_config=TrainConfig(epochs=job.result.best_epoch + 1),
                                  resume=training.resumable_checkpoint(state))
    assert new.join(60) and new.snapshot().status == "done", new.snapshot().error
    assert new.result.history["epoch"].iloc[0] == 1  # history carried over from the first run


def test_worker_crash_is_shown_and_checkpoint_kept(app):
    state = app.session_state[STATE_KEY]
    # a private copy of the data, poisoned with NaN once the first checkpoint exists
    state.data = dataclasses.replace(state.data, X=state.data.X.copy())
    job = training.start_training(state, train_config=TrainConfig(epochs=5000, cells_per_condition=16))
    _wait(lambda: job.snapshot().checkpoint_path is not None)
    state.data.X[:] = np.nan  # the worker shares this memory
    assert job.join(60)
    app.run()
    assert not app.exception
    assert job.status == "failed" and "checkpoint was kept" in _errors(app)
    assert Path(job.checkpoint_path).exists()
    assert app.button(key="train_resume_failed") and app.button(key="train_recover")
    app.button(key="train_recover").click().run()
    assert not app.exception and state.model_source.startswith("recovered")
    assert np.isfinite(state.model.A.detach().numpy()).all()


def test_checkpoint_upload_checks_genes(app, teacher_data, tmp_path):
    state = app.session_state[STATE_KEY]
    path = checkpoint.save_checkpoint(tmp_path / "other.pt", PerturbODE.from_data(teacher_data))
    app.file_uploader(key="train_upload").upload("other.pt", path.read_bytes()).run()
    app.button(key="train_use_upload").click().run()
    assert not app.exception and "trained on other genes" in _errors(app)
    assert state.model_source == "demo checkpoint"
    app.file_uploader(key="train_upload").set_value(("junk.pt", b"not a checkpoint", "application/octet-stream")).run()
    app.button(key="train_use_upload").click().run()
    assert "Not a PerturbODE checkpoint" in _errors(app)
    # a checkpoint that fits is taken
    good = tmp_path / "good.pt"
    good.write_bytes(state.checkpoint_bytes())
    app.file_uploader(key="train_upload").set_value(("good.pt", good.read_bytes(), "application/octet-stream")).run()
    app.button(key="train_use_upload").click().run()
    assert not app.error and state.model_source == "uploaded good.pt"
