"""The dashboard's background training worker and session state, without a browser or AppTest."""

from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path

import numpy as np
import pytest


from perturbode_core.train import TrainConfig
from perturbode_ui.jobs import TrainingJob, estimate_memory, estimate_time
from perturbode_ui.state import AppState

QUICK = dict(learning_rate=0.02, cells_per_condition=16, batch_conditions=6, seed=0)


def _wait(predicate, timeout=30.0):
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_job_runs_in_background_and_finishes(teacher_data, tmp_path):
    job = TrainingJob(teacher_data, checkpoint_path=tmp_path / "model.pt",
                      train_config=TrainConfig(epochs=3, **QUICK))
    assert job.snapshot().status == "pending"
    job.start()
    assert job._thread is not None and job._thread.name.startswith("perturbode-")
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "done" and snap.fraction == 1.0 and snap.error is None
    assert len(snap.history) == 3 * snap.progress.steps_per_epoch
    assert [h["step"] for h in snap.history] == sorted(h["step"] for h in snap.history)
    assert snap.checkpoint_path and Path(snap.checkpoint_path).exists()
    assert len(job.result.history) == 3


def test_stop_keeps_the_best_model(teacher_data, tmp_path):
    job = TrainingJob(teacher_data, checkpoint_path=tmp_path / "model.pt",
                      train_config=TrainConfig(epochs=2000, **QUICK)).start()
    try:
        _wait(lambda: (job.result is not None) or len(job.snapshot().history) >= 3 * 2)  # 2 steps per epoch
    finally:
        job.stop()
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "stopped"
    assert job.result.stopped and job.result.best_epoch is not None
    assert len(snap.history) < 2000
    assert job.recover_checkpoint() is not None  # the checkpoint on disk is intact


def test_crash_is_captured_and_checkpoint_kept(teacher_data, tmp_path):
    # a private copy of the data, poisoned with NaN once the first checkpoint exists: the worker
    # must report the failure (not die silently) and the last good checkpoint must survive
    data = dataclasses.replace(teacher_data, X=teacher_data.X.copy())
    path = tmp_path / "model.pt"
    job = TrainingJob(data, checkpoint_path=path, train_config=TrainConfig(epochs=2000, **QUICK)).start()
    try:
        _wait(path.exists)
    except AssertionError:
        job.stop()
        raise
    data.X[:] = np.nan  # fit shares this memory
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "failed"
    assert snap.error and "checkpoint was kept" in snap.error
    assert path.exists() and snap.checkpoint_path == str(path)
    ckpt = job.recover_checkpoint()
    assert ckpt is not None and np.isfinite(ckpt.model.A.detach().numpy()).all()


def test_unexpected_exception_in_worker_is_reported(tmp_path):
    job = TrainingJob(None, checkpoint_path=tmp_path / "model.pt", train_config=TrainConfig(epochs=1)).start()
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and snap.error.startswith("Training crashed:")
    assert job.error_detail and "Traceback" in job.error_detail
    assert snap.checkpoint_path is None and job.recover_checkpoint() is None


def test_job_starts_once(teacher_data, tmp_path):
    job = TrainingJob(teacher_data, checkpoint_path=tmp_path / "m.pt", train_config=TrainConfig(epochs=1, **QUICK))
    job.start()
    with pytest.raises(RuntimeError):
        job.start()
    job.join(30)


def test_estimates(teacher_data):
    small = estimate_memory(1000, 50, 50, cells_per_condition=64, batch_conditions=32, horizon=10, step_size=0.5)
    big = estimate_memory(100000, 2000, 512, cells_per_condition=64, batch_conditions=32, horizon=10, step_size=0.5)
    assert 0 < small["total"] < big["total"]
    assert big["data"] == 100000 * 2000 * 4
    adj = estimate_memory(100000, 2000, 512, cells_per_condition=64, batch_conditions=32, horizon=10,
                          step_size=0.5, adjoint=True)
    assert adj["activations"] < big["activations"]
    est = estimate_time(teacher_data, train_config=TrainConfig(epochs=50, **QUICK))
    assert est["seconds"] > 0 and est["steps"] == 50 * 2 and est["step_seconds"] > 0
    # the means phase (1000 steps by default) is timed and counted, not left out
    assert est["means_seconds"] > 0
    assert est["seconds"] >= est["means_seconds"] + est["steps"] * est["step_seconds"]
    cold = estimate_time(teacher_data, train_config=TrainConfig(epochs=50, warmup_steps=0, **QUICK))
    assert cold["means_seconds"] == 0 and cold["steps"] == 50 * 2


def test_means_phase_shows_progress_but_not_in_the_loss_curve(teacher_data, tmp_path):
    seen = []
    job = TrainingJob(teacher_data, checkpoint_path=tmp_path / "m.pt",
                      train_config=TrainConfig(epochs=1, warmup_steps=50, **QUICK))
    original = job._on_progress
    job._on_progress = lambda p: (seen.append((p.phase, job.snapshot().fraction)), original(p))
    job.start()
    assert job.join(60)
    phases = [ph for ph, _ in seen]
    assert phases[:50] == ["means"] * 50 and set(phases[50:]) == {"cells"}
    snap = job.snapshot()
    assert len(snap.history) == snap.progress.steps_per_epoch  # one epoch of cell steps, no means steps


def test_state_invalidates_and_cleans_up(teacher_data):
    from perturbode_core.model import PerturbODE

    model = PerturbODE.from_data(teacher_data)
    state = AppState()
    workdir = state.workdir
    state.set_data(teacher_data, name="teacher", source="test")
    state.set_model(model, source="test")
    state.simulations["x"] = object()
    v = state.model_key
    state.set_data(teacher_data, name="teacher", source="test")  # same genes: the model stays
    assert state.model is model and state.simulations == {} and state.model_key != v
    other = dataclasses.replace(teacher_data, gene_names=[g + "x" for g in teacher_data.gene_names])
    state.set_data(other, name="other", source="test")  # other genes: the model goes
    assert state.model is None and state.checkpoint_path is None
    assert workdir.exists()
    del state
    gc.collect()
    assert not workdir.exists()  # a finished session's files are released
