"""Train page logic: start / resume jobs, load uploaded checkpoints, estimates.

Kept out of the page so the page stays a list of widgets, and so tests and the browser tests can
drive the same calls.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path


from perturbode_core.io import checkpoint
from perturbode_core.errors import PerturbODEError
from perturbode_core.model import ModelConfig
from perturbode_core.train import TrainConfig

from .jobs import TrainingJob, estimate_memory, estimate_time


def start_training(state, *, model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                   resume: str | Path | None = None) -> TrainingJob:
    """Start a background training job on the session's data (fresh, or resumed from a checkpoint).

    A resumed run works on a copy of the source checkpoint inside its own run folder, so the
    source is never overwritten and the run's checkpoint exists from its first moment.
    """
    if state.data is None:
        raise PerturbODEError("No dataset is loaded", where="Train page", fix="Load data on the Data page first")
    if state.training:
        raise PerturbODEError("A training run is already in progress", where="Train page",
                              fix="Stop it first, or wait for it to finish")
    state.run_count += 1
    run_dir = state.new_run_dir(f"run{state.run_count}")
    path = run_dir / "model.pt"
    label = f"run {state.run_count}"
    if resume is not None:
        # loaded and checked once here; fit continues from this object without reading the file again
        ckpt = checkpoint.load_checkpoint(resume, genes=state.data.gene_names, where=Path(resume).name)
        if not ckpt.resumable:
            raise PerturbODEError("This checkpoint holds no training state to resume from", where=Path(resume).name,
                                  fix="Start a new run instead (it can start from scratch)")
        # the run writes to its own copy, so the source checkpoint is never overwritten
        shutil.copyfile(ckpt.path, path)
        model_config = None  # a resumed run continues with the saved options (only epochs may change)
        if train_config is not None:
            train_config = dataclasses.replace(ckpt.settings.train_config, epochs=train_config.epochs)
        resume, label = ckpt, f"run {state.run_count} (resumed)"
    job = TrainingJob(state.data, checkpoint_path=path, model_config=model_config, train_config=train_config,
                      resume=resume, label=label)
    state.start_job(job)
    return job


def device_label(device: str = "auto") -> str:
    """Where a run with ``device`` trains, in words (the Train page's caption), e.g. ``CPU (2 threads)``."""
    from perturbode_core.train.device import describe_device, resolve_device

    return describe_device(resolve_device(device))


def resumable_checkpoint(state) -> str | None:
    """The checkpoint a new run can continue from: the latest job's, else the current model's."""
    for path in ((state.job.checkpoint_path if state.job is not None else None), state.checkpoint_path):
        if path and Path(path).exists():
            return str(path)
    return None


def load_uploaded_checkpoint(state, name: str, payload: bytes) -> None:
    """Make an uploaded checkpoint the current model (refused if unsafe, damaged or for other genes)."""
    if state.data is None:
        raise PerturbODEError("Load the data the model was trained on first", where="checkpoint upload",
                              fix="Pick or upload the dataset on the Data page")
    safe = Path(name).name or "model.pt"
    path = state.new_run_dir("upload") / safe  # its own folder: an earlier upload of the same name is kept
    path.write_bytes(payload)
    try:
        ckpt = checkpoint.load_checkpoint(path, genes=state.data.gene_names, where=f"uploaded file {safe}")
    except Exception:
        path.unlink(missing_ok=True)
        raise
    state.set_checkpoint(ckpt, source=f"uploaded {safe}", name=f"uploaded {safe}", status="uploaded")


def recover_failed(state) -> bool:
    """Make the best model of a failed job's last checkpoint current; False when there is none."""
    job = state.job
    if job is None:
        return False
    model = job.recover_checkpoint()
    if model is None:
        return False
    state.set_checkpoint(model, source=f"recovered from {job.label}'s last checkpoint",
                         name=f"{job.label} · recovered", status="recovered")
    state.job_adopted = True
    return True


def estimate(state, model_config: ModelConfig, train_config: TrainConfig, *, timed: bool = True) -> dict:
    """Time (two timed steps of a real run) and memory (formula) of a training run on the session's data."""
    data = state.data
    # the same rule training applies (the perturbed genes of the conditions it will train on)
    k = model_config.resolved_for(data.n_genes, len(data.perturbed_genes())).n_modules
    mem = estimate_memory(data.n_cells, data.n_genes, k, cells_per_condition=train_config.cells_per_condition,
                          batch_conditions=train_config.batch_conditions, horizon=model_config.horizon,
                          step_size=model_config.step_size, solver=model_config.solver, loss=train_config.loss,
                          adjoint=model_config.adjoint, checkpoint_steps=model_config.checkpoint_steps)
    out = {"memory": mem, "n_modules": k}
    if timed:
        out.update(estimate_time(data, model_config=model_config, train_config=train_config))
    return out
