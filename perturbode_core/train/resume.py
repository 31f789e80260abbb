"""Resuming a run: the settings it continues with, and what may change on the way.

A resumed run continues the saved run as it was: same model options, training options, split and
seed. Only what does not change the result may differ (how long to train, where to train, how
often to save); anything else given with ``resume`` is refused, naming each conflicting option,
instead of being silently dropped or silently applied.
"""

from __future__ import annotations

from dataclasses import fields, replace

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.checkpoint import Checkpoint
from perturbode_core.model import ModelConfig
from perturbode_core.train.train_config import TrainConfig

#: Training options a resumed run may change: they decide how long and where it runs, not what it learns.
RESUME_MAY_CHANGE = ("epochs", "device", "compile", "matmul_precision", "auto_batch", "checkpoint_every", "patience")


def _conflicts(saved, given, allowed=()) -> list[str]:
    out = []
    for f in fields(saved):
        a, b = getattr(saved, f.name), getattr(given, f.name)
        if f.name not in allowed and a != b and not (f.name == "n_modules" and b is None):
            out.append(f"{f.name} (saved {a!r}, given {b!r})")
    return out


def resume_settings(ckpt: Checkpoint, *, model_config: ModelConfig | None = None,
                    train_config: TrainConfig | None = None,
                    train_conditions: list[str] | None = None) -> tuple[ModelConfig, TrainConfig, list[str]]:
    """The options and training conditions a run resumed from ``ckpt`` continues with.

    Parameters
    ----------
    ckpt
        The loaded checkpoint (must hold a training state).
    model_config, train_config, train_conditions
        What the caller asks for (None: as saved). Training options in :data:`RESUME_MAY_CHANGE`
        are taken from ``train_config``; every other option must equal the saved one.

    Raises
    ------
    PerturbODEError
        The checkpoint cannot be resumed, or an option conflicts with it (all of them named).
    """
    settings = ckpt.settings
    if ckpt.resume_state is None or settings.train_config is None:
        raise PerturbODEError("This checkpoint holds no training state to resume from", where=str(ckpt.path),
                              fix="Start a new run instead (it can start from scratch)")
    saved_model, saved_train = settings.model_config, settings.train_config
    conflicts = []
    if model_config is not None:
        conflicts += _conflicts(saved_model, model_config)
    train = saved_train
    if train_config is not None:
        conflicts += _conflicts(saved_train, train_config, RESUME_MAY_CHANGE)
        train = replace(saved_train, **{k: getattr(train_config, k) for k in RESUME_MAY_CHANGE})
    # a resumed run keeps the step it ran with (a checkpoint of an auto-sized run holds the sizes
    # chosen; an older checkpoint predates auto_batch): sizing it anew would change the run
    train = replace(train, auto_batch=False)
    saved_conditions = list(settings.train_conditions or [])
    if train_conditions is not None and sorted(map(str, train_conditions)) != sorted(saved_conditions):
        conflicts.append("the training conditions (--holdout)")
    if conflicts:
        raise PerturbODEError(f"Option(s) conflict with the run being resumed: {'; '.join(conflicts)}",
                              where=str(ckpt.path),
                              fix=f"Resume without them (a resumed run continues as saved; only "
                                  f"{', '.join(RESUME_MAY_CHANGE)} may change), or start a new run")
    return saved_model, train, saved_conditions
