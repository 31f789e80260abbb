"""One benchmark: PerturbODE and every baseline on the same data and split, in one table.

A number is never shown without its baselines: network baselines (correlation, knockout
z-score, GENIE3) are scored on the known network with the same metrics as the model, and
prediction baselines (no change, mean shift, linear, additive) predict the same held-out
conditions from the same control cells. Baselines see only the training conditions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.io.files import write_text_atomic
from perturbode_core.data.dataset import PerturbationData, split_conditions
from perturbode_core.errors import PerturbODEError

NETWORK_COLUMNS = ["aupr", "auroc", "aupr_ratio", "early_precision", "sign_accuracy"]
HELDOUT_COLUMNS = ["w2", "energy", "pearson_delta", "pearson_delta_top", "mse_mean"]


@dataclass
class BenchmarkResult:
    """The table (one row per method) and what produced it."""

    table: pd.DataFrame
    per_condition: pd.DataFrame
    heldout: list[str]
    train_conditions: list[str]
    model: object = None
    fit: object = None
    notes: list[str] = field(default_factory=list)


def _network_row(G, genes, truth, regulators) -> dict:
    from perturbode_core.tools.metrics import network_metrics

    m = network_metrics(G, truth, genes, regulators=regulators)
    return {k: m.get(k) for k in NETWORK_COLUMNS}


def _heldout_rows(predictions: dict, data, heldout) -> tuple[dict, pd.DataFrame]:
    from perturbode_core.tools.metrics import score_predictions

    scores = score_predictions(predictions, data, heldout, max_cells=500)
    mean = scores[scores.condition == "mean"].iloc[0]
    return ({f"heldout_{k}": float(mean[k]) for k in HELDOUT_COLUMNS if k in mean},
            scores[scores.condition != "mean"])


def run_benchmark(
    data: PerturbationData,
    *,
    truth: pd.DataFrame | None = None,
    holdout: float | int | list[str] = 0.2,
    seed: int = 0,
    model_config=None,
    train_config=None,
    network_baselines: tuple[str, ...] = ("correlation", "knockout_zscore", "genie3"),
    prediction_baselines: tuple[str, ...] = ("no_change", "mean_shift", "linear", "additive"),
    restrict_to_perturbed: bool = False,
    callback=None,
    log=print,
) -> BenchmarkResult:
    """Train PerturbODE and the baselines on one split and score them side by side.

    Parameters
    ----------
    data
        The dataset.
    truth
        Known edges (``source, target[, sign]``) for the network metrics; without it only held-out
        prediction metrics are computed.
    holdout
        Held-out perturbations: a fraction, a number (seeded draw) or a list of names.
    seed
        Seed of the split and of training.
    model_config, train_config
        PerturbODE options (defaults when omitted; the seed is set from ``seed``).
    network_baselines, prediction_baselines
        Names from :data:`perturbode_core.tools.baselines.NETWORK_BASELINES` / ``PREDICTION_BASELINES``.
    restrict_to_perturbed
        Score networks only on edges out of perturbed regulators.
    callback
        Passed to :func:`~perturbode_core.train.loop.fit` (progress).
    log
        Where progress lines go (``print``; ``None`` for silence).

    Returns
    -------
    :class:`BenchmarkResult`; its ``table`` has a ``method`` column (``perturbode`` and the
    baselines' names), ``kind``, the network metrics, the held-out metrics prefixed ``heldout_``,
    and ``seconds``.
    """
    from perturbode_core.tools.baselines import NETWORK_BASELINES, PREDICTION_BASELINES
    from perturbode_core.tools.grn import grn_matrix
    from perturbode_core.train.loop import TrainConfig, fit

    say = log or (lambda *a, **k: None)
    unknown = [b for b in network_baselines if b not in NETWORK_BASELINES] + \
              [b for b in prediction_baselines if b not in PREDICTION_BASELINES]
    if unknown:
        raise PerturbODEError(f"Unknown baseline(s): {', '.join(unknown)}", where="benchmark",
                              fix=f"Choose among {', '.join(list(NETWORK_BASELINES) + list(PREDICTION_BASELINES))}")
    train_conditions, heldout = split_conditions(data, holdout, seed=seed)
    genes = list(data.gene_names)
    regulators = sorted({iv.gene for c in train_conditions[1:] for iv in data.interventions[c]}) \
        if restrict_to_perturbed else None
    rows, per_condition, notes = [], [], []
    ctrl = data.control_cells()

    # PerturbODE
    cfg = train_config or TrainConfig()
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "seed": seed})
    say(f"training PerturbODE on {len(train_conditions) - 1} perturbations ({data.n_genes} genes)...")
    t0 = time.perf_counter()
    result = fit(data, model_config=model_config, train_config=cfg, train_conditions=train_conditions,
                 callback=callback)
    row = {"method": "perturbode", "kind": "model"}
    if truth is not None:
        row.update(_network_row(grn_matrix(result.model), genes, truth, regulators))
    if heldout:
        preds = {c: result.model.simulate(ctrl, [data.interventions[c]])[-1, 0] for c in heldout}
        scores, table = _heldout_rows(preds, data, heldout)
        row.update(scores)
        per_condition.append(table.assign(method="perturbode"))
    row["seconds"] = time.perf_counter() - t0
    rows.append(row)
    say(f"  perturbode: {row['seconds']:.1f} s")

    # network baselines, fitted on the training conditions only
    train_view = data.subset_conditions(train_conditions)
    if truth is not None:
        for name in network_baselines:
            t0 = time.perf_counter()
            G = NETWORK_BASELINES[name](train_view, seed=seed)
            r = {"method": name, "kind": "network baseline", **_network_row(G, genes, truth, regulators)}
            r["seconds"] = time.perf_counter() - t0
            rows.append(r)
            say(f"  {name}: {r['seconds']:.1f} s")
    # prediction baselines
    if heldout:
        for name in prediction_baselines:
            t0 = time.perf_counter()
            base = PREDICTION_BASELINES[name]().fit(data, train_conditions)
            preds = {c: base.predict(c) for c in heldout}
            scores, table = _heldout_rows(preds, data, heldout)
            per_condition.append(table.assign(method=name))
            rows.append({"method": name, "kind": "prediction baseline", **scores,
                         "seconds": time.perf_counter() - t0})
    else:
        notes.append("no held-out conditions: prediction metrics skipped")
    table = pd.DataFrame(rows)
    order = ["method", "kind"] + [c for c in NETWORK_COLUMNS if c in table] + \
            [f"heldout_{c}" for c in HELDOUT_COLUMNS if f"heldout_{c}" in table] + ["seconds"]
    table = table[order]
    return BenchmarkResult(table=table, per_condition=pd.concat(per_condition, ignore_index=True) if per_condition
                           else pd.DataFrame(), heldout=heldout, train_conditions=train_conditions,
                           model=result.model, fit=result, notes=notes)


def to_markdown(table: pd.DataFrame, *, digits: int = 3) -> str:
    """A GitHub Markdown table (no extra dependency; NaN shown as '-')."""
    def fmt(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_tables(table: pd.DataFrame, out_dir, *, name: str = "table") -> tuple[Path, Path]:
    """Write ``name.csv`` and ``name.md`` atomically into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.csv", table.to_csv(index=False))
    write_text_atomic(out / f"{name}.md", to_markdown(table))
    return out / f"{name}.csv", out / f"{name}.md"


def run_stability(data: PerturbationData, seeds, *, truth: pd.DataFrame | None = None, model_config=None,
                  train_config=None, train_conditions=None, top_k: int | None = None, callback=None,
                  log=print) -> dict:
    """Train with several seeds: a consensus network with edge frequencies and the spread of metrics.

    Parameters
    ----------
    seeds
        The seeds (e.g. ``range(5)``).
    top_k
        Edges counted per run for the frequencies (default: the number of true edges, or 5 x genes).

    Returns
    -------
    dict with ``consensus`` (source, target, frequency, mean_weight, sign_consistency),
    ``metrics`` (one row per seed) and ``spread`` (mean, std, min, max per metric).
    """
    from perturbode_core.tools.grn import grn_matrix
    from perturbode_core.tools.metrics import consensus_edges, metric_spread, network_metrics
    from perturbode_core.train.loop import TrainConfig, fit

    seeds = list(seeds)
    if len(seeds) < 2:
        raise PerturbODEError("Stability needs at least two seeds", where="seeds", fix="Give e.g. 0,1,2")
    say = log or (lambda *a, **k: None)
    base = (train_config or TrainConfig()).to_dict()
    matrices, rows = [], []
    for s in seeds:
        say(f"seed {s}...")
        r = fit(data, model_config=model_config, train_config=TrainConfig.from_dict({**base, "seed": int(s)}),
                train_conditions=train_conditions, callback=callback)
        G = grn_matrix(r.model)
        matrices.append(G)
        row = {"seed": int(s), "best_epoch": r.best_epoch}
        if truth is not None:
            m = network_metrics(G, truth, data.gene_names)
            row.update({k: m[k] for k in NETWORK_COLUMNS})
        rows.append(row)
    if top_k is None:
        top_k = len(truth) if truth is not None else 5 * data.n_genes
    metrics = pd.DataFrame(rows)
    spread = metric_spread([{k: v for k, v in r.items() if k not in ("seed", "best_epoch")} for r in rows]) \
        if truth is not None else pd.DataFrame()
    return {"consensus": consensus_edges(matrices, data.gene_names, top_k=top_k), "metrics": metrics,
            "spread": spread}
