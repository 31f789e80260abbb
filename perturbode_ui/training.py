"""Train page logic: start / resume jobs, load uploaded checkpoints, estimates.

Kept out of the page so the page stays a list of widgets, and so tests and the browser tests can
drive the same calls.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from perturbode_core.io import checkpoint
from perturbode_core.errors import PerturbODEError
from perturbode_core.model.field import ModelConfig, default_n_modules
from perturbode_core.train.loop import TrainConfig

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
        bundle = checkpoint.load_checkpoint(resume)  # refuses damaged or unsafe files with a message
        checkpoint.check_genes(bundle, state.data.gene_names, where=Path(resume).name)
        if not bundle.get("train_state"):
            raise PerturbODEError("This checkpoint holds no training state to resume from", where=Path(resume).name,
                                  fix="Start a new run instead (it can start from scratch)")
        shutil.copyfile(resume, path)
        resume, label = path, f"run {state.run_count} (resumed)"
    job = TrainingJob(state.data, checkpoint_path=path, model_config=model_config, train_config=train_config,
                      resume=resume, label=label)
    state.start_job(job)
    return job


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
    folder = state.workdir / "uploaded"
    folder.mkdir(exist_ok=True)
    path = folder / safe
    path.write_bytes(payload)
    try:
        try:
            bundle = checkpoint.load_checkpoint(path)
        except PerturbODEError as exc:
            raise PerturbODEError(exc.what, where=f"uploaded file {safe}", fix=exc.fix) from None
        checkpoint.check_genes(bundle, state.data.gene_names, where=f"uploaded file {safe}")
        model = checkpoint.model_from_bundle(bundle)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    ts = bundle.get("train_state") or {}
    state.set_model(model, source=f"uploaded {safe}", checkpoint_path=path,
                    history=pd.DataFrame(bundle["history"]) if bundle.get("history") else None,
                    train_settings={"model": bundle.get("model_config", {}), "train": ts.get("train_config", {}),
                                    "best_epoch": ts.get("best_epoch")})


def recover_failed(state) -> bool:
    """Make the best model of a failed job's last checkpoint current; False when there is none."""
    job = state.job
    if job is None:
        return False
    model = job.recover_model()
    if model is None:
        return False
    bundle = checkpoint.load_checkpoint(job.checkpoint_path)
    state.set_model(model, source=f"recovered from {job.label}'s last checkpoint", checkpoint_path=job.checkpoint_path,
                    history=pd.DataFrame(bundle["history"]) if bundle.get("history") else None)
    state.job_adopted = True
    return True


def estimate(state, model_config: ModelConfig, train_config: TrainConfig, *, timed: bool = True) -> dict:
    """Time (two timed steps of a real run) and memory (formula) of a training run on the session's data."""
    data = state.data
    k = model_config.n_modules or default_n_modules(data.n_genes)
    mem = estimate_memory(data.n_cells, data.n_genes, k, cells_per_condition=train_config.cells_per_condition,
                          batch_conditions=train_config.batch_conditions, horizon=model_config.horizon,
                          step_size=model_config.step_size, solver=model_config.solver, loss=train_config.loss,
                          adjoint=model_config.adjoint)
    out = {"memory": mem, "n_modules": k}
    if timed:
        out.update(estimate_time(data, model_config=model_config, train_config=train_config))
    return out
