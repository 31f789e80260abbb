"""Stability over seeds: a consensus network with edge frequencies, and the spread of metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.edges import as_score_matrix


def top_k_share(S: np.ndarray, k: int) -> np.ndarray:
    """For each edge, the share of runs that rank it among their ``k`` strongest.

    The one definition of an edge's seed support, read by :func:`consensus_edges` (its
    ``frequency``) and by the seed ensemble's consensus network (its ``confidence``,
    :func:`perturbode_core.train.ensemble.consensus_edge_table`).

    Parameters
    ----------
    S
        Runs x p x p signed networks (``S[r, i, j]``: run r's effect of j on i).
    k
        Edges each run keeps: its ``k`` largest ``|S[r]|`` off the diagonal (self-loops never
        count; ties at the cut are all kept; an edge of weight 0 is never kept). Clipped to the
        p (p - 1) candidate edges.

    Returns
    -------
    numpy.ndarray
        p x p shares in [0, 1], 0 on the diagonal.
    """
    S = np.asarray(S, dtype=np.float64)
    p = S.shape[1]
    off = ~np.eye(p, dtype=bool)
    A = np.abs(S[:, off])  # runs x candidates
    k = min(int(k), A.shape[1])
    share = np.zeros((p, p))
    if k <= 0:
        return share
    kth = -np.partition(-A, k - 1, axis=1)[:, k - 1]
    share[off] = ((A >= kth[:, None]) & (A > 0)).mean(0)
    return share


def consensus_edges(matrices, gene_names, *, top_k: int | None = None) -> pd.DataFrame:
    """Consensus network of several runs (one score matrix per seed).

    Parameters
    ----------
    matrices
        A list of p x p score matrices ``G`` (``G[i, j]`` = j -> i), one per run, same genes.
    gene_names
        Names of the rows/columns.
    top_k
        Size of each run's network: its ``top_k`` strongest edges by ``|G|`` (self-loops
        excluded; ties at the cut all kept). Default: the number of genes.

    Returns
    -------
    pandas.DataFrame
        ``source, target, frequency, mean_weight, sign_consistency`` for every edge in the top-k
        of at least one run: ``frequency`` is the fraction of runs that have it, ``mean_weight``
        the mean signed ``G`` over all runs, ``sign_consistency`` ``|mean sign|`` over runs (1: the
        sign never flips). Sorted by frequency, then ``|mean_weight|``.
    """
    if len(matrices) == 0:
        raise PerturbODEError("No runs to combine", where="consensus_edges", fix="Pass one G per seed")
    stack = []
    for r, G in enumerate(matrices):
        G, names = as_score_matrix(G, gene_names, where=f"run {r}")
        stack.append(G)
    S = np.stack(stack)  # runs x p x p
    p = S.shape[1]
    k = p if top_k is None else int(top_k)
    off = ~np.eye(p, dtype=bool)
    n_cand = int(off.sum())
    if k <= 0 or k > n_cand:
        raise PerturbODEError(f"top_k {k} is outside 1..{n_cand}", where="consensus_edges",
                              fix="Give a positive number of edges per run")
    freq = top_k_share(S, k)[off]
    keep = freq > 0
    tgt, src = np.nonzero(off)
    arr = np.asarray(names, dtype=object)
    mean_w = S[:, off].mean(0)
    table = pd.DataFrame({"source": arr[src[keep]], "target": arr[tgt[keep]], "frequency": freq[keep],
                          "mean_weight": mean_w[keep],
                          "sign_consistency": np.abs(np.sign(S[:, off]).mean(0))[keep]})
    order = np.lexsort((-np.abs(table["mean_weight"].to_numpy()), -table["frequency"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def metric_spread(results) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one run), min, max and count of each metric.

    Parameters
    ----------
    results
        A list of metric dicts (one per seed), e.g. from :func:`network_metrics`. Non-numeric
        entries are ignored; NaNs are skipped.

    Returns
    -------
    pandas.DataFrame
        Index: metric names; columns ``mean, std, min, max, n``.
    """
    rows = [{k: v for k, v in r.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
            for r in results]
    if not rows:
        raise PerturbODEError("No results to summarise", where="metric_spread", fix="Pass one dict per run")
    df = pd.DataFrame(rows).astype(float)
    return pd.DataFrame({"mean": df.mean(), "std": df.std(ddof=1), "min": df.min(), "max": df.max(),
                         "n": df.count()})
