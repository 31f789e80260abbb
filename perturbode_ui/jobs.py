"""Background training: a worker thread around :func:`perturbode_core.train.loop.fit`.

A Streamlit script run is interrupted by every click, so training must never run in the script
thread. :class:`TrainingJob` runs ``fit`` in a daemon ``threading.Thread``; pages read a
thread-safe :meth:`TrainingJob.snapshot` (status, latest progress, loss history) from a fragment
that reruns every second, and call :meth:`TrainingJob.stop` to end it (``fit`` then returns the
best model so far). A crash in the worker is captured (status ``failed`` with the message); the
checkpoint written at the end of every epoch stays on disk, so the work is never lost and the run
can be resumed from it.

This module does not import streamlit: it is tested directly.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from perturbode_core.errors import PerturbODEError
from perturbode_core.train.memory import estimate_memory  # noqa: F401  (re-exported: the Train page's estimate)

log = logging.getLogger(__name__)

#: Job states. ``done``, ``stopped`` and ``failed`` are final.
STATUSES = ("pending", "running", "done", "stopped", "failed")


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state, safe to read from the script thread."""

    status: str
    progress: object | None          # the latest train.Progress (None before the first step)
    history: list[dict]              # one record per step: step, epoch, train_loss, val_loss, elapsed
    error: str | None                # one-line message when failed
    events: list[str]                # warnings from training (skipped steps, early stop)
    started: float | None
    finished: float | None
    checkpoint_path: str | None      # the last checkpoint on disk (None until one is written)

    @property
    def fraction(self) -> float:
        if self.status == "done":
            return 1.0
        return float(self.progress.fraction) if self.progress is not None else 0.0

    @property
    def finished_flag(self) -> bool:
        return self.status in ("done", "stopped", "failed")


@dataclass
class TrainingJob:
    """Train a model in a background thread.

    Parameters
    ----------
    data
        The :class:`~perturbode_core.data.dataset.PerturbationData` to train on (read only).
    checkpoint_path
        Where ``fit`` writes its resumable checkpoint (a file in the session's private folder).
    model_config, train_config
        Options of :func:`~perturbode_core.train.loop.fit`.
    train_conditions
        Conditions to train on (default: all).
    resume
        A checkpoint to continue from (``train_config.epochs`` may raise the epoch count).
    label
        A name shown on the page ("run 2", "resume of run 1").

    Examples
    --------
    >>> job = TrainingJob(data, checkpoint_path=tmp / "model.pt", train_config=cfg).start()
    >>> job.snapshot().status   # 'running'
    >>> job.stop(); job.join()
    >>> job.result.model        # best weights so far
    """

    data: object
    checkpoint_path: str | Path
    model_config: object | None = None
    train_config: object | None = None
    train_conditions: list[str] | None = None
    resume: str | Path | None = None
    label: str = "training"
    # runtime state (guarded by _lock)
    status: str = field(default="pending", init=False)
    result: object | None = field(default=None, init=False)
    error: str | None = field(default=None, init=False)
    error_detail: str | None = field(default=None, init=False)
    started: float | None = field(default=None, init=False)
    finished: float | None = field(default=None, init=False)

    def __post_init__(self):
        self.checkpoint_path = str(self.checkpoint_path)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._progress = None
        self._history: list[dict] = []
        self._events: list[str] = []
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> "TrainingJob":
        """Start the worker thread (returns at once)."""
        if self._thread is not None:
            raise RuntimeError("A TrainingJob can be started once; create a new one to train again")
        with self._lock:
            self.status = "running"
            self.started = time.time()
        # daemon: a server shutdown must not wait for a long training run
        self._thread = threading.Thread(target=self._run, name=f"perturbode-{self.label}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask training to end after the current step (the best model so far is kept)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; returns True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> JobSnapshot:
        """A copy of status, progress and history that the script thread can use freely."""
        with self._lock:
            ckpt = self.checkpoint_path if Path(self.checkpoint_path).exists() else None
            return JobSnapshot(status=self.status, progress=copy.copy(self._progress),
                               history=list(self._history), error=self.error, events=list(self._events),
                               started=self.started, finished=self.finished, checkpoint_path=ckpt)

    def recover_checkpoint(self):
        """The last checkpoint (best model, history, settings) after a crash or of a running job, or None."""
        from perturbode_core.io import checkpoint

        if not Path(self.checkpoint_path).exists():
            return None
        return checkpoint.load_checkpoint(self.checkpoint_path)

    # ------------------------------------------------------------------ worker
    def _on_progress(self, p) -> None:
        total_steps = max(p.epochs * p.steps_per_epoch, 1)
        with self._lock:
            self._progress = p
            if p.phase == "means":  # the means phase: progress only; the loss curve is the cell phase's
                return
            self._history.append({
                "step": (p.epoch - 1) * p.steps_per_epoch + p.step,
                "epoch": p.epoch - 1 + p.step / max(p.steps_per_epoch, 1),
                "train_loss": None if p.loss is None or not math.isfinite(p.loss) else float(p.loss),
                "val_loss": p.val_loss,
                "elapsed": p.elapsed,
                "total_steps": total_steps,
            })
            if p.message:
                self._events.append(p.message)

    def _run(self) -> None:
        from perturbode_core.train import fit

        try:
            result = fit(self.data, model_config=self.model_config, train_config=self.train_config,
                         train_conditions=self.train_conditions, callback=self._on_progress, stop=self._stop,
                         checkpoint_path=self.checkpoint_path, resume=self.resume)
        except PerturbODEError as exc:
            self._fail(str(exc), traceback.format_exc())
        except Exception as exc:  # a worker crash must reach the page, never vanish with the thread
            log.exception("training worker crashed")
            self._fail(f"Training crashed: {type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            with self._lock:
                self.result = result
                self._events.extend(e for e in result.events if e not in self._events)
                self.status = "stopped" if result.stopped else "done"
                self.finished = time.time()

    def _fail(self, message: str, detail: str) -> None:
        with self._lock:
            self.error = message
            self.error_detail = detail
            if Path(self.checkpoint_path).exists():
                self.error += " The last checkpoint was kept: resume from it or download it."
            self.status = "failed"
            self.finished = time.time()


# ---------------------------------------------------------------------------------- estimates
def estimate_time(data, *, model_config=None, train_config=None, train_conditions=None) -> dict:
    """Estimate training time by timing steps of a real run (then stopping it).

    Times two steps of the means phase (when it runs) and two steps of the cell phase, then
    extrapolates: setup + ``warmup_steps`` x a means step + epochs x steps per epoch x a cell step.
    Returns ``{"seconds", "step_seconds", "steps", "setup_seconds", "means_seconds"}``
    (``step_seconds`` and ``steps``: the cell phase).
    """
    from perturbode_core.train import TrainConfig, fit

    cfg = copy.deepcopy(train_config) if train_config is not None else TrainConfig()
    epochs, warmup = cfg.epochs, max(0, int(cfg.warmup_steps))
    timed = dataclasses.replace(cfg, warmup_steps=min(warmup, 2))  # two means steps time one
    stop = threading.Event()
    seen: dict[str, list] = {"means": [], "cells": []}
    t0 = time.perf_counter()

    def cb(p):
        seen[p.phase].append((time.perf_counter() - t0, p))
        if len(seen["cells"]) >= 2:
            stop.set()

    fit(data, model_config=copy.deepcopy(model_config), train_config=timed,
        train_conditions=train_conditions, callback=cb, stop=stop)
    cells = seen["cells"]
    if not cells:
        return {"seconds": None, "step_seconds": None, "steps": 0, "setup_seconds": None, "means_seconds": None}
    means = seen["means"]
    means_step = (means[-1][0] - means[0][0]) / (len(means) - 1) if len(means) > 1 else 0.0
    setup = means[0][0] - means_step if means else cells[0][0]
    p = cells[-1][1]
    step = (cells[1][0] - cells[0][0]) if len(cells) > 1 else cells[0][0]
    steps = epochs * p.steps_per_epoch
    # validation costs about one forward pass of the held-out conditions per epoch
    val_share = cfg.val_fraction / max(1e-9, 1 - cfg.val_fraction)
    means_seconds = means_step * warmup
    seconds = max(setup, 0.0) + means_seconds + step * steps + epochs * step * 0.4 * val_share
    return {"seconds": float(seconds), "step_seconds": float(step), "steps": int(steps),
            "setup_seconds": float(max(setup, 0.0)), "means_seconds": float(means_seconds)}
