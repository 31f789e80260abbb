"""Minibatches: the (condition, time) groups of a dataset, cell sampling, and the OT loss of a batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from perturbode_core.data.dataset import PerturbationData
from perturbode_core.model import PerturbODE
from perturbode_core.train.ot_loss import population_loss
from perturbode_core.train.train_config import TrainConfig


class ConditionGroups:
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
        if self.means is not None:
            self.means, self.control_mean = self.means.to(device), self.control_mean.to(device)
        return self

    means = None  # (G, p) standardised mean of every group's cells minus the control mean (set_means)

    def set_means(self, rows, control_idx, chunk: int = 4096) -> "ConditionGroups":
        """The mean shift of each group from the control cells, over all of their cells (standardised
        units): the exact population means that the mean-matching term compares against, read in
        chunks so that memory stays flat on memory-mapped data."""
        def mean_of(idx):
            idx = np.sort(np.asarray(idx, dtype=np.int64))
            total = None
            for start in range(0, len(idx), chunk):
                part = rows(idx[start:start + chunk]).sum(0)
                total = part if total is None else total + part
            return total / max(len(idx), 1)

        ctrl = mean_of(control_idx)
        self.control_mean = ctrl
        self.means = torch.stack([mean_of(m) - ctrl for m in self.members])
        return self

    def sub_batch(self, cond_positions: list[int]):
        return self.batch.select(cond_positions)


def simulate_groups(model, groups: ConditionGroups, group_ids, z0, noise, gen, shard=None, compile=False):
    """Simulate the groups ``group_ids`` from start states z0; returns (G, n, p).

    ``shard=(rank, world)`` simulates only this rank's block of the step's conditions (see
    :func:`shard_conditions`) and returns those groups, in the order of ``group_ids``.
    """
    conds = sorted({groups.group_cond[g] for g in group_ids})
    noise_rows = None
    if shard is not None:
        first, stop = shard_conditions(len(conds), *shard)
        neutral = groups.sub_batch(conds).neutral_rows()  # the paired-control reference's noise row
        noise_rows = (len(conds), first) + ((neutral[0],) if neutral else ())
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


def shard_conditions(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous block [first, stop) of n conditions for ``rank`` (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    first = rank * base + min(rank, extra)
    return first, first + base + (rank < extra)


def _sample(n_total: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n_total, generator=gen)[: min(k, n_total)]


def group_loss(model, groups, group_ids, rows, control_idx, cfg: TrainConfig, gen, noise, shard=None):
    """OT loss of each of ``group_ids`` (or of this rank's share) with cells drawn from ``gen``.

    Every draw is made for every group, also on ranks that do not simulate it, so the generator
    advances exactly as in a single process. The start cells and the observed cells of all groups
    are read in one gather and standardised in one pass.
    """
    start = control_idx[_sample(len(control_idx), cfg.cells_per_condition, gen)].numpy()
    picks = [groups.members[g][_sample(len(groups.members[g]), cfg.cells_per_condition, gen).numpy()]
             for g in group_ids]
    z0 = rows(start)
    sim, local = simulate_groups(model, groups, group_ids, z0, noise, gen, shard, cfg.compile)
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
    if cfg.mean_weight > 0 and groups.means is not None:
        loss = loss + cfg.mean_weight * mean_shift_loss(sim, z0, groups.means[local])
    return loss, len(local)


def mean_shift_loss(sim: torch.Tensor, z0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of each group's simulated mean shift (simulated cells minus their start cells)
    against its observed mean shift over all of its cells, per gene (G,).

    The OT loss sees a condition's mean only through the cells sampled in a step, so its gradient
    carries that sampling noise; this term compares against means over every cell of the
    condition, and uses the start cells' own mean as the reference, so neither side's sampling
    noise enters the shift (what the knockout z-score gets right by construction)."""
    shift = sim.mean(-2) - z0.mean(-2)
    return ((shift - target) ** 2).mean(-1)


def row_reader(X: np.ndarray, model: PerturbODE, device):
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
