"""A training step that fills the GPU: conditions and cells per step from free memory and model size.

Measured on an H200 (issue 14): the default step (33 groups x 64 cells at most) keeps a GPU at
0.14-0.54 of its matrix-multiply rate, while ~4,100 cells a step (65 conditions x 64 cells) at
10,000 genes ran at 1.06x the float32 GEMM rate. So on CUDA, unless told otherwise, a run grows
its step towards :data:`TARGET_CELLS` simulated cells (per GPU), within :data:`MEMORY_SHARE` of
the free memory (:func:`~perturbode_core.train.memory.activation_bytes_per_cell`), and never to
more conditions than the data have. It grows the conditions first (the OT loss of a group stays
a 64 x 64 problem) and the cells per condition only when the conditions run out.

Learning rate: Adam's square-root rule (Malladi et al., NeurIPS 2022, "On the SDEs and scaling
rules for adaptive gradient algorithms"): a step of k times more conditions, hence k times fewer
updates per epoch, follows the same training trajectory per epoch with the rate times sqrt(k).
More cells per condition leave the updates per epoch as they were (each group's loss is only less
noisy), so they leave the rate too. The factor is clipped to [1/2, 2]: the fitted ODE bounds how
far one update may move the weights, and a bigger factor needs the rate retuned by hand. The rate
changes only when it was left at its default.

On the CPU nothing here applies: the options are used exactly as given. Explicit values always
win (a value equal to the default counts as not given; ``auto_batch=False`` keeps the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from perturbode_core.train.memory import F32, activation_bytes_per_cell

#: Simulated cells per step and GPU that the sizing aims for (~4,100 saturated an H200's GEMMs at
#: 10,000 genes; smaller models are launch-bound, where more cells a step cost almost nothing).
TARGET_CELLS = 4096

#: Share of the GPU's free memory a step may plan to use (the rest: allocator slack, temporaries
#: of the backward pass, the OT plans and other processes).
MEMORY_SHARE = 0.6

#: The learning-rate factor stays within [1 / MAX_LR_FACTOR, MAX_LR_FACTOR].
MAX_LR_FACTOR = 2.0

#: Cells per condition grow to at most this many times the given value.
MAX_CELL_GROWTH = 4


@dataclass(frozen=True)
class BatchChoice:
    """What :func:`choose_batch` picked."""

    batch_conditions: int
    cells_per_condition: int
    lr_factor: float
    limited_by: str  # "target", "memory" or "conditions"

    @property
    def cells_per_step(self) -> int:
        """Simulated cells of a step (the control group included)."""
        return (self.batch_conditions + 1) * self.cells_per_condition


def choose_batch(free_bytes: int, n_genes: int, n_modules: int, *, n_conditions: int, batch_conditions: int,
                 cells_per_condition: int, horizon: float, step_size: float, solver: str = "rk4",
                 checkpoint_steps: bool = False, adjoint: bool = False, max_cells_per_condition: int | None = None,
                 world: int = 1, vary_conditions: bool = True, vary_cells: bool = True) -> BatchChoice:
    """The conditions and cells per step that fill a GPU (a pure function of the sizes).

    Parameters
    ----------
    free_bytes
        Free memory of the (smallest) GPU, bytes.
    n_genes, n_modules
        Model size p and K.
    n_conditions
        Perturbed (condition, time) groups available to a step.
    batch_conditions, cells_per_condition
        The given step (the starting point, and what stays fixed when not varied).
    horizon, step_size, solver, checkpoint_steps, adjoint
        What the memory of a solve depends on.
    max_cells_per_condition
        Cells a group can give (sampling is without replacement); cells per condition never
        grow beyond it.
    world
        Data-parallel ranks: each simulates its block of (B + 1) / world groups.
    vary_conditions, vary_cells
        Which of the two may change (an explicit value stays).

    Returns
    -------
    BatchChoice
        Conditions and cells per step, the learning-rate factor (square-root rule on the conditions
        per step, clipped) and what bounded the step.
    """
    world = max(1, int(world))
    cap_cells = max_cells_per_condition or 10**9
    per_cell = activation_bytes_per_cell(n_genes, n_modules, horizon=horizon, step_size=step_size, solver=solver,
                                         checkpoint_steps=checkpoint_steps, adjoint=adjoint) + 4 * n_genes * F32
    weights = (2 * n_genes * n_modules + 3 * n_modules + 4 * n_genes) * F32
    budget = MEMORY_SHARE * free_bytes - 4 * weights  # weights, gradients, Adam's two moments
    mem_cells = max(0, int(budget // per_cell)) * world  # simulated cells a step may hold, all ranks
    target = min(TARGET_CELLS * world, mem_cells)
    limited = "memory" if mem_cells < TARGET_CELLS * world else "target"

    b, c = int(batch_conditions), int(cells_per_condition)
    drawn = min(c, cap_cells)  # cells a group actually gives
    if vary_conditions:
        b = max(1, target // drawn - 1)
        if b >= n_conditions:
            b, limited = max(1, n_conditions), "conditions"
    if vary_cells:
        groups = min(b, max(1, n_conditions)) + 1
        if groups * drawn > mem_cells:  # memory is short even at this many conditions
            c = max(2, mem_cells // groups)
        elif limited == "conditions" or not vary_conditions:  # the conditions ran out (or are fixed)
            c = max(c, min(target // groups, MAX_CELL_GROWTH * c, cap_cells))
    # the rate follows the conditions per step (they set the updates per epoch), not the cells per
    # condition (more cells only make each group's loss less noisy, with as many updates as before)
    old, new = min(batch_conditions, max(1, n_conditions)), min(b, max(1, n_conditions))
    factor = min(MAX_LR_FACTOR, max(1.0 / MAX_LR_FACTOR, math.sqrt(new / old)))
    return BatchChoice(batch_conditions=b, cells_per_condition=c, lr_factor=factor, limited_by=limited)


def _at_default(cfg, name: str) -> bool:
    default = next(f.default for f in fields(cfg) if f.name == name)
    return getattr(cfg, name) == default


def fill_device(cfg, model, device, group_sizes: list[int], *, n_start: int, shard=None,
                free_bytes: int | None = None):
    """``cfg`` with the step sized for ``device`` (see the module docstring), and a note saying so.

    Parameters
    ----------
    cfg
        The run's :class:`~perturbode_core.train.train_config.TrainConfig`.
    model
        The model being trained (its size and solver settings).
    device
        The resolved device.
    group_sizes
        Cells of each perturbed (condition, time) group a step draws from.
    n_start
        Control cells the start states are drawn from.
    shard
        ``(rank, world)`` under data-parallel training: every rank takes the same sizes, planned
        for the GPU with the least free memory.
    free_bytes
        Free GPU memory (default: asked of the device).

    Returns
    -------
    (TrainConfig, str | None)
        On a non-CUDA device, with ``auto_batch`` off, or with both sizes given, ``cfg`` itself
        and ``None``. Otherwise a config holding the chosen sizes (and learning rate) with
        ``auto_batch=False``, so that the checkpoint records what ran and a resume keeps it.
    """
    import numpy as np
    import torch

    dev = torch.device(device)
    vary_b, vary_c = _at_default(cfg, "batch_conditions"), _at_default(cfg, "cells_per_condition")
    if not cfg.auto_batch or dev.type != "cuda" or not (vary_b or vary_c) or not group_sizes:
        return cfg, None
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(dev)
    world = 1
    if shard is not None:
        from perturbode_core.train.distributed import min_over_ranks

        free_bytes, world = min_over_ranks(int(free_bytes), dev), shard[1]
    mc = model.config
    choice = choose_batch(free_bytes, model.n_genes, model.n_modules, n_conditions=len(group_sizes),
                          batch_conditions=cfg.batch_conditions, cells_per_condition=cfg.cells_per_condition,
                          horizon=mc.horizon, step_size=mc.step_size, solver=mc.solver,
                          checkpoint_steps=mc.checkpoint_steps, adjoint=mc.adjoint,
                          max_cells_per_condition=int(min(np.median(group_sizes), n_start)), world=world,
                          vary_conditions=vary_b, vary_cells=vary_c)
    lr = cfg.learning_rate * choice.lr_factor if _at_default(cfg, "learning_rate") else cfg.learning_rate
    new = replace(cfg, batch_conditions=choice.batch_conditions, cells_per_condition=choice.cells_per_condition,
                  learning_rate=lr, auto_batch=False)
    note = (f"auto_batch on {device}: {choice.batch_conditions} conditions x {choice.cells_per_condition} cells "
            f"per step ({choice.cells_per_step:,} simulated cells, bounded by {choice.limited_by}; "
            f"{free_bytes / 2**30:.1f} GiB free); learning rate {cfg.learning_rate:g} -> {lr:.4g}")
    return new, note
