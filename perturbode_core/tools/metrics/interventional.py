"""Interventional check of a predicted network without ground truth (in the spirit of CausalBench).

A predicted edge j -> i is *supported* when, in the cells where j alone was perturbed, the
distribution of i differs from control (Mann-Whitney U, Benjamini-Hochberg across the tested
edges). The share of supported edges is compared with the share among random edges of the same
count whose regulators were perturbed: a network that only captures correlation scores near the
random share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.edges import as_edge_frame
from perturbode_core.tools.fdr import benjamini_hochberg

#: Sign of the change an intervention type makes to its own target (for expected edge directions).
_DIRECTION = {"knockout": -1.0, "knockdown": -1.0, "overexpression": 1.0, "shift": 1.0}


def _wasserstein_columns(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1-D Wasserstein-1 distance of each column of ``u`` (n1 x m) against the same column of ``v``.

    Vectorised form of ``scipy.stats.wasserstein_distance``: the area between the two empirical
    CDFs, computed on the merged sorted values of each column at once.
    """
    n1, n2 = len(u), len(v)
    allv = np.concatenate([u, v], axis=0)
    order = np.argsort(allv, axis=0, kind="stable")
    vals = np.take_along_axis(allv, order, axis=0)
    from_u = order < n1
    cdf_u = np.cumsum(from_u, axis=0)[:-1] / n1
    cdf_v = np.cumsum(~from_u, axis=0)[:-1] / n2
    return (np.abs(cdf_u - cdf_v) * np.diff(vals, axis=0)).sum(axis=0)


def _single_target_conditions(data) -> dict:
    """``{gene: condition}`` for single-target perturbations (the largest one when several)."""
    counts = pd.Series(data.labels).value_counts()
    best: dict = {}
    for cond, ivs in data.interventions.items():
        if cond == data.control or len(ivs) != 1:
            continue
        g = ivs[0].gene
        if g not in best or counts.get(cond, 0) > counts.get(best[g], 0):
            best[g] = cond
    return best


def interventional_check(
    data,
    edges,
    gene_names=None,
    *,
    top_k: int | None = None,
    alpha: float = 0.05,
    correction: str | None = "bh",
    n_random: int | None = None,
    seed: int = 0,
    min_cells: int = 3,
    return_table: bool = False,
):
    """Test predicted edges against the perturbation data itself.

    Parameters
    ----------
    data
        :class:`~perturbode_core.data.dataset.PerturbationData` with control cells and single-target
        perturbations.
    edges
        Predicted edges: a table ``source, target[, weight]`` or a score matrix ``G``
        (``G[i, j]`` = j -> i) with ``gene_names``.
    gene_names
        Names of G's rows/columns (matrix input only).
    top_k
        Test only the ``top_k`` strongest edges (by ``|weight|``); default all given edges (all
        non-zero entries of a matrix).
    alpha
        Significance level for "supported".
    correction
        ``"bh"`` (Benjamini-Hochberg across the tested edges, separately for predicted and
        random edges) or None (raw p-values).
    n_random
        Number of random edges (default: as many as predicted edges tested), drawn uniformly
        without replacement among ordered pairs (j, i), i != j, whose regulator j was perturbed.
    seed
        Seed of the random edges.
    min_cells
        Perturbations with fewer cells are not used (a rank test on 1-2 cells has no power).
    return_table
        Also return the per-edge table (source, target, weight, p_value, q_value, wasserstein,
        mean_change, supported).

    Returns
    -------
    dict, or (dict, pandas.DataFrame) with ``return_table``
        ``n_edges`` (given), ``n_tested`` (regulator perturbed alone, target a gene),
        ``share_supported``, ``mean_wasserstein``, ``random_share_supported``,
        ``random_mean_wasserstein``, ``share_ratio`` (supported share / random share; inf when
        no random edge is supported),
        ``sign_agreement`` (among supported edges with a signed weight, the fraction whose
        observed change has the direction the sign predicts, given whether the perturbation
        lowers or raises its target; NaN without signs), ``n_random``, ``alpha``.
    """
    if correction not in ("bh", None):
        raise PerturbODEError(f"Unknown correction {correction!r}", where="interventional_check",
                              fix="Use 'bh' or None")
    names = [str(g) for g in data.gene_names]
    table = as_edge_frame(edges, gene_names, top_k=top_k)
    tester = _PairTester(data, names, min_cells=min_cells, alpha=alpha, correction=correction)
    testable = (table["source"].isin(tester.regs.keys()) & table["target"].isin(tester.index.index)
                & (table["source"] != table["target"])).to_numpy()
    tested = table[testable].reset_index(drop=True)
    tested = pd.concat([tested, tester.test(tested["source"].to_numpy(), tested["target"].to_numpy())], axis=1)
    r_src, r_tgt = _random_pairs(sorted(tester.regs), names, tester.index, len(tested) if n_random is None
                                 else int(n_random), seed)
    rand = tester.test(r_src, r_tgt)
    summary = _summary(tested, rand, n_edges=len(table), alpha=alpha)
    if return_table:
        return summary, tested.drop(columns="direction")
    return summary


class _PairTester:
    """Tests (regulator, target) pairs: does perturbing the regulator alone move the target?"""

    def __init__(self, data, names, *, min_cells: int, alpha: float, correction):
        self.data, self.alpha, self.correction = data, alpha, correction
        regs = _single_target_conditions(data)
        counts = pd.Series(data.labels).value_counts()
        self.regs = {g: c for g, c in regs.items() if counts.get(c, 0) >= min_cells and g in set(names)}
        if not self.regs:
            raise PerturbODEError(
                f"No single-gene perturbation with at least {min_cells} cells", where=data.source,
                fix="The interventional check needs perturbations of single regulators with several cells")
        self.index = pd.Series(np.arange(len(names)), index=names)
        ctrl_idx = data.cells_of(data.control)
        if len(ctrl_idx) < min_cells:
            raise PerturbODEError(f"Only {len(ctrl_idx)} control cell(s)", where=data.source,
                                  fix=f"The interventional check needs at least {min_cells} control cells")
        self.ctrl = data.X[ctrl_idx]

    def test(self, src: np.ndarray, tgt: np.ndarray) -> pd.DataFrame:
        """p-value, q-value, Wasserstein distance and mean change of each (regulator, target) pair."""
        from scipy.stats import mannwhitneyu

        data, ctrl = self.data, self.ctrl
        pval, wdist, change, direction = (np.full(len(src), np.nan) for _ in range(4))
        # one vectorised test per perturbed regulator (a loop over regulators, not cells)
        for g in np.unique(src):
            rows = np.flatnonzero(src == g)
            cols = self.index[tgt[rows]].to_numpy()
            cond = self.regs[g]
            pert = data.X[data.cells_of(cond)]
            pval[rows] = mannwhitneyu(pert[:, cols], ctrl[:, cols], axis=0, alternative="two-sided").pvalue
            wdist[rows] = _wasserstein_columns(pert[:, cols], ctrl[:, cols])
            change[rows] = pert[:, cols].mean(0) - ctrl[:, cols].mean(0)
            kind = data.interventions[cond][0].kind
            jj = self.index[g]
            direction[rows] = _DIRECTION.get(kind, np.sign(pert[:, jj].mean() - ctrl[:, jj].mean()))
        # a gene constant in both groups gives NaN: no evidence of a change
        pval = np.where(np.isnan(pval), 1.0, pval)
        q = benjamini_hochberg(pval) if self.correction == "bh" else pval
        return pd.DataFrame({"p_value": pval, "q_value": q, "wasserstein": wdist, "mean_change": change,
                             "direction": direction, "supported": q < self.alpha})


def _random_pairs(reg_names, names, index, n_random: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_random`` ordered pairs (regulator, target != regulator), drawn uniformly without
    replacement among the perturbed regulators' pairs (seeded)."""
    reg_names = np.array(reg_names, dtype=object)
    p = len(names)
    n_pairs = len(reg_names) * (p - 1)
    n_rand = min(n_random, n_pairs)
    flat = np.random.default_rng(seed).choice(n_pairs, size=n_rand, replace=False)
    r_src = reg_names[flat // (p - 1)]
    off = flat % (p - 1)
    r_src_idx = index[r_src].to_numpy() if n_rand else np.zeros(0, dtype=int)
    r_tgt_idx = off + (off >= r_src_idx)  # skip the self-loop
    return r_src, np.asarray(names, dtype=object)[r_tgt_idx]


def _summary(tested: pd.DataFrame, rand: pd.DataFrame, *, n_edges: int, alpha: float) -> dict:
    signed = tested["supported"].to_numpy() & np.isfinite(tested["weight"].to_numpy()) \
        & (tested["weight"].to_numpy() != 0)
    expected = np.sign(tested["weight"].to_numpy()[signed]) * tested["direction"].to_numpy()[signed]
    sign_agree = float(np.mean(np.sign(tested["mean_change"].to_numpy()[signed]) == expected)) \
        if signed.any() else np.nan
    share = float(tested["supported"].mean()) if len(tested) else np.nan
    r_share = float(rand["supported"].mean()) if len(rand) else np.nan
    return {
        "n_edges": int(n_edges),
        "n_tested": int(len(tested)),
        "share_supported": share,
        "mean_wasserstein": float(tested["wasserstein"].mean()) if len(tested) else np.nan,
        "random_share_supported": r_share,
        "random_mean_wasserstein": float(rand["wasserstein"].mean()) if len(rand) else np.nan,
        "share_ratio": (share / r_share if r_share > 0 else (np.inf if share > 0 else np.nan))
        if np.isfinite(share) and np.isfinite(r_share) else np.nan,
        "sign_agreement": sign_agree,
        "n_random": int(len(rand)),
        "alpha": float(alpha),
    }
