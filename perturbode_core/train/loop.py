"""Training: ``fit()`` matches simulated to observed populations with an optimal-transport loss.

Each step samples control cells as start states, integrates every condition of a minibatch in one
batched solve (the control condition too: controls should stay controls), and minimises

    mean over groups of OT(simulated, observed) / p  +  l1 * (mean|A| + mean|B|)

Network accuracy peaks before the fit converges, so a validation signal (the loss of held-out
conditions) picks the best epoch; the returned model carries the best weights.

Determinism and resume: every random draw comes from one ``torch.Generator``; its state, the
optimizer state and the weights are saved at the end of each epoch, so a resumed run continues
exactly where the uninterrupted one would be.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from perturbode_core.data.dataset import PerturbationData
from perturbode_core.data.splits import validation_conditions
from perturbode_core.errors import PerturbODEError, PerturbODEWarning
from perturbode_core.io import checkpoint as ckpt_io
from perturbode_core.io.checkpoint import Checkpoint, TrainedSettings
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train import distributed as dist_
from perturbode_core.train.allocator import tune_allocator
from perturbode_core.train.autobatch import fill_device
from perturbode_core.train.batches import ConditionGroups, group_loss, row_reader
from perturbode_core.train.device import matmul_precision, resolve_device
from perturbode_core.train.resume import resume_settings
from perturbode_core.train.train_config import TrainConfig
from perturbode_core.train.warmup import fit_means
from perturbode_core.tools.response_evidence import response_evidence


@dataclass
class Progress:
    """A snapshot of training, passed to the callback after every step."""

    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    loss: float
    val_loss: float | None
    best_epoch: int | None
    elapsed: float
    eta: float | None
    message: str = ""
    phase: str = "cells"

    @property
    def fraction(self) -> float:
        """Share of the current phase done so far (0-1): the steps of the means phase
        (``phase == "means"``, epoch 0) or of all epochs of the cell phase."""
        if self.phase == "means":
            return min(1.0, self.step / max(self.steps_per_epoch, 1))
        total = self.epochs * self.steps_per_epoch
        return min(1.0, ((self.epoch - 1) * self.steps_per_epoch + self.step) / max(total, 1))


@dataclass
class FitResult:
    """What :func:`fit` returns: the model with its best weights, and how training went."""

    model: PerturbODE
    history: pd.DataFrame
    best_epoch: int | None
    stopped: bool
    train_conditions: list[str]
    val_conditions: list[str]
    train_config: TrainConfig
    events: list[str] = field(default_factory=list)

    @property
    def settings(self) -> TrainedSettings:
        """What the model was trained with (the same object a loaded checkpoint gives)."""
        return TrainedSettings(model_config=self.model.config, train_config=self.train_config,
                               best_epoch=self.best_epoch, train_conditions=list(self.train_conditions),
                               val_conditions=list(self.val_conditions), events=list(self.events))


def fit(
    data: PerturbationData,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    train_conditions: list[str] | None = None,
    model: PerturbODE | None = None,
    callback: Callable[[Progress], None] | None = None,
    stop=None,
    checkpoint_path: str | Path | None = None,
    resume: str | Path | Checkpoint | None = None,
) -> FitResult:
    """Train a PerturbODE model on perturbation data.

    Parameters
    ----------
    data
        A validated :class:`~perturbode_core.data.dataset.PerturbationData`.
    model_config, train_config
        Options (defaults when omitted).
    train_conditions
        Conditions to train on (e.g. from :func:`~perturbode_core.data.splits.split_conditions`);
        the rest are never seen. Default: all.
    model
        Start from this model instead of a fresh one.
    callback
        Called after every step with a :class:`Progress` snapshot.
    stop
        Anything with ``is_set()`` (e.g. ``threading.Event``): when set, training ends after the
        current step and the best model so far is returned.
    checkpoint_path
        Write a resumable checkpoint here (atomically) every ``checkpoint_every`` epochs and at the
        end.
    resume
        A checkpoint written by an earlier run (a path, or one already loaded with
        :func:`~perturbode_core.io.checkpoint.load_checkpoint`): training continues exactly where
        it stopped, with the saved options. Options given beside it must agree with the saved ones,
        except those in :data:`~perturbode_core.train.resume.RESUME_MAY_CHANGE` (``epochs`` may be
        raised to train longer); conflicts are refused, naming them.
    """
    torch_threads = torch.get_num_threads()
    resumed = None
    if resume is not None:
        resumed = resume if isinstance(resume, Checkpoint) else \
            ckpt_io.load_checkpoint(resume, genes=data.gene_names)
        model_config, train_config, train_conditions = resume_settings(
            resumed, model_config=model_config, train_config=train_config, train_conditions=train_conditions)
    cfg = train_config or TrainConfig()
    conditions, fit_conditions, val_conditions = _plan_conditions(data, cfg, train_conditions, resumed)
    if model is None:
        model = PerturbODE.from_data(data, model_config or ModelConfig(), conditions=fit_conditions + val_conditions,
                                     seed=cfg.seed)
    if model.gene_names != list(data.gene_names):
        raise PerturbODEError("The model was built for other genes than the data's", where=data.source,
                              fix="Train a new model on these data, or load data with the model's genes")
    model.response_evidence = None  # it described other weights; the result gets its own
    run = _Run(data, model, cfg, conditions, fit_conditions, val_conditions, checkpoint_path)
    if resumed is not None:
        run.restore(resumed)
    try:
        with matmul_precision(run.cfg.matmul_precision, str(run.device)):
            stopped = run.warm_up(callback, stop) if resumed is None else False
            if not stopped:
                stopped = run.train(callback, stop)
    finally:
        torch.set_num_threads(torch_threads)
    return run.result(stopped)


def _plan_conditions(data, cfg: TrainConfig, train_conditions, resumed) -> tuple[list[str], list[str], list[str]]:
    """``(conditions, fit, validation)``: every training condition (control first when missing),
    those the weights are fitted on, and those that only pick the best epoch (never the control)."""
    if data.n_cells < 1 or len(data.cells_of(data.control)) == 0:
        raise PerturbODEError("No control cells to start from", where=data.source,
                              fix="Include control cells in the data")
    conditions = list(train_conditions) if train_conditions is not None else list(data.conditions)
    unknown = [c for c in conditions if c not in set(data.conditions)]
    if unknown:
        raise PerturbODEError(f"Training condition(s) not in the data: {', '.join(unknown[:5])}",
                              where=data.source, fix="Choose conditions the data contain")
    if data.control not in conditions:
        conditions = [data.control] + conditions
    if resumed is not None:
        val = list(resumed.settings.val_conditions)
    elif cfg.val_conditions:
        val = list(cfg.val_conditions)
        missing = [c for c in val if c not in set(conditions)]
        if missing:
            raise PerturbODEError(f"Validation condition(s) not among the training conditions: {', '.join(missing)}",
                                  where="option 'val_conditions'", fix="Choose conditions the data contain")
    else:
        val = validation_conditions([c for c in conditions if c != data.control], cfg.val_fraction, seed=cfg.seed)
    fit_conditions = [c for c in conditions if c not in set(val)]
    if len(fit_conditions) < 2:
        raise PerturbODEError("No perturbed conditions to train on (only control cells)", where=data.source,
                              fix="Include perturbed cells, or hold out fewer conditions for validation")
    return conditions, fit_conditions, val


class _Run:
    """One training run: the optimiser, the random generator, the minibatch groups, the history
    and the best weights, with one method per seam (a step, an epoch, validation, checkpoints)."""

    def __init__(self, data, model: PerturbODE, cfg: TrainConfig, conditions, fit_conditions, val_conditions,
                 checkpoint_path):
        self.data, self.model, self.cfg = data, model, cfg
        self.conditions, self.val_conditions = conditions, val_conditions
        self.checkpoint_path = checkpoint_path
        torch.manual_seed(cfg.seed)  # nothing should use the global RNG; this guards third-party code
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.device = torch.device(resolve_device(cfg.device))
        tune_allocator()
        self.shard = dist_.shard_info()  # (rank, world) under torchrun, else None
        model.to(self.device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.step_module = dist_.wrap(model) if self.shard is not None else None
        # rows are read from the data's own array when sampled (standardised on the way), so the
        # dataset is never copied and memory does not grow with the number of cells
        self.rows = row_reader(data.X, model, self.device)
        self.train_groups = ConditionGroups(model, data, fit_conditions).to(self.device)
        self.val_groups = ConditionGroups(model, data, [data.control] + val_conditions).to(self.device) \
            if val_conditions else None
        control_all = torch.as_tensor(data.cells_of(data.control))
        if data.times is not None:
            ctrl_t = data.times[data.cells_of(data.control)]
            control_all = control_all[torch.as_tensor(ctrl_t == ctrl_t.min())]
        self.control_all = control_all
        if cfg.mean_weight > 0 or cfg.warmup_steps > 0:
            for groups in (self.train_groups, self.val_groups):
                if groups is not None:
                    groups.set_means(self.rows, control_all.numpy())
        self.perturbed_groups = [g for g in range(len(self.train_groups.members))
                                 if g not in self.train_groups.control_group]
        # on CUDA a step sized to fill the GPU (CPU: the options exactly as given)
        sizes = [len(self.train_groups.members[g]) for g in self.perturbed_groups]
        cfg, size_note = fill_device(cfg, model, self.device, sizes, n_start=len(control_all), shard=self.shard)
        self.cfg = cfg
        self.opt = torch.optim.Adam(self.params, lr=cfg.learning_rate)
        self.per_step = max(1, cfg.batch_conditions)
        self.steps_per_epoch = max(1, math.ceil(len(self.perturbed_groups) / self.per_step))
        self.history: list[dict] = []
        self.events: list[str] = [size_note] if size_note else []
        self.best_metric, self.best_epoch, self.bad_epochs, self.start_epoch = math.inf, None, 0, 1
        self.best_state = copy.deepcopy(model.state_dict())
        self.saves = checkpoint_path is not None and dist_.is_main()
        self.consecutive_bad = 0
        self.lr_scale = 1.0  # halved by every skipped (non-finite) step, on top of the schedule
        self.last_snap = None  # the last complete epoch's state, written again once the evidence is known

    # ------------------------------------------------------------------ phase one: the means
    def warm_up(self, callback, stop) -> bool:
        """Fit the condition means first (:mod:`~perturbode_core.train.warmup`); True when stopped.
        Its result is the best model so far (epoch 0) until an epoch of the cell phase beats it."""
        if self.cfg.warmup_steps <= 0:
            return False
        t0 = time.perf_counter()

        def on_step(step, steps, loss):
            if callback is not None:
                elapsed = time.perf_counter() - t0
                callback(Progress(0, self.cfg.epochs, step, steps, loss, None, None, elapsed,
                                  elapsed / step * (steps - step), "fitting the condition means", phase="means"))

        summary = fit_means(self.model, self.train_groups, self.cfg, val_groups=self.val_groups, callback=on_step,
                            stop=stop)
        self.events.append(f"means phase: {summary['steps']} steps, mean-shift error {summary['loss']:.4g}"
                           + ("" if summary["val_loss"] is None else f" (validation {summary['val_loss']:.4g})"))
        self.best_state = copy.deepcopy(self.model.state_dict())
        vloss = self.val_loss()
        if vloss is not None:
            self.best_metric, self.best_epoch = vloss, 0
        stopped = stop is not None and stop.is_set()
        if stopped:
            self.write_checkpoint(self.snapshot(0))
        return stopped

    # ------------------------------------------------------------------ resume and checkpoints
    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint's last complete epoch (weights, optimiser, RNG, counters)."""
        rs = ckpt.resume_state
        self.model.load_state_dict(rs.last_state_dict)
        self.opt.load_state_dict(rs.optimizer)
        self.gen.set_state(rs.rng)
        self.history = ckpt.history.replace({np.nan: None}).to_dict("records")
        self.best_metric = rs.best_metric if rs.best_metric is not None else math.inf
        self.best_epoch, self.bad_epochs, self.start_epoch = rs.best_epoch, rs.bad_epochs, rs.epoch + 1
        self.best_state = rs.best_state_dict or copy.deepcopy(self.model.state_dict())
        self.lr_scale = float(rs.lr_scale)

    def snapshot(self, epoch_done: int) -> dict | None:
        """The resumable state at the end of ``epoch_done`` (a stop mid-epoch resumes from here);
        only the checkpoint reads it, so no deep copies are made when none is written."""
        if not self.saves:
            return None
        return {
            "state_dict": copy.deepcopy(self.model.state_dict()), "optimizer": copy.deepcopy(self.opt.state_dict()),
            "rng": self.gen.get_state().clone(), "epoch": epoch_done, "history": copy.deepcopy(self.history),
            "best_metric": None if not math.isfinite(self.best_metric) else self.best_metric,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "best_state_dict": copy.deepcopy(self.best_state), "lr_scale": self.lr_scale,
        }

    def write_checkpoint(self, snap: dict | None) -> None:
        if not self.saves or snap is None:
            return
        ckpt_io.save_checkpoint(
            self.checkpoint_path, self.model, state_dict=snap["state_dict"], best_state_dict=snap["best_state_dict"],
            history=snap["history"], data=self.data, extra={"events": list(self.events)},
            train_state={
                "optimizer": snap["optimizer"], "rng": snap["rng"], "epoch": snap["epoch"],
                "best_metric": snap["best_metric"], "best_epoch": snap["best_epoch"],
                "bad_epochs": snap["bad_epochs"], "lr_scale": snap["lr_scale"], "train_config": self.cfg.to_dict(),
                "train_conditions": self.conditions, "val_conditions": self.val_conditions,
            })

    # ------------------------------------------------------------------ one step
    def step(self, group_ids: list[int], epoch: int) -> float | None:
        """One optimisation step on ``group_ids``; returns its loss, or None when it was skipped
        (a non-finite loss or gradient halves the learning rate instead of poisoning the weights)."""
        cfg, model = self.cfg, self.model
        if self.shard is None:
            per_group, _ = group_loss(model, self.train_groups, group_ids, self.rows, self.control_all, cfg,
                                      self.gen, cfg.noise)
            loss, report = per_group.mean() + self._penalty(), None
        else:
            # this rank's groups; sum / (all groups) * world: DDP averages gradients over
            # ranks, so the update equals the single-process mean over the global batch. The
            # penalty is inside the synchronised forward (each rank adds it whole; the average is
            # it once): outside it, a parameter idle in this rank's block (a latent regulator's
            # input) would get its gradient hook fired after DDP had marked it unused
            loss, report = dist_.sharded_loss(
                self.step_module, lambda: group_loss(model, self.train_groups, group_ids, self.rows, self.control_all,
                                                     cfg, self.gen, cfg.noise, self.shard),
                len(group_ids), self.shard[1], extra=self._penalty)
        self.opt.zero_grad(set_to_none=True)
        # under DDP the decision must be the same on every rank: judge the global loss
        loss_value = float(loss.detach()) if report is None else report
        ok = math.isfinite(loss_value)
        if ok:
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            ok = bool(torch.isfinite(gnorm))
        if ok:
            self.opt.step()
            self.consecutive_bad = 0
            return loss_value
        self._skip(epoch)
        return None

    def _penalty(self) -> torch.Tensor:
        """The sparsity penalty (and the per-target shift shrinkage) of one step."""
        penalty = self.cfg.l1 * self.model.l1_penalty()
        if self.model.config.learn_shift_per_target:
            penalty = penalty + self.model.config.shift_shrinkage * (self.model.log_delta ** 2).mean()
        return penalty

    def _skip(self, epoch: int) -> None:
        """Numerical blow-up (stiff dynamics, extreme values): skip the step and halve the rate."""
        self.consecutive_bad += 1
        self.lr_scale *= 0.5
        for group in self.opt.param_groups:
            group["lr"] *= 0.5
        msg = (f"epoch {epoch}: non-finite loss or gradient; step skipped and learning rate "
               f"lowered to {self.opt.param_groups[0]['lr']:.2e}")
        self.events.append(msg)
        warnings.warn(msg, PerturbODEWarning, stacklevel=5)  # the caller of fit()
        if self.consecutive_bad >= 8:
            raise PerturbODEError(
                "Training diverged: the loss stayed NaN/infinite after 8 learning-rate halvings",
                where=f"epoch {epoch}",
                fix="Lower learning_rate or step_size, shorten the horizon, or check the data for extreme values")

    # ------------------------------------------------------------------ validation and epochs
    def val_loss(self) -> float | None:
        """Mean OT loss of the validation conditions (the same cells at every epoch)."""
        if self.val_groups is None:
            return None
        vgen = torch.Generator().manual_seed(self.cfg.seed + 7919)
        with torch.no_grad():
            ids = [g for g in range(len(self.val_groups.members)) if g not in self.val_groups.control_group]
            losses, _ = group_loss(self.model, self.val_groups, ids, self.rows, self.control_all, self.cfg, vgen, 0.0)
            return float(losses.mean())

    def end_epoch(self, epoch: int, losses: list[float], skipped: int, elapsed: float) -> bool:
        """Validate, keep the best weights, record the epoch; True when early stopping says stop."""
        self.model.eval()
        vloss = self.val_loss()
        train_loss = float(np.mean(losses)) if losses else float("nan")
        monitor = vloss if vloss is not None else train_loss
        if math.isfinite(monitor) and monitor < self.best_metric:
            self.best_metric, self.best_epoch, self.bad_epochs = monitor, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs += 1
        self.history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": vloss,
            "l1": float(self.model.l1_penalty().detach()), "lr": float(self.opt.param_groups[0]["lr"]),
            "elapsed": elapsed, "skipped_steps": skipped,
        })
        if self.cfg.patience is not None and self.bad_epochs >= self.cfg.patience:
            self.events.append(f"early stop at epoch {epoch}: no improvement for {self.cfg.patience} epochs")
            return True
        return False

    def train(self, callback, stop) -> bool:
        """Run the epochs; returns True when stopped by ``stop``."""
        cfg = self.cfg
        # elapsed time continues across a resume (the history's last record is where it stopped)
        t_start = time.perf_counter() - (float(self.history[-1]["elapsed"]) if self.history else 0.0)
        step_times: list[float] = []
        last_snap = self.snapshot(self.start_epoch - 1)
        for epoch in range(self.start_epoch, cfg.epochs + 1):
            self.model.train()
            for group in self.opt.param_groups:
                group["lr"] = cfg.learning_rate_at(epoch) * self.lr_scale
            order = torch.randperm(len(self.perturbed_groups), generator=self.gen).tolist()
            losses, skipped = [], 0
            for step in range(self.steps_per_epoch):
                t0 = time.perf_counter()
                chunk = [self.perturbed_groups[i] for i in order[step * self.per_step:(step + 1) * self.per_step]]
                value = self.step(self.train_groups.control_group + chunk, epoch)
                if value is None:
                    skipped += 1
                else:
                    losses.append(value)
                step_times.append(time.perf_counter() - t0)
                if callback is not None:
                    callback(self._progress(epoch, step, losses, skipped, step_times, t_start))
                stop_now = stop is not None and stop.is_set()
                if self.shard is not None:
                    stop_now = dist_.any_rank(stop_now, self.device)  # all ranks stop at the same step
                if stop_now:
                    self.write_checkpoint(last_snap)
                    self.last_snap = last_snap
                    return True
            early = self.end_epoch(epoch, losses, skipped, time.perf_counter() - t_start)
            last_snap = self.snapshot(epoch)
            if self.checkpoint_path is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
                self.write_checkpoint(last_snap)
            if early:
                break
        # the checkpoint always holds the last complete epoch (exactly resumable) and the best weights
        self.write_checkpoint(last_snap)
        self.last_snap = last_snap
        return False

    def _progress(self, epoch, step, losses, skipped, step_times, t_start) -> Progress:
        done = (epoch - self.start_epoch) * self.steps_per_epoch + step + 1
        remaining = (self.cfg.epochs - self.start_epoch + 1) * self.steps_per_epoch - done
        return Progress(epoch, self.cfg.epochs, step + 1, self.steps_per_epoch,
                        float(np.mean(losses)) if losses else float("nan"),
                        self.history[-1]["val_loss"] if self.history else None, self.best_epoch,
                        time.perf_counter() - t_start, remaining * float(np.mean(step_times[-50:])),
                        self.events[-1] if skipped and self.events else "")

    def result(self, stopped: bool) -> FitResult:
        """The model with its best weights, on the CPU, and how training went."""
        if self.best_epoch is None and self.history and \
                not any(np.isfinite(h["train_loss"]) for h in self.history if h["train_loss"] is not None):
            # every step was skipped: returning the untouched initial weights as "trained" would mislead
            raise PerturbODEError(
                f"Training failed: no step produced a finite loss in {len(self.history)} epoch(s)",
                where="training", fix="Lower learning_rate or step_size, shorten the horizon, or check the data for "
                                      "extreme values")
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        # the second half of the default network reading, for the weights returned (on the device:
        # one solve of the control cells under every training perturbation)
        self.model.response_evidence = response_evidence(self.model, self.data, self.conditions)
        self.model.to("cpu")  # results (and checkpoints) live on the CPU; the device only speeds training up
        if self.last_snap is not None:
            self.write_checkpoint(self.last_snap)  # the checkpoint keeps the evidence beside the weights
        return FitResult(model=self.model, history=pd.DataFrame(self.history), best_epoch=self.best_epoch,
                         stopped=stopped, train_conditions=self.conditions, val_conditions=self.val_conditions,
                         train_config=self.cfg, events=self.events)
