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


@dataclass(frozen=True)
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
    device: str = "auto"
    compile: bool = False
    matmul_precision: str = "auto"
    auto_batch: bool = True

    def __post_init__(self):
        """Check every option once, at construction (also after ``dataclasses.replace``); raise
        :class:`PerturbODEError` naming the bad one."""
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
        check_device_name(self.device)
        check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        if self.patience is not None and self.patience < 1:
            raise PerturbODEError("patience must be >= 1", where="option 'patience'", fix="Give e.g. 10, or none")
