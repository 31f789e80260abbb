"""Distances between predicted and observed cell populations, and mean-change agreement.

All functions take cells x genes arrays in the same units (what the data hold). Large
populations are subsampled (seeded) to ``max_cells`` per side, because exact optimal transport
and pairwise kernels cost O(n^2) memory and O(n^3) time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError


def _check_cells(x, name: str, n_genes: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise PerturbODEError(f"{name} must be a non-empty cells x genes array (got shape {x.shape})",
                              where=name, fix="Pass one row per cell")
    if n_genes is not None and x.shape[1] != n_genes:
        raise PerturbODEError(f"{name} has {x.shape[1]} genes, expected {n_genes}", where=name,
                              fix="Predict and observe the same genes in the same order")
    if not np.isfinite(x).all():
        raise PerturbODEError(f"{name} has NaN or infinite values", where=name,
                              fix="Check the simulation (a diverging ODE gives inf); lower the step or horizon")
    return x


def _subsample(x: np.ndarray, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_cells is None or len(x) <= max_cells:
        return x
    return x[rng.choice(len(x), size=int(max_cells), replace=False)]


def _pair(x, y, max_cells, seed):
    x = _check_cells(x, "x")
    y = _check_cells(y, "y", x.shape[1])
    rng = np.random.default_rng(seed)
    return _subsample(x, max_cells, rng), _subsample(y, max_cells, rng)


def w2_distance(x, y, *, max_cells: int | None = 1000, seed: int = 0) -> float:
    """Exact 2-Wasserstein distance between two empirical populations (POT ``emd2``).

    Parameters
    ----------
    x, y
        Cells x genes (uniform weights on cells).
    max_cells
        Subsample each side to at most this many cells (seeded); None uses all.
    seed
        Seed of the subsample.

    Returns
    -------
    float
        ``sqrt(min over couplings of E|x - y|^2)``: in expression units, comparable to a mean
        shift (two populations differing by a translation m are ``|m|`` apart).
    """
    import ot

    x, y = _pair(x, y, max_cells, seed)
    M = ot.dist(x, y, metric="sqeuclidean")
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    cost = float(ot.emd2(a, b, M, numItermax=max(100_000, 50 * len(x) * len(y))))
    return float(np.sqrt(max(cost, 0.0)))


def energy_distance(x, y, *, max_cells: int | None = 1000, seed: int = 0) -> float:
    """Energy distance between two populations (Szekely & Rizzo), on all genes jointly.

    Returns ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` with Euclidean norms and V-statistics (all pairs,
    diagonals included): the energy distance between the two empirical distributions, so it is
    exactly 0 for identical samples and never negative. Matches ``scipy.stats.energy_distance``
    for one gene.
    """
    from scipy.spatial.distance import cdist

    x, y = _pair(x, y, max_cells, seed)
    d = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    return float(np.sqrt(max(d, 0.0)))


def mmd(x, y, *, bandwidth: float | None = None, unbiased: bool = False, max_cells: int | None = 1000,
        seed: int = 0) -> float:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel.

    Parameters
    ----------
    x, y
        Cells x genes.
    bandwidth
        Kernel width sigma in ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``. Default: the median
        heuristic, the median pairwise distance in the pooled sample (zero distances excluded).
    unbiased
        False (default): the biased V-statistic, which is the MMD^2 between the empirical
        distributions (exactly 0 for identical samples, never negative). True: the unbiased
        U-statistic (diagonal terms left out; can be slightly negative).
    max_cells, seed
        Subsampling as in :func:`w2_distance`.

    Returns
    -------
    float
        MMD^2 (in [0, 2] for the biased estimate).
    """
    from scipy.spatial.distance import cdist

    x, y = _pair(x, y, max_cells, seed)
    dxx, dyy, dxy = cdist(x, x, "sqeuclidean"), cdist(y, y, "sqeuclidean"), cdist(x, y, "sqeuclidean")
    if bandwidth is None:
        pooled = np.concatenate([dxx[np.triu_indices(len(x), 1)], dyy[np.triu_indices(len(y), 1)], dxy.ravel()])
        pooled = pooled[pooled > 0]
        bandwidth = float(np.sqrt(np.median(pooled))) if pooled.size else 1.0
    if bandwidth <= 0:
        raise PerturbODEError(f"MMD bandwidth {bandwidth} must be positive", where="mmd",
                              fix="Give a positive bandwidth or leave it to the median heuristic")
    g = 1.0 / (2 * bandwidth**2)
    kxx, kyy, kxy = np.exp(-g * dxx), np.exp(-g * dyy), np.exp(-g * dxy)
    if unbiased:
        n, m = len(x), len(y)
        if n < 2 or m < 2:
            raise PerturbODEError("The unbiased MMD needs at least 2 cells on each side", where="mmd",
                                  fix="Use unbiased=False for single profiles")
        sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        return float(sxx + syy - 2 * kxy.mean())
    return float(max(kxx.mean() + kyy.mean() - 2 * kxy.mean(), 0.0))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, NaN when either side is constant (e.g. a no-change prediction)."""
    if len(a) < 2:
        return np.nan
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else np.nan


def _top_overlap(d_pred: np.ndarray, top_obs: np.ndarray) -> float:
    """Share of the observed top genes among the predicted top genes (same number); NaN when the
    prediction changes nothing (no ranking to compare)."""
    if not np.any(np.abs(d_pred) > 1e-12):
        return float("nan")
    top_pred = np.argsort(-np.abs(d_pred), kind="stable")[: len(top_obs)]
    return float(len(np.intersect1d(top_pred, top_obs)) / max(len(top_obs), 1))


def score_prediction(pred, obs, control, *, top_n: int = 20, max_cells: int | None = 1000,
                     seed: int = 0) -> dict:
    """Score one predicted population against the observed one.

    Parameters
    ----------
    pred, obs, control
        Cells x genes: predicted cells, observed cells of the condition, and control cells
        (the reference for mean changes).
    top_n
        Number of genes with the largest observed ``|mean change|`` for the ``_top`` metrics.
    max_cells, seed
        Subsampling for the distribution distances (see :func:`w2_distance`).

    Returns
    -------
    dict
        ``w2`` (2-Wasserstein distance), ``energy`` (energy distance), ``mmd`` (biased MMD^2,
        RBF, median heuristic), ``pearson_delta`` (Pearson of predicted vs observed mean change
        vs control, all genes), ``pearson_delta_top`` (same over the ``top_n`` most changed
        genes), ``top_overlap`` (share of the ``top_n`` most changed genes that are also among the
        ``top_n`` most changed in the prediction; NaN when the prediction changes nothing),
        ``mse_mean`` (mean squared error of the predicted mean profile, all genes),
        ``mse_mean_top``, ``top_n``, ``n_pred``, ``n_obs``. The Pearson values are NaN when the
        predicted change is constant, e.g. the no-change baseline.
    """
    pred = _check_cells(pred, "predicted cells")
    p = pred.shape[1]
    obs = _check_cells(obs, "observed cells", p)
    control = _check_cells(control, "control cells", p)
    mu_c = control.mean(0)
    d_pred, d_obs = pred.mean(0) - mu_c, obs.mean(0) - mu_c
    top = np.argsort(-np.abs(d_obs), kind="stable")[: min(int(top_n), p)]
    err = (d_pred - d_obs) ** 2  # the control mean cancels: this is the MSE of the mean profiles
    return {
        "w2": w2_distance(pred, obs, max_cells=max_cells, seed=seed),
        "energy": energy_distance(pred, obs, max_cells=max_cells, seed=seed),
        "mmd": mmd(pred, obs, max_cells=max_cells, seed=seed),
        "pearson_delta": _pearson(d_pred, d_obs),
        "pearson_delta_top": _pearson(d_pred[top], d_obs[top]),
        "top_overlap": _top_overlap(d_pred, top),
        "mse_mean": float(err.mean()),
        "mse_mean_top": float(err[top].mean()),
        "top_n": int(len(top)),
        "n_pred": int(len(pred)),
        "n_obs": int(len(obs)),
    }


def score_predictions(predictions: dict, data, conditions=None, *, top_n: int = 20,
                      max_cells: int | None = 1000, seed: int = 0) -> pd.DataFrame:
    """Score predicted populations of several conditions against the data.

    Parameters
    ----------
    predictions
        ``{condition label: predicted cells (cells x genes)}``.
    data
        The :class:`~perturbode_core.data.dataset.PerturbationData` with the observed cells.
    conditions
        Conditions to score (default: every key of ``predictions``).
    top_n, max_cells, seed
        As in :func:`score_prediction`.

    Returns
    -------
    pandas.DataFrame
        One row per condition (column ``condition``) and a last row ``condition == "mean"``
        with the mean of each metric over conditions (NaNs skipped).
    """
    conditions = list(predictions) if conditions is None else list(conditions)
    missing = [c for c in conditions if c not in predictions]
    if missing:
        raise PerturbODEError(f"No prediction for condition(s) {', '.join(map(str, missing[:5]))}",
                              where="score_predictions", fix="Predict every condition you score")
    unknown = [c for c in conditions if c not in set(data.conditions)]
    if unknown:
        raise PerturbODEError(f"Condition(s) not in the data: {', '.join(map(str, unknown[:5]))}",
                              where=f"{data.source}", fix="Score conditions that were measured")
    control = data.control_cells()
    rows = []
    for c in conditions:
        obs = data.X[data.cells_of(c)]
        rows.append({"condition": c, **score_prediction(predictions[c], obs, control, top_n=top_n,
                                                        max_cells=max_cells, seed=seed)})
    table = pd.DataFrame(rows)
    if rows:
        mean = table.drop(columns="condition").mean(numeric_only=True, skipna=True)
        table = pd.concat([table, pd.DataFrame([{"condition": "mean", **mean.to_dict()}])], ignore_index=True)
    return table
