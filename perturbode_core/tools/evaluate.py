"""Score a trained model beside the baselines (what the dashboard's Evaluate page and the report show).

:mod:`perturbode_core.tools.benchmark` trains a fresh model on a split; this module scores a model you
already have (the dashboard's current model, a checkpoint): its network against a known one, its
predictions of held-out conditions, and the stability of its network over seeds, always with the
baselines of :mod:`perturbode_core.tools.baselines` computed on the same data beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError

__all__ = ["MODEL_NAME", "NETWORK_METRICS", "PREDICTION_METRICS", "network_comparison", "prediction_comparison",
           "trained_conditions", "stability_summary"]

#: The model's name in comparison tables (the figures highlight it).
MODEL_NAME = "PerturbODE"
#: Network metrics shown by default (higher is better).
NETWORK_METRICS = ["aupr", "auroc", "early_precision", "precision", "recall", "f1", "sign_accuracy"]
#: Held-out prediction metrics shown by default (w2, energy, mse: lower is better; pearson: higher).
PREDICTION_METRICS = ["w2", "energy", "mmd", "pearson_delta", "pearson_delta_top", "mse_mean"]


def network_comparison(G, gene_names, truth, *, data=None, baselines=("correlation", "knockout_zscore", "genie3"),
                       regulators=None, conditions=None, seed: int = 0) -> pd.DataFrame:
    """Network metrics of the model's ``G`` and of each network baseline against ``truth``.

    Parameters
    ----------
    G, gene_names
        The model's network (``G[i, j]`` = effect of j on i) and its genes.
    truth
        Known edges (DataFrame ``source, target[, sign]``, dict of columns, or CSV path).
    data
        :class:`~perturbode_core.data.dataset.PerturbationData` for the baselines (none are run without it).
    baselines
        Names in :data:`perturbode_core.tools.baselines.NETWORK_BASELINES`.
    regulators
        Restrict candidate edges to these regulators (e.g. the perturbed genes).
    conditions
        Conditions the baselines may use (default all: the same data the model was trained on).

    Returns
    -------
    pandas.DataFrame
        One row per method (``method``, ``kind``, every metric of
        :func:`~perturbode_core.tools.metrics.network_metrics`), the model first. ``attrs["random"]``
        holds the levels of a random predictor (``aupr`` = edge density, ``auroc`` = 0.5).
    """
    from perturbode_core.tools.baselines import NETWORK_BASELINES
    from perturbode_core.tools.metrics import network_metrics

    if isinstance(truth, dict):
        truth = pd.DataFrame(truth)
    genes = list(map(str, gene_names))
    model_row = network_metrics(np.asarray(G), truth, genes, regulators=regulators)
    rows = [{"method": MODEL_NAME, "kind": "model", **model_row}]
    if data is not None:
        for name in baselines:
            if name not in NETWORK_BASELINES:
                raise PerturbODEError(f"Unknown network baseline {name!r}", where="network_comparison",
                                      fix=f"Choose among {', '.join(NETWORK_BASELINES)}")
            Gb = NETWORK_BASELINES[name](data, conditions=conditions, seed=seed)
            rows.append({"method": name, "kind": "baseline",
                         **network_metrics(Gb, truth, list(map(str, data.gene_names)), regulators=regulators)})
    table = pd.DataFrame(rows)
    table.attrs["random"] = {"aupr": model_row.get("edge_density"), "auroc": 0.5,
                             "early_precision": model_row.get("edge_density"),
                             "precision": model_row.get("edge_density")}
    return table


def trained_conditions(bundle_or_settings: dict | None, data) -> tuple[list[str], list[str]]:
    """``(train_conditions, val_conditions)`` a model was fitted with, from a checkpoint bundle's
    ``train_state`` or a settings dict with those keys; all of the data's conditions when unknown."""
    src = bundle_or_settings or {}
    ts = src.get("train_state") or src
    train = [c for c in (ts.get("train_conditions") or []) if c in set(data.conditions)]
    val = [c for c in (ts.get("val_conditions") or []) if c in set(data.conditions)]
    return (train or list(data.conditions)), val


def prediction_comparison(model, data, heldout, *, train_conditions=None, baselines=None, max_start_cells: int = 300,
                          max_cells: int | None = 500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict held-out conditions with the model and with each prediction baseline, and score them.

    Parameters
    ----------
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE`.
    data
        The data with the observed cells of the held-out conditions.
    heldout
        Conditions to predict and score.
    train_conditions
        Conditions the baselines may learn from (default: every condition not in ``heldout``).
    baselines
        Names in :data:`perturbode_core.tools.baselines.PREDICTION_BASELINES` (default all).
    max_start_cells
        Control cells the model integrates (a seeded subsample above this).
    max_cells
        Cells used by the distribution distances (see :func:`~perturbode_core.tools.metrics.score_prediction`).

    Returns
    -------
    (summary, per_condition)
        ``summary``: one row per method with the mean of each metric over the held-out conditions
        (model first); ``per_condition``: one row per (method, condition).
    """
    from perturbode_core.tools.baselines import PREDICTION_BASELINES
    from perturbode_core.tools.metrics import score_predictions

    heldout = [c for c in heldout if c != data.control]
    if not heldout:
        raise PerturbODEError("No held-out conditions to score", where="prediction_comparison",
                              fix="Choose at least one perturbed condition")
    unknown = [c for c in heldout if c not in set(data.conditions)]
    if unknown:
        raise PerturbODEError(f"Condition(s) not in the data: {', '.join(unknown[:5])}", where="held-out conditions",
                              fix="Choose measured conditions")
    if train_conditions is None:
        train_conditions = [c for c in data.conditions if c not in set(heldout)]
    ctrl = data.control_cells()
    rng = np.random.default_rng(seed)
    if len(ctrl) > max_start_cells:
        ctrl = ctrl[np.sort(rng.choice(len(ctrl), max_start_cells, replace=False))]
    # one integration for all conditions: simulate() batches them
    end = model.simulate(ctrl, [data.interventions[c] for c in heldout], np.array([0.0, model.config.horizon]))[-1]
    preds = {MODEL_NAME: {c: end[i] for i, c in enumerate(heldout)}}
    for name in (baselines if baselines is not None else list(PREDICTION_BASELINES)):
        if name not in PREDICTION_BASELINES:
            raise PerturbODEError(f"Unknown prediction baseline {name!r}", where="prediction_comparison",
                                  fix=f"Choose among {', '.join(PREDICTION_BASELINES)}")
        base = PREDICTION_BASELINES[name]().fit(data, train_conditions)
        preds[name] = {c: base.predict(c, x0=ctrl) for c in heldout}
    per, summary = [], []
    for method, p in preds.items():
        s = score_predictions(p, data, heldout, max_cells=max_cells, seed=seed)
        per.append(s[s["condition"] != "mean"].assign(method=method))
        mean = s[s["condition"] == "mean"].drop(columns="condition").iloc[0].to_dict()
        summary.append({"method": method, "kind": "model" if method == MODEL_NAME else "baseline",
                        "n_conditions": len(heldout), **mean})
    per_condition = pd.concat(per, ignore_index=True)
    per_condition = per_condition[["method"] + [c for c in per_condition.columns if c != "method"]]
    return pd.DataFrame(summary), per_condition


def stability_summary(matrices, gene_names, *, truth=None, top_k: int | None = None) -> dict:
    """Edge stability over several runs (seeds) of the same model and data.

    Parameters
    ----------
    matrices
        One ``G`` per run.
    truth
        Known edges; when given, the network metrics of every run and their spread are added.
    top_k
        Edges per run for the consensus (default: the number of genes).

    Returns
    -------
    dict
        ``consensus`` (:func:`~perturbode_core.tools.metrics.consensus_edges`), ``frequency_counts``
        (how many edges were found by 1, 2, ... runs), and with ``truth`` ``per_run`` (metrics
        table) and ``spread`` (:func:`~perturbode_core.tools.metrics.metric_spread`).
    """
    from perturbode_core.tools.metrics import consensus_edges, metric_spread, network_metrics

    matrices = [np.asarray(G) for G in matrices]
    if len(matrices) < 2:
        raise PerturbODEError("Stability needs at least two runs", where="stability_summary",
                              fix="Train with two or more seeds")
    cons = consensus_edges(matrices, list(gene_names), top_k=top_k)
    n = len(matrices)
    counts = (cons["frequency"] * n).round().astype(int).value_counts().reindex(range(1, n + 1), fill_value=0)
    out = {"consensus": cons, "n_runs": n,
           "frequency_counts": pd.DataFrame({"runs": counts.index, "edges": counts.to_numpy()})}
    if truth is not None:
        truth = pd.DataFrame(truth) if isinstance(truth, dict) else truth
        per = [network_metrics(G, truth, list(gene_names)) for G in matrices]
        out["per_run"] = pd.DataFrame([{"run": i + 1, **{k: v for k, v in m.items() if k in NETWORK_METRICS}}
                                       for i, m in enumerate(per)])
        out["spread"] = metric_spread([{k: v for k, v in m.items() if k in NETWORK_METRICS} for m in per])
    return out
