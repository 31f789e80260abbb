"""Training: :func:`fit` and its options.

Modules
-------
train_config  :class:`TrainConfig` (options, validated once)
ot_loss       exact W2 and debiased Sinkhorn losses between populations
batches       the (condition, time) groups of a dataset, cell sampling, the loss of a batch
loop          :func:`fit`: setup, steps, epochs, validation, best weights, checkpoints
resume        what a resumed run continues with, and what may change
distributed   data-parallel training under torchrun
allocator     CPU allocator tuning
"""

from perturbode_core.train.loop import FitResult, Progress, fit
from perturbode_core.train.train_config import TrainConfig

__all__ = ["FitResult", "Progress", "TrainConfig", "fit"]
