"""Network accuracy against a known edge list (ground truth).

Conventions: a score matrix ``G`` is p x p with ``G[i, j]`` the effect of regulator ``j`` on
target ``i`` (sign kept); an edge table has columns ``source`` (regulator), ``target`` and
``weight``. Edges are ranked by ``|G|``; candidate edges are all ordered gene pairs without
self-loops (optionally only those whose regulator was perturbed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.edges import as_score_matrix, read_edge_list, validate_edge_list


# ----------------------------------------------------------------------------- metrics
def _expected_tp_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """True positives among the top ``k`` scores, ties at the cut broken at random (expected value).

    Ties are common (a sparse G has many exact zeros); counting them in index order would let
    the gene order decide the result.
    """
    if k <= 0:
        return 0.0
    if k >= len(scores):
        return float(labels.sum())
    kth = np.partition(-scores, k - 1)[k - 1] * -1.0
    above = scores > kth
    tied = scores == kth
    slots = k - int(above.sum())
    return float(labels[above].sum() + labels[tied].sum() * slots / max(int(tied.sum()), 1))


def network_metrics(
    prediction,
    truth,
    gene_names=None,
    *,
    regulators=None,
    top_k: int | None = None,
    density: float | None = None,
    threshold: float | None = None,
) -> dict:
    """Score a predicted network against a known edge list.

    Parameters
    ----------
    prediction
        A p x p score matrix ``G`` (``G[i, j]`` = effect of regulator j on target i, signed), or an
        edge table with columns ``source``, ``target``, ``weight`` (absent pairs score 0).
    truth
        The known edges: a DataFrame ``source, target[, sign]`` or a path to a CSV
        (:func:`read_edge_list`).
    gene_names
        Names of G's rows/columns (required for a matrix; for an edge table, the genes that
        define the candidate pairs, by default the genes named in it).
    regulators
        Restrict candidate edges (and true edges) to these regulators, e.g. the perturbed genes.
    top_k, density, threshold
        Where to cut the ranking for precision / recall / F1 (at most one): the ``top_k``
        strongest edges, a fraction ``density`` of candidate pairs, or ``|G| >= threshold``.
        Default: ``top_k`` = number of true edges (precision then equals early precision).

    Returns
    -------
    dict
        ``aupr`` (average precision), ``auroc``, ``aupr_ratio`` (AUPR / edge density: 1 is a random
        predictor), ``early_precision`` (precision at k = number of true edges, ties broken at
        random in expectation), ``early_precision_ratio``, ``precision``, ``recall``, ``f1``,
        ``n_called`` (edges called at the cut), ``sign_accuracy`` (among true edges with a known
        sign, the fraction whose sign in G matches; a zero prediction counts as wrong),
        ``n_signed_true``, ``n_true_edges``, ``n_candidates``, ``edge_density``, ``n_regulators``,
        ``n_truth_dropped`` (true edges with a gene not among ``gene_names``),
        ``n_truth_outside_regulators`` (true edges whose regulator is not in ``regulators``),
        ``n_truth_self_loops`` (ignored). Metrics that need both classes are NaN
        when there are no true edges.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if sum(x is not None for x in (top_k, density, threshold)) > 1:
        raise PerturbODEError("Give at most one of top_k, density and threshold", where="network_metrics",
                              fix="Pick one way to cut the ranking")
    if density is not None and not 0 < density <= 1:
        raise PerturbODEError(f"density {density} is not in (0, 1]", where="network_metrics",
                              fix="Give the fraction of candidate pairs to call edges, e.g. 0.05")
    G, names = as_score_matrix(prediction, gene_names)
    truth = read_edge_list(truth) if isinstance(truth, (str, Path)) else \
        validate_edge_list(truth, where="ground truth")
    p = len(names)
    reg_mask = _regulator_mask(names, regulators)
    candidate = ~np.eye(p, dtype=bool) & reg_mask[None, :]  # [target, regulator]
    tt = _true_edges(truth, names, candidate)
    labels_mat = np.zeros((p, p), dtype=bool)
    labels_mat[tt["ti"], tt["tj"]] = True
    scores = np.abs(G[candidate])
    labels = labels_mat[candidate]
    n_cand, n_pos = int(labels.size), int(labels.sum())
    density_true = n_pos / n_cand if n_cand else np.nan
    both = 0 < n_pos < n_cand
    aupr = float(average_precision_score(labels, scores)) if both else np.nan
    auroc = float(roc_auc_score(labels, scores)) if both else np.nan
    ep = _expected_tp_at_k(scores, labels, n_pos) / n_pos if n_pos else np.nan
    cut = _cut_metrics(scores, labels, n_pos, top_k=top_k, density=density, threshold=threshold)
    has_sign = np.isfinite(tt["sign"])
    pred_sign = np.sign(G[tt["ti"][has_sign], tt["tj"][has_sign]])
    n_signed = int(has_sign.sum())
    return {
        "aupr": aupr,
        "auroc": auroc,
        "aupr_ratio": aupr / density_true if both else np.nan,
        "early_precision": ep,
        "early_precision_ratio": ep / density_true if both else np.nan,
        **cut,
        "sign_accuracy": float(np.mean(pred_sign == tt["sign"][has_sign])) if n_signed else np.nan,
        "n_signed_true": n_signed,
        "n_true_edges": n_pos,
        "n_candidates": n_cand,
        "edge_density": density_true,
        "n_regulators": int(reg_mask.sum()),
        "n_truth_dropped": tt["n_dropped"],
        "n_truth_outside_regulators": tt["n_outside"],
        "n_truth_self_loops": tt["n_self_loops"],
    }


def _regulator_mask(names, regulators) -> np.ndarray:
    if regulators is None:
        return np.ones(len(names), dtype=bool)
    mask = np.isin(np.asarray(names, dtype=object), list({str(r) for r in regulators}))
    if not mask.any():
        raise PerturbODEError("None of the given regulators are among the genes", where="regulators",
                              fix="Pass regulator names exactly as the gene names")
    return mask


def _true_edges(truth: pd.DataFrame, names, candidate: np.ndarray) -> dict:
    """The known edges among the candidate pairs (target and regulator indices, sign), and counts
    of those left out: genes not in the data, regulators not allowed, self-loops."""
    index = pd.Series(np.arange(len(names)), index=names)
    self_loop = (truth["source"] == truth["target"]).to_numpy()
    known = truth["source"].isin(index.index).to_numpy() & truth["target"].isin(index.index).to_numpy()
    t = truth[known & ~self_loop]
    ti, tj = index[t["target"]].to_numpy(), index[t["source"]].to_numpy()
    in_cand = candidate[ti, tj]
    return {"ti": ti[in_cand], "tj": tj[in_cand], "sign": t["sign"].to_numpy()[in_cand],
            "n_dropped": int((~known & ~self_loop).sum()), "n_outside": int((~in_cand).sum()),
            "n_self_loops": int(self_loop.sum())}


def _cut_metrics(scores, labels, n_pos: int, *, top_k, density, threshold) -> dict:
    """Precision, recall and F1 where the ranking is cut (default: at the number of true edges)."""
    n_cand = len(scores)
    if threshold is not None:
        called = scores >= threshold
        n_called = int(called.sum())
        tp = float(labels[called].sum())
    else:
        k = int(top_k) if top_k is not None else (int(round(density * n_cand)) if density is not None else n_pos)
        n_called = min(max(k, 0), n_cand)
        tp = _expected_tp_at_k(scores, labels, n_called)
    precision = tp / n_called if n_called else np.nan
    recall = tp / n_pos if n_pos else np.nan
    f1 = (2 * precision * recall / (precision + recall)
          if n_called and n_pos and (precision + recall) > 0 else (0.0 if n_called and n_pos else np.nan))
    return {"precision": precision, "recall": recall, "f1": f1, "n_called": n_called}


def metrics_frame(metrics: dict, **labels) -> pd.DataFrame:
    """One-row DataFrame of a metrics dict, with label columns first (e.g. ``method="genie3"``).

    Non-scalar values (tables) are left out.
    """
    row = {**labels, **{k: v for k, v in metrics.items() if np.isscalar(v) or v is None}}
    return pd.DataFrame([row])
