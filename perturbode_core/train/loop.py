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
from typing import Callable, ClassVar

import numpy as np
import pandas as pd
import torch

from perturbode_core.data.dataset import PerturbationData
from perturbode_core._options import OptionsMixin
from perturbode_core.errors import PerturbODEError, PerturbODEWarning, check_choice
from perturbode_core.model.field import ModelConfig, PerturbODE
from perturbode_core.train.ot_loss import LOSSES, population_loss


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
    """Keep freed memory in the process for reuse (glibc ``mallopt``), once per process.

    Every out-of-place op of a training step allocates a cell x gene tensor. glibc serves
    blocks above its mmap threshold (at most 32 MB) with fresh ``mmap`` calls and returns them on
    free, so each op paid page faults to zero new pages: the profiler showed elementwise ops at
    2 GB/s instead of ~8. Raising the mmap and trim thresholds (what jemalloc/tcmalloc do, as the
    PyTorch CPU tuning guides recommend) lets the heap recycle those blocks. Skipped off glibc, or
    when ``PERTURBODE_NO_MALLOPT`` is set. The cost: the process keeps its peak heap until exit.
    """
    global _ALLOCATOR_TUNED
    import os
    import sys

    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux") or os.environ.get("PERTURBODE_NO_MALLOPT"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)        # M_MMAP_THRESHOLD: 1 GiB
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD: do not give freed heap back eagerly
    except (OSError, AttributeError):
        pass
    _ALLOCATOR_TUNED = True


@dataclass
class TrainConfig(OptionsMixin):
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
        accuracy, and a few-fold more drives A and B to zero); 0.1 with learning rate 0.02 and
        200 epochs recovered the built-in networks best.
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
    device
        ``cpu`` (default, the tested path), ``cuda``, ``cuda:1``... The model and each minibatch
        go there; the data stay in host memory and random draws stay on the CPU generator, so a
        run's cell samples do not depend on the device.
    compile
        Compile the solver step with ``torch.compile``: ~2x faster steps for 1,000+ genes on CPU
        after a one-off compilation (tens of seconds per batch shape); off by default because
        short runs and tests do not recover that cost.
    """

    _options_name: ClassVar[str] = "training"  # for error messages (not a field)

    epochs: int = 200
    learning_rate: float = 0.02
    batch_conditions: int = 32
    cells_per_condition: int = 64
    loss: str = "w2"
    sinkhorn_eps: float = 0.1
    sinkhorn_iter: int = 50
    l1: float = 0.1
    noise: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.0
    val_conditions: list | None = None
    patience: int | None = None
    seed: int = 0
    checkpoint_every: int = 1
    device: str = "cpu"
    compile: bool = False

    def validate(self) -> "TrainConfig":
        """Check every option; raise :class:`PerturbODEError` naming the bad one.

        Returns
        -------
        TrainConfig
            Itself, for chaining.
        """
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
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith(("cuda", "mps"))):
            raise PerturbODEError(f"Unknown device {self.device!r}", where="option 'device'",
                                  fix="Give cpu, cuda or cuda:N")
        if self.patience is not None and self.patience < 1:
            raise PerturbODEError("patience must be >= 1", where="option 'patience'", fix="Give e.g. 10, or none")
        return self



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
        """Share of all steps of the run done so far (0-1)."""
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
        # cells of every condition from one stable sort of the label codes (ascending indices,
        # as data.cells_of gives), not one scan of all labels per condition: O(n log n) instead
        # of O(n x conditions), which was seconds for 100k cells and 1,000 conditions
        codes = pd.Categorical(data.labels, categories=self.conditions).codes
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(self.conditions) + 1))
        for ci, c in enumerate(self.conditions):
            cells = order[bounds[ci]:bounds[ci + 1]]
            for ti in np.unique(tidx[cells]):
                self.members.append(cells[tidx[cells] == ti])
                self.group_cond.append(cond_pos[c])
                self.group_time.append(int(ti))
        self.control_group = [g for g, c in enumerate(self.group_cond) if self.conditions[c] == data.control]

    def to(self, device):
        self.batch = self.batch.to(device)
        return self

    def sub_batch(self, cond_positions: list[int]):
        b = self.batch
        idx = torch.as_tensor(cond_positions, dtype=torch.long, device=b.shift.device)
        sub = copy.copy(b)
        sub.labels = [b.labels[i] for i in cond_positions]
        sub.shift, sub.overexpression = b.shift[idx], b.overexpression[idx]
        sub.clamp_mask, sub.clamp_level, sub.activity = b.clamp_mask[idx], b.clamp_level[idx], b.activity[idx]
        return sub


def _simulate_groups(model, groups: _Groups, group_ids, z0, noise, gen, shard=None, compile=False):
    """Simulate the groups ``group_ids`` from start states z0; returns (G, n, p).

    ``shard=(rank, world)`` simulates only this rank's block of the step's conditions (see
    :func:`_shard_conditions`) and returns those groups, in the order of ``group_ids``.
    """
    conds = sorted({groups.group_cond[g] for g in group_ids})
    noise_rows = None
    if shard is not None:
        first, stop = _shard_conditions(len(conds), *shard)
        noise_rows = (len(conds), first)
        conds = conds[first:stop]
        group_ids = [g for g in group_ids if groups.group_cond[g] in set(conds)]
    if not group_ids:
        return None, []
    pos = {c: i for i, c in enumerate(conds)}
    t_needed = sorted({groups.group_time[g] for g in group_ids} | {0})
    times = [groups.time_values[i] for i in t_needed]
    traj = model.integrate(z0, groups.sub_batch(conds), times, noise=noise, generator=gen, noise_rows=noise_rows,
                           compile=compile)
    t_pos = {ti: k for k, ti in enumerate(t_needed)}
    if len(t_needed) == 2 and [groups.group_cond[g] for g in group_ids] == conds:
        return traj[1], group_ids  # one group per condition, in order: no copy
    return torch.stack([traj[t_pos[groups.group_time[g]], pos[groups.group_cond[g]]] for g in group_ids]), group_ids


def _shard_conditions(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous block [first, stop) of n conditions for ``rank`` (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    first = rank * base + min(rank, extra)
    return first, first + base + (rank < extra)


def _sample(n_total: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n_total, generator=gen)[: min(k, n_total)]


def _group_loss(model, groups, group_ids, rows, control_idx, cfg: TrainConfig, gen, noise, shard=None):
    """OT loss of each of ``group_ids`` (or of this rank's share) with cells drawn from ``gen``.

    Every draw is made for every group, also on ranks that do not simulate it, so the generator
    advances exactly as in a single process. The start cells and the observed cells of all groups
    are read in one gather and standardised in one pass.
    """
    start = control_idx[_sample(len(control_idx), cfg.cells_per_condition, gen)].numpy()
    picks = [groups.members[g][_sample(len(groups.members[g]), cfg.cells_per_condition, gen).numpy()]
             for g in group_ids]
    sim, local = _simulate_groups(model, groups, group_ids, rows(start), noise, gen, shard, cfg.compile)
    if not local:
        return None, 0
    picks = [picks[group_ids.index(g)] for g in local]
    sizes = [len(p) for p in picks]
    if len(set(sizes)) == 1:
        y = rows(np.concatenate(picks)).view(len(picks), sizes[0], -1)
    else:  # groups smaller than cells_per_condition: pad (masked in the loss)
        y = sim.new_zeros(len(picks), max(sizes), sim.shape[-1])
        flat = rows(np.concatenate(picks))
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for k in range(len(picks)):
            y[k, :sizes[k]] = flat[offsets[k]:offsets[k + 1]]
    loss = population_loss(sim, y, kind=cfg.loss, eps=cfg.sinkhorn_eps, n_iter=cfg.sinkhorn_iter, counts=sizes)
    return loss, len(local)


def _row_reader(X: np.ndarray, model: PerturbODE, device):
    """``rows(idx)``: standardised expression of cells ``idx`` on ``device``, read straight from
    the data's own array (never copied whole); memory-mapped (backed) data are read in sorted
    order so that disk pages are touched once and in sequence."""
    mapped = isinstance(X, np.memmap)

    def rows(idx):
        idx = np.asarray(idx, dtype=np.int64)
        if mapped:
            order = np.argsort(idx, kind="stable")
            block = np.empty((len(idx), X.shape[1]), np.float32)
            block[order] = X[idx[order]]
        else:
            block = X[idx]
        t = torch.from_numpy(np.asarray(block, dtype=np.float32))
        return model.standardize(t.to(device, non_blocking=True))

    return rows


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
        A validated :class:`~perturbode_core.data.dataset.PerturbationData`.
    model_config, train_config
        Options (defaults when omitted).
    train_conditions
        Conditions to train on (e.g. from :func:`~perturbode_core.data.dataset.split_conditions`); the
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
    from perturbode_core.io import checkpoint as ckpt

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
    if len(fit_conditions) < 2:
        raise PerturbODEError("No perturbed conditions to train on (only control cells)", where=data.source,
                              fix="Include perturbed cells, or hold out fewer conditions for validation")

    torch.manual_seed(cfg.seed)  # nothing should use the global RNG; this guards third-party code
    gen = torch.Generator().manual_seed(cfg.seed)
    if model is None:
        scale_conditions = fit_conditions + list(val_conditions)
        model = PerturbODE.from_data(data, model_config or ModelConfig(), conditions=scale_conditions, seed=cfg.seed)
    if model.gene_names != list(data.gene_names):
        raise PerturbODEError("The model was built for other genes than the data's", where=data.source,
                              fix="Train a new model on these data, or load data with the model's genes")
    from perturbode_core.train import distributed as dist_

    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PerturbODEError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU", where="option 'device'",
                              fix="Use --device cpu, or install a CUDA build of PyTorch on a GPU machine")
    tune_allocator()
    shard = dist_.shard_info()  # (rank, world) under torchrun, else None
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.learning_rate)
    step_module = dist_.wrap(model) if shard is not None else None

    # rows are read from the data's own array when sampled (standardised on the way), so the
    # dataset is never copied and memory does not grow with the number of cells
    rows = _row_reader(data.X, model, device)

    train_groups = _Groups(model, data, fit_conditions).to(device)
    val_groups = _Groups(model, data, [data.control] + val_conditions).to(device) if val_conditions else None
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
            losses_v, _ = _group_loss(model, val_groups, ids, rows, control_all, cfg, vgen, 0.0)
            return float(losses_v.mean())

    saves_checkpoints = checkpoint_path is not None and dist_.is_main()

    # resumable snapshot at the start of the current epoch (a stop mid-epoch resumes from here);
    # only the checkpoint reads it, so no deep copies are made when none is written
    def snapshot(epoch_done: int):
        if not saves_checkpoints:
            return None
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
        if not saves_checkpoints:
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
    for epoch in range(start_epoch, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(perturbed_groups), generator=gen).tolist()
        losses, skipped = [], 0
        for step in range(steps_per_epoch):
            t0 = time.perf_counter()
            chunk = [perturbed_groups[i] for i in order[step * per_step:(step + 1) * per_step]]
            group_ids = train_groups.control_group + chunk
            if shard is None:
                per_group, _ = _group_loss(model, train_groups, group_ids, rows, control_all, cfg, gen, cfg.noise)
                ot_value = per_group.mean()
                report = None
            else:
                # this rank's groups; sum / (all groups) * world: DDP averages gradients over
                # ranks, so the update equals the single-process mean over the global batch
                ot_value, report = dist_.sharded_loss(
                    step_module, lambda: _group_loss(model, train_groups, group_ids, rows, control_all, cfg, gen,
                                                     cfg.noise, shard), len(group_ids), shard[1])
            penalty = cfg.l1 * model.l1_penalty()
            if model.config.learn_shift:
                penalty = penalty + model.config.shift_shrinkage * (model.log_delta ** 2).mean()
            loss = ot_value + penalty
            opt.zero_grad(set_to_none=True)
            # under DDP the decision must be the same on every rank: judge the global loss
            loss_value = float(loss.detach()) if report is None else report + float(penalty.detach())
            ok = math.isfinite(loss_value)
            if ok:
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                ok = bool(torch.isfinite(gnorm))
            if ok:
                opt.step()
                losses.append(loss_value)
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
            stop_now = stop is not None and stop.is_set()
            if shard is not None:
                stop_now = dist_.any_rank(stop_now, device)  # all ranks stop at the same step
            if stop_now:
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
        last_snap = snapshot(epoch)
        if checkpoint_path is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
            write_checkpoint(last_snap)
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            events.append(f"early stop at epoch {epoch}: no improvement for {cfg.patience} epochs")
            break

    # the checkpoint always holds the last complete epoch (exactly resumable) and the best weights
    if checkpoint_path is not None:
        write_checkpoint(last_snap)
    if best_epoch is None and history and not any(np.isfinite(h["train_loss"]) for h in history):
        # every step was skipped: returning the untouched initial weights as "trained" would mislead
        raise PerturbODEError(
            f"Training failed: no step produced a finite loss in {len(history)} epoch(s)",
            where="training", fix="Lower learning_rate or step_size, shorten the horizon, or check the data for "
                                  "extreme values")
    model.load_state_dict(best_state)
    model.eval()
    model.to("cpu")  # results (and checkpoints) live on the CPU; --device only speeds training up
    torch.set_num_threads(torch_threads)
    return FitResult(model=model, history=pd.DataFrame(history), best_epoch=best_epoch, stopped=stopped,
                     train_conditions=conditions, val_conditions=val_conditions, train_config=cfg,
                     events=events)

