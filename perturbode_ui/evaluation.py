"""Evaluate page logic: seed reruns in the background and their stability summary.

The scoring itself lives in :mod:`perturbode_core.tools.evaluate`; this module only runs the
reruns as :class:`~perturbode_ui.jobs.TrainingJob` workers (so a click never blocks on training)
and hands their networks to the core once all have finished.
"""

from __future__ import annotations

from perturbode_core.errors import PerturbODEError
from perturbode_core.tools import evaluate, grn
from perturbode_core.train import TrainConfig

from .jobs import TrainingJob
from .state import SeedRuns


def start_seed_runs(state, *, n_seeds: int, epochs: int, top_k: int) -> SeedRuns:
    """Retrain the current model's settings with ``n_seeds`` other seeds, in the background."""
    settings = state.model_settings
    model_config = settings.model_config if settings is not None else state.model.config
    base = settings.train_config if settings is not None and settings.train_config is not None else TrainConfig()
    if state.data is None:
        raise PerturbODEError("No dataset is loaded", where="Evaluate page", fix="Load data on the Data page first")
    jobs = []
    for cfg in evaluate.seed_configs(base, n_seeds, epochs=epochs):
        job = TrainingJob(state.data, checkpoint_path=state.new_run_dir(f"seed{cfg.seed}") / "model.pt",
                          model_config=model_config, train_config=cfg, label=f"seed {cfg.seed}")
        jobs.append(job.start())
    runs = SeedRuns(key=state.model_key, jobs=jobs, top_k=int(top_k))
    state.evaluation.seed_runs, state.evaluation.stability = runs, None
    return runs


def summarise_seed_runs(state) -> dict | None:
    """Once every seed run has finished: the stability summary (kept in the state), else None."""
    runs = state.evaluation.seed_runs
    if runs is None or any(j.running for j in runs.jobs):
        return None
    if state.evaluation.stability is None:
        ok = [j for j in runs.jobs if j.result is not None]
        result = {"failed": [f"{j.label}: {j.error}" for j in runs.jobs if j.status == "failed"]}
        if len(ok) >= 2:
            result.update(evaluate.stability_summary([grn.network_matrix(j.result.model) for j in ok],
                                                     state.model.gene_names, truth=state.truth, top_k=runs.top_k))
        state.evaluation.stability = result
    return state.evaluation.stability


def with_seed_confidence(edges, stability: dict | None):
    """``edges`` with a ``confidence`` column (the share of the seed runs of the Evaluate page that
    keep each edge among their strongest; 0 for an edge no run kept) when a stability summary with
    a consensus exists, else ``edges`` unchanged. Returns (edges, number of runs or 0)."""
    if not stability or "consensus" not in stability or edges is None or len(edges) == 0:
        return edges, 0
    cons = stability["consensus"].set_index(["source", "target"])["frequency"]
    keys = list(zip(edges["source"].astype(str), edges["target"].astype(str)))
    confidence = [float(cons.get(k, 0.0)) for k in keys]
    return edges.assign(confidence=confidence), int(stability.get("n_runs", 0))
