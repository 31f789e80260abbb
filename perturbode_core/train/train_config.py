"""Options of :func:`~perturbode_core.train.fit` (:class:`TrainConfig`, validated once)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbode_core._options import OptionsMixin
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.train.device import MATMUL_PRECISIONS, check_device_name
from perturbode_core.train.ot_loss import LOSSES


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig(OptionsMixin):
    """Options of :func:`fit` (JSON-able; stored in checkpoints).

    Training has two phases: the means phase (``warmup_*``: every condition's mean shift, fitted
    to convergence) and the cell phase (``epochs``: populations of cells matched by optimal
    transport, plus the mean term). The defaults come from ``benchmarks/accuracy.py`` over
    designs and networks the project does not tune on (see ``benchmarks/results/accuracy.md``):
    the means phase gave the better networks and held-out means; a long or fast cell phase
    (200 epochs at 0.02) moved the network away from it (AUPR -0.03 to -0.06 on average), so the
    default cell phase is a short refinement at a low rate.

    Attributes
    ----------
    epochs
        Passes over the training conditions in the cell phase.
    learning_rate
        Adam learning rate of the cell phase. Long horizons want a modest rate (with gradient
        clipping).
    lr_schedule
        ``constant``, or ``cosine``: from ``learning_rate`` down to 5 % of it over ``epochs``
        (each step's cells are a fresh random sample, so a decaying rate averages that sampling
        noise out instead of ending wherever the last few samples pushed the weights).
    batch_conditions
        Conditions per optimisation step (the control is added to every step).
    cells_per_condition
        Cells sampled per condition and step (start cells and observed cells).
    loss
        ``w2`` (exact, POT) or ``sinkhorn`` (debiased entropic, for large batches).
    sinkhorn_eps, sinkhorn_iter
        Entropic regularisation (relative to the batch's mean squared distance) and iterations.
    l1
        Weight of the L1 penalty on A and B in the cell phase. The OT loss is divided by the
        number of genes and the penalty is a mean, so the weight works across network sizes; the
        default equals ``warmup_l1`` so that the cell phase keeps the sparsity the means phase
        found.
    warmup_steps
        Steps of the means phase before the cell phase (0: none): the model first fits every
        condition's mean shift, over all of its cells, from the control mean (deterministic and
        cheap, so it runs to convergence); see :mod:`~perturbode_core.train.warmup`.
    warmup_learning_rate
        Adam learning rate of the means phase (decaying by a cosine to 5 % of it).
    warmup_l1
        L1 weight of the means phase. Of 0.01, 0.03 and 0.1, 0.03 gave the best networks over
        the benchmark designs (mean AUPR 0.547 against 0.529 and 0.531, 7 designs x 3 seeds); a
        held-out-condition validation could not choose it (with one condition per regulator, the
        held-out conditions' error hardly depends on it).
    warmup_batch
        Conditions per step of the means phase (all of them up to this many).
    mean_weight
        Weight of the mean-matching term: the squared error of each condition's simulated mean
        shift against its observed mean shift over all of its cells (per gene, like the OT
        loss). The OT loss sees means only through each step's sampled cells; this term is free
        of that sampling noise. 0 turns it off.
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
        ``auto`` (default: CUDA when PyTorch sees a GPU, else Apple's MPS where it works, else the
        CPU; :func:`~perturbode_core.train.device.resolve_device`), ``cpu``, ``cuda``,
        ``cuda:1``, ``mps``. The model and each minibatch go there; the data stay in host memory
        and random draws stay on the CPU generator, so a run's cell samples do not depend on the
        device.
    compile
        Compile the solver step with ``torch.compile``: ~1.5x faster steps for 1,000+ genes on
        CPU after a one-off compilation (tens of seconds); off by default because short runs and
        tests do not recover that cost.
    matmul_precision
        Float32 matrix products: ``auto`` (default: ``high``, i.e. TF32 tensor cores, on CUDA;
        ``highest`` elsewhere), ``highest`` (true float32), ``high`` (TF32 where the hardware
        has it), ``medium`` (bfloat16 products where supported, also on CPUs with AMX). Applied
        for the run and restored afterwards (:func:`~perturbode_core.train.device.matmul_precision`).
    auto_batch
        On CUDA, size the step to fill the GPU: ``batch_conditions`` and ``cells_per_condition``
        left at their defaults are chosen from the GPU's free memory and the model's size, and a
        default learning rate is scaled by Adam's square-root rule
        (:mod:`~perturbode_core.train.autobatch`). Explicit values win; never applies on the CPU.
        The checkpoint and the result record the values that ran.
    """

    _options_name: ClassVar[str] = "training"  # for error messages (not a field)

    epochs: int = 50
    learning_rate: float = 0.002
    lr_schedule: str = "constant"
    batch_conditions: int = 32
    cells_per_condition: int = 64
    loss: str = "w2"
    sinkhorn_eps: float = 0.1
    sinkhorn_iter: int = 50
    l1: float = 0.03
    mean_weight: float = 1.0
    warmup_steps: int = 1000
    warmup_learning_rate: float = 0.02
    warmup_l1: float = 0.03
    warmup_batch: int = 256
    noise: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.0
    val_conditions: list | None = None
    patience: int | None = None
    seed: int = 0
    checkpoint_every: int = 1
    device: str = "auto"
    compile: bool = False
    matmul_precision: str = "auto"
    auto_batch: bool = True

    def __post_init__(self):
        """Check every option once, at construction (also after ``dataclasses.replace``); raise
        :class:`PerturbODEError` naming the bad one."""
        check_choice("loss", self.loss, LOSSES)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not isinstance(self.warmup_steps, (int, np.integer)) or self.warmup_steps < 0:
            raise PerturbODEError(f"Option warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}",
                                  where="option 'warmup_steps'", fix="Give e.g. 1000, or 0 for none")
        for name in ("epochs", "batch_conditions", "cells_per_condition", "checkpoint_every", "warmup_batch"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise PerturbODEError(f"Option {name} must be a positive integer, got {v!r}",
                                      where=f"option '{name}'", fix="Give a whole number >= 1")
        for name in ("learning_rate", "warmup_learning_rate", "sinkhorn_eps", "grad_clip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise PerturbODEError(f"Option {name} must be a positive number, got {v!r}",
                                      where=f"option '{name}'", fix="Give a positive number")
        for name in ("l1", "noise", "mean_weight", "warmup_l1"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise PerturbODEError(f"Option {name} must be >= 0, got {v!r}", where=f"option '{name}'",
                                      fix="Give 0 or a positive number")
        if not 0 <= self.val_fraction < 1:
            raise PerturbODEError(f"val_fraction must be in [0, 1), got {self.val_fraction}",
                                  where="option 'val_fraction'", fix="Give e.g. 0.1, or 0 for none")
        check_device_name(self.device)
        check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        if self.patience is not None and self.patience < 1:
            raise PerturbODEError("patience must be >= 1", where="option 'patience'", fix="Give e.g. 10, or none")

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (1-based) under ``lr_schedule``."""
        if self.lr_schedule == "constant":
            return float(self.learning_rate)
        progress = min(max((epoch - 1) / max(self.epochs - 1, 1), 0.0), 1.0)
        return float(self.learning_rate) * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))
