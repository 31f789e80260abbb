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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .data import PerturbationData
from .errors import PerturbODEError, PerturbODEWarning, check_choice
from .model import ModelConfig, PerturbODE
from .ot_loss import LOSSES, population_loss


@dataclass
class TrainConfig:
    """Options of :func:`fit` (JSON-able; stored in checkpoints).

    Attributes
    ----------
    epochs
        Passes over the training conditions.
    learning_rate
        Adam learning rate. Long horizons want a modest rate (with gradient clipping).
    batch_conditions
        Conditions per optimisation step (the control is added to every step).
    cells_per_condition
        Cells sampled per condition and step (start cells and observed cells).
    loss
        ``w2`` (exact, POT) or ``sinkhorn`` (debiased entropic, for large batches).
    sinkhorn_eps, sinkhorn_iter
        Entropic regularisation (relative to the batch's mean squared distance) and iterations.
    l1
        Weight of the L1 penalty on A and B. The OT loss is divided by the number of genes and
        the penalty is a mean, so the default works across network sizes. On teacher networks
        0.05-0.1 gave the best held-out predictions (0.003 overfits; 0.3 starts to cost network
        accuracy, and a few-fold more drives A and B to zero).
    noise
        Euler-Maruyama diffusion sigma_d during training (the paper's diffusion regulariser).
    grad_clip
        Maximal gradient norm.
    val_fraction
        Share of perturbed conditions held out as the validation signal (best-epoch selection and
        early stopping). 0 keeps all for training and selects on the training loss.
    val_conditions
        Explicit validation conditions (overrides ``val_fraction``).
    patience
        Stop after this many epochs without improvement (``None``: run all epochs).
    seed
        Seed of every random draw (initial weights, minibatches, cell samples, noise).
    checkpoint_every
        Write the checkpoint every this many epochs (when a path is given).
    """

    epochs: int = 100
    learning_rate: float = 0.01
    batch_conditions: int = 32
    cells_per_condition: int = 64
    loss: str = "w2"
    sinkhorn_eps: float = 0.1
    sinkhorn_iter: int = 50
    l1: float = 0.05
    noise: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.0
    val_conditions: list | None = None
    patience: int | None = None
    seed: int = 0
    checkpoint_every: int = 1

    def validate(self) -> "TrainConfig":
        check_choice("loss", self.loss, LOSSES)
        for name in ("epochs", "batch_conditions", "cells_per_condition", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise PerturbODEError(f"Option {name} must be a positive integer, got {v!r}",
                                      where=f"option '{name}'", fix="Give a whole number >= 1")
        for name in ("learning_rate", "sinkhorn_eps", "grad_clip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise PerturbODEError(f"Option {name} must be a positive number, got {v!r}",
                                      where=f"option '{name}'", fix="Give a positive number")
        for name in ("l1", "noise"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise PerturbODEError(f"Option {name} must be >= 0, got {v!r}", where=f"option '{name}'",
                                      fix="Give 0 or a positive number")
        if not 0 <= self.val_fraction < 1:
            raise PerturbODEError(f"val_fraction must be in [0, 1), got {self.val_fraction}",
                                  where="option 'val_fraction'", fix="Give e.g. 0.1, or 0 for none")
        if self.patience is not None and self.patience < 1:
            raise PerturbODEError("patience must be >= 1", where="option 'patience'", fix="Give e.g. 10, or none")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PerturbODEError(f"Unknown training option(s): {', '.join(unknown)}", where="training config",
                                  fix=f"Valid options: {', '.join(sorted(known))}")
        return cls(**d).validate()


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

    @property
    def fraction(self) -> float:
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


class _Groups:
    """The (condition, time) groups of a dataset as index arrays, plus encoded interventions."""

    def __init__(self, model: PerturbODE, data: PerturbationData, conditions: list[str]):
        self.conditions = list(conditions)
        cond_pos = {c: i for i, c in enumerate(self.conditions)}
        self.batch = model.encode([data.interventions.get(c, []) for c in self.conditions], labels=self.conditions)
        if data.times is None:
            self.time_values = [0.0, model.config.horizon]
            tidx = np.ones(data.n_cells, dtype=int)
        else:
            uniq = np.unique(data.times)
            # data time -> model time: the latest sampled time maps to the horizon
            self.time_values = [0.0] + list(model.config.horizon * (uniq - uniq.min()) / max(uniq.max() - uniq.min(), 1e-12))
            self.time_values = sorted(set(self.time_values))
            lookup = {u: self.time_values.index(model.config.horizon * (u - uniq.min()) / max(uniq.max() - uniq.min(), 1e-12))
                      for u in uniq}
            tidx = np.array([lookup[t] for t in data.times])
        self.members: list[np.ndarray] = []   # cell indices of each group
        self.group_cond: list[int] = []       # position of its condition in self.conditions
        self.group_time: list[int] = []       # index into time_values
        for c in self.conditions:
            cells = data.cells_of(c)
            for ti in np.unique(tidx[cells]):
                self.members.append(cells[tidx[cells] == ti])
                self.group_cond.append(cond_pos[c])
                self.group_time.append(int(ti))
        self.control_group = [g for g, c in enumerate(self.group_cond) if self.conditions[c] == data.control]

    def sub_batch(self, cond_positions: list[int]):
        b = self.batch
        idx = torch.as_tensor(cond_positions, dtype=torch.long)
        sub = copy.copy(b)
        sub.labels = [b.labels[i] for i in cond_positions]
        sub.shift, sub.overexpression = b.shift[idx], b.overexpression[idx]
        sub.clamp_mask, sub.clamp_level, sub.activity = b.clamp_mask[idx], b.clamp_level[idx], b.activity[idx]
        return sub


def _simulate_groups(model, groups: _Groups, group_ids, z0, noise, gen):
    """Simulate the groups ``group_ids`` from start states z0; returns (G, n, p)."""
    conds = sorted({groups.group_cond[g] for g in group_ids})
    pos = {c: i for i, c in enumerate(conds)}
    t_needed = sorted({groups.group_time[g] for g in group_ids} | {0})
    times = [groups.time_values[i] for i in t_needed]
    traj = model.integrate(z0, groups.sub_batch(conds), times, noise=noise, generator=gen)
    t_pos = {ti: k for k, ti in enumerate(t_needed)}
    return torch.stack([traj[t_pos[groups.group_time[g]], pos[groups.group_cond[g]]] for g in group_ids])


def _sample(n_total: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n_total, generator=gen)[: min(k, n_total)]


def _group_loss(model, groups, group_ids, Xz_rows, control_idx, cfg: TrainConfig, gen, noise):
    """Mean OT loss of ``group_ids`` with cells drawn from ``gen``."""
    start = control_idx[_sample(len(control_idx), cfg.cells_per_condition, gen)]
    z0 = Xz_rows(start)
    obs = [Xz_rows(groups.members[g][_sample(len(groups.members[g]), cfg.cells_per_condition, gen).numpy()])
           for g in group_ids]
    sim = _simulate_groups(model, groups, group_ids, z0, noise, gen)
    return population_loss(sim, obs, kind=cfg.loss, eps=cfg.sinkhorn_eps, n_iter=cfg.sinkhorn_iter)


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
    resume: str | Path | None = None,
) -> FitResult:
    """Train a PerturbODE model on perturbation data.

    Parameters
    ----------
    data
        A validated :class:`~perturbode_core.data.PerturbationData`.
    model_config, train_config
        Options (defaults when omitted).
    train_conditions
        Conditions to train on (e.g. from :func:`~perturbode_core.data.split_conditions`); the
        rest are never seen. Default: all.
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
        A checkpoint written by an earlier run; training continues exactly where it stopped
        (``train_config.epochs`` may be raised to train longer).
    """
    from . import checkpoint as ckpt

    torch_threads = torch.get_num_threads()
    state = None
    if resume is not None:
        state = ckpt.load_checkpoint(resume)
        ckpt.check_genes(state, data.gene_names, where=str(resume))
        saved_cfg = TrainConfig.from_dict(state["train_state"]["train_config"])
        if train_config is not None:
            saved_cfg.epochs = train_config.epochs
        train_config = saved_cfg
        model_config = ModelConfig.from_dict(state["model_config"])
        train_conditions = state["train_state"]["train_conditions"]
    cfg = (train_config or TrainConfig()).validate()
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
    # validation split (seeded, never the control)
    if state is not None:
        val_conditions = list(state["train_state"]["val_conditions"])
    elif cfg.val_conditions:
        val_conditions = list(cfg.val_conditions)
        missing = [c for c in val_conditions if c not in set(conditions)]
        if missing:
            raise PerturbODEError(f"Validation condition(s) not among the training conditions: {', '.join(missing)}",
                                  where="option 'val_conditions'", fix="Choose conditions the data contain")
    else:
        perts = [c for c in conditions if c != data.control]
        n_val = int(round(cfg.val_fraction * len(perts)))
        if cfg.val_fraction > 0 and len(perts) >= 3:
            n_val = max(1, min(n_val, len(perts) - 1))
        else:
            n_val = 0
        rng = np.random.default_rng(cfg.seed)
        val_conditions = sorted(rng.choice(perts, size=n_val, replace=False).tolist()) if n_val else []
    fit_conditions = [c for c in conditions if c not in set(val_conditions)]

    torch.manual_seed(cfg.seed)  # nothing should use the global RNG; this guards third-party code
    gen = torch.Generator().manual_seed(cfg.seed)
    if model is None:
        scale_conditions = fit_conditions + list(val_conditions)
        model = PerturbODE.from_data(data, model_config or ModelConfig(), conditions=scale_conditions, seed=cfg.seed)
    if model.gene_names != list(data.gene_names):
        raise PerturbODEError("The model was built for other genes than the data's", where=data.source,
                              fix="Train a new model on these data, or load data with the model's genes")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.learning_rate)

    # expression as a tensor that shares the data's memory; rows are standardised when sampled
    X = torch.from_numpy(np.ascontiguousarray(data.X, dtype=np.float32))

    def Xz_rows(idx):
        return model.standardize(X[idx])

    train_groups = _Groups(model, data, fit_conditions)
    val_groups = _Groups(model, data, [data.control] + val_conditions) if val_conditions else None
    control_all = torch.as_tensor(data.cells_of(data.control))
    if data.times is not None:
        ctrl_t = data.times[data.cells_of(data.control)]
        control_all = control_all[torch.as_tensor(ctrl_t == ctrl_t.min())]
    perturbed_groups = [g for g in range(len(train_groups.members)) if g not in train_groups.control_group]
    per_step = max(1, cfg.batch_conditions)
    steps_per_epoch = max(1, math.ceil(len(perturbed_groups) / per_step))

    history: list[dict] = []
    events: list[str] = []
    best_metric, best_epoch, bad_epochs, start_epoch = math.inf, None, 0, 1
    best_state = copy.deepcopy(model.state_dict())
    if state is not None:
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["train_state"]["optimizer"])
        gen.set_state(state["train_state"]["rng"])
        history = list(state["history"])
        ts = state["train_state"]
        best_metric = ts["best_metric"] if ts["best_metric"] is not None else math.inf
        best_epoch, bad_epochs, start_epoch = ts["best_epoch"], ts["bad_epochs"], ts["epoch"] + 1
        best_state = state.get("best_state_dict") or copy.deepcopy(model.state_dict())

    def val_loss_now() -> float | None:
        if val_groups is None:
            return None
        vgen = torch.Generator().manual_seed(cfg.seed + 7919)  # same cells at every epoch
        with torch.no_grad():
            ids = [g for g in range(len(val_groups.members)) if g not in val_groups.control_group]
            return float(_group_loss(model, val_groups, ids, Xz_rows, control_all, cfg, vgen, 0.0).mean())

    # resumable snapshot at the start of the current epoch (a stop mid-epoch resumes from here)
    def snapshot(epoch_done: int):
        return {
            "state_dict": copy.deepcopy(model.state_dict()),
            "optimizer": copy.deepcopy(opt.state_dict()),
            "rng": gen.get_state().clone(),
            "epoch": epoch_done,
            "history": copy.deepcopy(history),
            "best_metric": None if not math.isfinite(best_metric) else best_metric,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "best_state_dict": copy.deepcopy(best_state),
        }

    def write_checkpoint(snap):
        if checkpoint_path is None:
            return
        ckpt.save_checkpoint(
            checkpoint_path, model, state_dict=snap["state_dict"], best_state_dict=snap["best_state_dict"],
            history=snap["history"], data=data,
            train_state={
                "optimizer": snap["optimizer"], "rng": snap["rng"], "epoch": snap["epoch"],
                "best_metric": snap["best_metric"], "best_epoch": snap["best_epoch"],
                "bad_epochs": snap["bad_epochs"], "train_config": cfg.to_dict(),
                "train_conditions": conditions, "val_conditions": val_conditions,
            })

    t_start = time.perf_counter()
    step_times: list[float] = []
    stopped = False
    consecutive_bad = 0
    last_snap = snapshot(start_epoch - 1)
    epochs_run_now = 0
    for epoch in range(start_epoch, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(perturbed_groups), generator=gen).tolist()
        losses, skipped = [], 0
        for step in range(steps_per_epoch):
            t0 = time.perf_counter()
            chunk = [perturbed_groups[i] for i in order[step * per_step:(step + 1) * per_step]]
            group_ids = train_groups.control_group + chunk
            per_group = _group_loss(model, train_groups, group_ids, Xz_rows, control_all, cfg, gen, cfg.noise)
            ot_value = per_group.mean()
            loss = ot_value + cfg.l1 * model.l1_penalty()
            if model.config.learn_shift:
                loss = loss + model.config.shift_shrinkage * (model.log_delta ** 2).mean()
            opt.zero_grad(set_to_none=True)
            ok = bool(torch.isfinite(loss))
            if ok:
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                ok = bool(torch.isfinite(gnorm))
            if ok:
                opt.step()
                losses.append(float(loss.detach()))
                consecutive_bad = 0
            else:
                # numerical blow-up (stiff dynamics, extreme values): skip the step, halve the rate
                skipped += 1
                consecutive_bad += 1
                for group in opt.param_groups:
                    group["lr"] *= 0.5
                msg = (f"epoch {epoch}: non-finite loss or gradient; step skipped and learning rate "
                       f"lowered to {opt.param_groups[0]['lr']:.2e}")
                events.append(msg)
                warnings.warn(msg, PerturbODEWarning, stacklevel=2)
                if consecutive_bad >= 8:
                    raise PerturbODEError(
                        "Training diverged: the loss stayed NaN/infinite after 8 learning-rate halvings",
                        where=f"epoch {epoch}",
                        fix="Lower learning_rate or step_size, shorten the horizon, or check the data for extreme values")
            step_times.append(time.perf_counter() - t0)
            if callback is not None:
                done = (epoch - start_epoch) * steps_per_epoch + step + 1
                remaining = (cfg.epochs - start_epoch + 1) * steps_per_epoch - done
                mean_step = float(np.mean(step_times[-50:]))
                callback(Progress(epoch, cfg.epochs, step + 1, steps_per_epoch,
                                  float(np.mean(losses)) if losses else float("nan"),
                                  history[-1]["val_loss"] if history else None, best_epoch,
                                  time.perf_counter() - t_start, remaining * mean_step,
                                  events[-1] if skipped and events else ""))
            if stop is not None and stop.is_set():
                stopped = True
                break
        if stopped:
            break
        model.eval()
        vloss = val_loss_now()
        train_loss = float(np.mean(losses)) if losses else float("nan")
        monitor = vloss if vloss is not None else train_loss
        if math.isfinite(monitor) and monitor < best_metric:
            best_metric, best_epoch, bad_epochs = monitor, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": vloss,
            "l1": float(model.l1_penalty().detach()), "lr": float(opt.param_groups[0]["lr"]),
            "elapsed": time.perf_counter() - t_start, "skipped_steps": skipped,
        })
        epochs_run_now += 1
        last_snap = snapshot(epoch)
        if checkpoint_path is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
            write_checkpoint(last_snap)
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            events.append(f"early stop at epoch {epoch}: no improvement for {cfg.patience} epochs")
            break

    # the checkpoint always holds the last complete epoch (exactly resumable) and the best weights
    if checkpoint_path is not None:
        write_checkpoint(last_snap)
    model.load_state_dict(best_state)
    model.eval()
    torch.set_num_threads(torch_threads)
    return FitResult(model=model, history=pd.DataFrame(history), best_epoch=best_epoch, stopped=stopped,
                     train_conditions=conditions, val_conditions=val_conditions, train_config=cfg,
                     events=events)
