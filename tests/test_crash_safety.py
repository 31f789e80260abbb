"""Crash safety: atomic writes, SIGKILL mid-epoch then exact resume, a dashboard worker crash.

* Every file the library and the command line write reaches its name by a rename of a temporary
  file that was fsynced first; the final name is never opened for writing (watched with a Python
  audit hook and a recording ``os.fsync``), and a failed write leaves the old file intact.
* ``python -m perturbode_core train`` is killed with SIGKILL in the middle of epochs, several times,
  resumed with ``--resume`` each time; the final weights equal an uninterrupted run's.
* A crash of the dashboard's training worker is shown on the Train page, the last checkpoint is
  kept, and its best model can be made current (AppTest, through the page's own buttons).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from perturbode_core.io import checkpoint
from perturbode_core.io import edges as edge_io
from perturbode_core.tools import grn
from perturbode_core.io.files import atomic_path, write_text_atomic
from perturbode_core.errors import PerturbODEError

# ------------------------------------------------------------------------------ write watcher
_WATCH: dict = {"on": False, "writes": [], "replaces": [], "fsynced": []}


def _audit(event, args):
    if not _WATCH["on"]:
        return
    if event == "open":
        path, mode, flags = args
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                   else bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        if writing:
            _WATCH["writes"].append(os.path.realpath(os.fsdecode(path)))
    elif event in ("os.rename", "os.replace"):
        _WATCH["replaces"].append((os.path.realpath(os.fsdecode(args[0])), os.path.realpath(os.fsdecode(args[1]))))


sys.addaudithook(_audit)  # cannot be removed: it records only while a test switches it on


@pytest.fixture()
def watch(monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        try:
            _WATCH["fsynced"].append(os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:
            pass
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for key in ("writes", "replaces", "fsynced"):
        _WATCH[key] = []
    _WATCH["on"] = True
    yield _WATCH
    _WATCH["on"] = False


def _assert_atomic(folder: Path, watch, *, expect_files: int):
    """Every file in ``folder`` arrived by rename of an fsynced temp file, and was never written in place."""
    files = sorted(os.path.realpath(p) for p in Path(folder).rglob("*") if p.is_file())
    assert len(files) >= expect_files, files
    assert not [f for f in files if f.endswith(".tmp")], "temporary files left behind"
    replaced = {dst: src for src, dst in watch["replaces"]}
    for f in files:
        assert f in replaced, f"{f} was not written atomically (no rename onto it)"
        src = replaced[f]
        assert src in watch["fsynced"], f"{f}: its temporary file was not fsynced before the rename"
        assert Path(src).parent == Path(f).parent, "the temporary file must be in the same folder"
        assert f not in watch["writes"], f"{f} was opened for writing in place"


# ------------------------------------------------------------------------------ atomic writes
def test_library_exports_are_atomic(trained, teacher_data, tmp_path, watch):
    from perturbode_core.tools import report
    from perturbode_core.tools.evaluate import write_tables
    from perturbode_core.datasets.writers import write_h5ad

    edges = grn.model_edges(trained.model, top_k=10)
    checkpoint.save_checkpoint(tmp_path / "model.pt", trained.model, history=trained.history.to_dict("records"))
    edge_io.write_edges_csv(edges, tmp_path / "edges.csv")
    edge_io.write_graphml(edges, tmp_path / "edges.graphml", genes=trained.model.gene_names)
    report.build_report(report.ReportInputs(model=trained.model, edges=edges), tmp_path / "report.html")
    write_tables(edges, tmp_path / "tables")
    write_h5ad(teacher_data.to_anndata(), tmp_path / "data.h5ad")
    _WATCH["on"] = False
    _assert_atomic(tmp_path, watch, expect_files=7)


def test_cli_outputs_are_atomic(teacher_h5ad, tmp_path, watch):
    from perturbode_core.cli import main as cli

    cfg = tmp_path / "cfg" / "c.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"train": {"cells_per_condition": 8, "batch_conditions": 6}}))
    run, out = tmp_path / "run", tmp_path / "out"
    assert cli.main(["train", "--data", str(teacher_h5ad), "--out", str(run), "--epochs", "2", "--quiet",
                     "--config", str(cfg)]) == 0
    ckpt = str(run / "model.pt")
    assert cli.main(["grn", "--checkpoint", ckpt, "--out", str(out / "g.graphml")]) == 0
    assert cli.main(["simulate", "--checkpoint", ckpt, "--data", str(teacher_h5ad), "--perturb", "G001",
                     "--out", str(out / "pred.h5ad"), "--max-cells", "20"]) == 0
    assert cli.main(["modules", "--checkpoint", ckpt, "--out", str(out / "modules.csv")]) == 0
    _WATCH["on"] = False
    _assert_atomic(run, watch, expect_files=3)   # model.pt (every epoch), history.csv, grn.csv
    _assert_atomic(out, watch, expect_files=4)   # graphml, pred.h5ad, pred_effects.csv, modules.csv
    # the checkpoint was replaced at every epoch, never rewritten in place
    assert sum(dst == os.path.realpath(ckpt) for _, dst in watch["replaces"]) >= 2


def test_the_watcher_catches_a_write_in_place(tmp_path, watch):
    """The check above can fail: a plain write (no temp file, no rename) is caught."""
    (tmp_path / "plain.csv").write_text("a,b\n")
    _WATCH["on"] = False
    with pytest.raises(AssertionError, match="not written atomically"):
        _assert_atomic(tmp_path, watch, expect_files=1)


def test_failed_write_leaves_the_old_file_intact(trained, tmp_path):
    path = tmp_path / "model.pt"
    checkpoint.save_checkpoint(path, trained.model)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(before[:100])  # half a file ...
            raise RuntimeError("disk full")       # ... then the writer dies
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    checkpoint.load_checkpoint(path)
    write_text_atomic(tmp_path / "t.txt", "ok")
    assert (tmp_path / "t.txt").read_text() == "ok"


# ------------------------------------------------------------------------------ SIGKILL + resume
EPOCHS = 10
KILL_AFTER = (2, 5, 7)  # kill in the epoch after each of these checkpoints: three kill/resume cycles
TRAIN_CFG = {"train": {"batch_conditions": 3, "cells_per_condition": 16, "learning_rate": 0.02, "seed": 3}}


def _train_cmd(data, run, cfg, *, resume=False):
    cmd = [sys.executable, "-m", "perturbode_core", "train", "--data", str(data), "--out", str(run),
           "--epochs", str(EPOCHS), "--config", str(cfg), "--quiet"]
    return cmd + (["--resume"] if resume else [])


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _saved_epoch(path: Path) -> int:
    try:
        return checkpoint.load_checkpoint(path).resume_state.epoch
    except (PerturbODEError, AttributeError):
        return 0


def _kill_mid_epoch(cmd, ckpt: Path, after: int, cwd) -> int:
    """Start training, wait for the checkpoint of epoch ``after``, SIGKILL it half an epoch later."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.perf_counter()
        while _saved_epoch(ckpt) < after:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.perf_counter() - t0 < 240, "training did not progress"
            time.sleep(0.02)
        hist = checkpoint.load_checkpoint(ckpt).history
        epoch_s = float(hist["elapsed"].iloc[-1] - hist["elapsed"].iloc[-2]) if len(hist) > 1 else 0.1
        time.sleep(min(epoch_s, 1.0) * 0.5)  # into the next epoch
        assert proc.poll() is None, "finished before it could be killed"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return _saved_epoch(ckpt)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(teacher_h5ad, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TRAIN_CFG))
    ref_run, run = tmp_path / "reference", tmp_path / "killed"
    # the uninterrupted reference runs alongside the first killed run
    reference = subprocess.Popen(_train_cmd(teacher_h5ad, ref_run, cfg), cwd=tmp_path, env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    epochs_at_kill = []
    for cycle, after in enumerate(KILL_AFTER):
        epoch = _kill_mid_epoch(_train_cmd(teacher_h5ad, run, cfg, resume=cycle > 0), run / "model.pt", after,
                                tmp_path)
        assert epoch >= after
        if epochs_at_kill:
            assert epoch > epochs_at_kill[-1], "the resumed run made progress before the next kill"
        epochs_at_kill.append(epoch)
        # what the kill left is an intact, loadable checkpoint of a complete epoch
        assert len(checkpoint.load_checkpoint(run / "model.pt").history) == epoch
    done = subprocess.run(_train_cmd(teacher_h5ad, run, cfg, resume=True), cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-2000:]
    reference.stderr.close()

    a, b = checkpoint.load_checkpoint(ref_run / "model.pt"), checkpoint.load_checkpoint(run / "model.pt")
    assert a.resume_state.epoch == b.resume_state.epoch == EPOCHS
    for which in ("last_state_dict", "best_state_dict"):
        wa, wb = getattr(a.resume_state, which), getattr(b.resume_state, which)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{which}[{k}] differs after {len(KILL_AFTER)} kills"
    # every epoch's loss too: nothing was lost or repeated
    assert a.history["train_loss"].tolist() == b.history["train_loss"].tolist()
    # and the clock went on across the kills (a resumed run's elapsed time continues, never restarts)
    assert b.history["elapsed"].is_monotonic_increasing
    assert (run / "grn.csv").read_text() == (ref_run / "grn.csv").read_text()
    print(f"\nSIGKILL/resume cycles: {len(KILL_AFTER)} (killed after epochs {epochs_at_kill}); final weights identical")


# ------------------------------------------------------------------------------ dashboard worker crash
def test_worker_crash_is_shown_on_the_page_and_nothing_is_lost(teacher_data):
    from streamlit.testing.v1 import AppTest

    from perturbode_ui.state import STATE_KEY

    at = AppTest.from_file(str(ROOT / "pages" / "train_page.py"), default_timeout=120)
    at.run()
    state = at.session_state[STATE_KEY]
    # a private copy of the data: poisoned below, after the first checkpoint, to crash the worker
    data = dataclasses.replace(teacher_data, X=teacher_data.X.copy())
    state.set_data(data, name="teacher", source="test")
    at.run()
    at.number_input(key="train_epochs").set_value(5000)
    at.number_input(key="train_cells").set_value(8)
    at.number_input(key="train_batch").set_value(6)
    at.number_input(key="train_val").set_value(0.0)
    at.button(key="train_start").click()
    at.run()
    assert not at.exception, at.exception
    job = state.job
    assert job is not None and job.running, [e.value for e in at.error]
    ckpt = Path(job.checkpoint_path)
    try:
        t0 = time.perf_counter()
        while _saved_epoch(ckpt) < 2:
            assert time.perf_counter() - t0 < 120 and job.running, job.snapshot().error
            time.sleep(0.05)
    except AssertionError:
        job.stop()
        raise
    data.X[:] = np.nan  # the worker's next steps diverge: fit gives up after 8 halvings
    assert job.join(120)
    saved = checkpoint.load_checkpoint(ckpt)

    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("diverged" in e and "checkpoint was kept" in e for e in errors), errors
    assert state.model is None or state.model_source != "trained"  # a failed run is not adopted
    # nothing lost: the checkpoint holds every completed epoch, and its best model can be made current
    assert len(saved.history) >= 2 and saved.resume_state.epoch == len(saved.history)
    at.button(key="train_recover").click()
    at.run()
    assert not at.exception, at.exception
    assert state.model is not None and "recovered" in state.model_source
    best = saved.resume_state.best_state_dict or saved.resume_state.last_state_dict
    for k, v in state.model.state_dict().items():
        assert torch.equal(v, best[k]), k
    assert Path(state.checkpoint_path) == ckpt and ckpt.exists()
