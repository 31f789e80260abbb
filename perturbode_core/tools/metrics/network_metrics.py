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

#: Column aliases accepted in edge-list files (lower-case).
_SOURCE_ALIASES = ("source", "regulator", "tf", "from", "src")
_TARGET_ALIASES = ("target", "to", "dst")
_SIGN_ALIASES = ("sign", "mode", "effect", "type", "regulation")
_WEIGHT_ALIASES = ("weight", "score", "importance", "value")

_POSITIVE = {"+", "+1", "1", "1.0", "+1.0", "activation", "activator", "activating", "activates",
             "positive", "pos", "up", "induction", "stimulation"}
_NEGATIVE = {"-", "-1", "-1.0", "repression", "repressor", "repressing", "represses", "negative",
             "neg", "down", "inhibition", "inhibitor"}
_UNKNOWN = {"", "0", "0.0", "nan", "none", "unknown", "?", "na", "n/a", "dual", "."}


# ----------------------------------------------------------------------------- edge lists
def _parse_sign(values: pd.Series, where: str) -> np.ndarray:
    """Map sign labels onto +1 / -1 / NaN (unknown), naming the first bad line."""
    text = values.astype(str).str.strip().str.lower()
    text = text.where(values.notna(), "")
    out = np.full(len(text), np.nan)
    out[text.isin(_POSITIVE).to_numpy()] = 1.0
    out[text.isin(_NEGATIVE).to_numpy()] = -1.0
    bad = ~(text.isin(_POSITIVE) | text.isin(_NEGATIVE) | text.isin(_UNKNOWN)).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise PerturbODEError(
            f"Unrecognised sign {values.iloc[first]!r} ({int(bad.sum())} such row(s))",
            where=f"{where}, column 'sign', line {first + 2}",
            fix="Write +1/-1, +/-, or activation/repression (leave empty when unknown)")
    return out


def _pick(columns: dict, aliases) -> str | None:
    for name in aliases:
        if name in columns:
            return columns[name]
    return None


def validate_edge_list(df: pd.DataFrame, *, where: str = "edge list") -> pd.DataFrame:
    """Check and normalise a ground-truth edge table.

    Parameters
    ----------
    df
        A table with ``source`` and ``target`` columns (aliases: regulator/TF/from, to) and an
        optional ``sign`` column (+1/-1, +/-, activation/repression; empty means unknown).
    where
        Where the table came from, for messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``target`` (str) and ``sign`` (+1.0, -1.0 or NaN), one row per
        distinct edge. An edge listed twice with opposite signs keeps sign NaN (dual).
    """
    if not isinstance(df, pd.DataFrame):
        raise PerturbODEError(f"Expected a table of edges, got {type(df).__name__}", where=where,
                              fix="Give a DataFrame or a CSV file with columns source,target[,sign]")
    cols = {str(c).strip().lower(): c for c in df.columns}
    src, tgt = _pick(cols, _SOURCE_ALIASES), _pick(cols, _TARGET_ALIASES)
    missing = [n for n, c in (("source", src), ("target", tgt)) if c is None]
    if missing:
        raise PerturbODEError(
            f"Missing column(s) {', '.join(missing)}",
            where=f"{where} (columns: {', '.join(map(str, df.columns)) or 'none'})",
            fix="Name the columns source,target[,sign] (one edge per line: regulator, target)")
    if len(df) == 0:
        raise PerturbODEError("The edge list has no edges", where=where,
                              fix="Give at least one line source,target")
    for name, col in (("source", src), ("target", tgt)):
        blank = df[col].isna().to_numpy() | (df[col].astype(str).str.strip() == "").to_numpy()
        if blank.any():
            first = int(np.flatnonzero(blank)[0])
            raise PerturbODEError(f"{int(blank.sum())} edge(s) have an empty {name}",
                                  where=f"{where}, column {col!r}, line {first + 2}",
                                  fix="Fill in both genes of every edge or delete the line")
    sign_col = _pick(cols, _SIGN_ALIASES)
    out = pd.DataFrame({"source": df[src].astype(str).str.strip().to_numpy(),
                        "target": df[tgt].astype(str).str.strip().to_numpy()})
    if sign_col is not None:
        if pd.api.types.is_numeric_dtype(df[sign_col]):
            vals = df[sign_col].to_numpy(dtype=float)
            bad = np.isfinite(vals) & ~np.isin(vals, (-1.0, 0.0, 1.0))
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise PerturbODEError(f"Sign {vals[first]:g} is not +1 or -1",
                                      where=f"{where}, column {sign_col!r}, line {first + 2}",
                                      fix="Write +1/-1 (or leave empty when unknown)")
            out["sign"] = np.where(vals == 0, np.nan, vals)
        else:
            out["sign"] = _parse_sign(df[sign_col].reset_index(drop=True), where)
    else:
        out["sign"] = np.nan
    # duplicates: one row per edge; conflicting signs mean a dual edge (sign unknown)
    grouped = out.groupby(["source", "target"], sort=False)["sign"]
    lo, hi = grouped.min(), grouped.max()
    sign = lo.where(lo == hi)
    return pd.DataFrame({"source": lo.index.get_level_values(0), "target": lo.index.get_level_values(1),
                         "sign": sign.to_numpy(dtype=float)})


def read_edge_list(path: str | Path) -> pd.DataFrame:
    """Read a ground-truth edge list (CSV or TSV) ``source,target[,sign]``.

    Parameters
    ----------
    path
        The file. Tab-separated files (``.tsv``/``.txt`` or a tab in the header) are read too.

    Returns
    -------
    pandas.DataFrame
        As :func:`validate_edge_list`: ``source``, ``target``, ``sign`` (+1, -1 or NaN).

    Raises
    ------
    PerturbODEError
        File missing, empty, unreadable, missing columns, empty genes or unknown sign labels.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise PerturbODEError(f"Edge list not found: {path}", where=where, fix="Check the path")
    if path.is_dir():
        raise PerturbODEError(f"{path} is a folder, not an edge list", where=where,
                              fix="Point to the CSV file inside it")
    if path.stat().st_size == 0:
        raise PerturbODEError("The edge list file is empty (0 bytes)", where=where,
                              fix="Give a CSV with a header line source,target[,sign]")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            header = fh.readline()
        sep = "\t" if ("\t" in header or path.suffix.lower() in (".tsv", ".tab")) else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                         skipinitialspace=True, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PerturbODEError("The edge list is not a text file", where=where,
                              fix="Save the edges as a UTF-8 CSV with header source,target[,sign]") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PerturbODEError(f"Could not parse the edge list ({exc})", where=where,
                              fix="Give a CSV with a header line source,target[,sign] and one edge per line") from exc
    return validate_edge_list(df, where=where)


# ----------------------------------------------------------------------------- conversions
def _as_matrix(prediction, gene_names, *, where: str = "prediction") -> tuple[np.ndarray, list[str]]:
    """A score matrix and gene names from a matrix or an edge table (source, target, weight)."""
    if isinstance(prediction, pd.DataFrame):
        cols = {str(c).strip().lower(): c for c in prediction.columns}
        src, tgt = _pick(cols, _SOURCE_ALIASES), _pick(cols, _TARGET_ALIASES)
        wcol = _pick(cols, _WEIGHT_ALIASES)
        if src is None or tgt is None or wcol is None:
            raise PerturbODEError(
                "A predicted edge table needs columns source, target and weight",
                where=f"{where} (columns: {', '.join(map(str, prediction.columns))})",
                fix="Rename the columns, or pass the score matrix G with gene names")
        s = prediction[src].astype(str).to_numpy()
        t = prediction[tgt].astype(str).to_numpy()
        if gene_names is None:
            gene_names = sorted(set(s) | set(t))
        gene_names = [str(g) for g in gene_names]
        index = {g: k for k, g in enumerate(gene_names)}
        keep = np.array([a in index and b in index for a, b in zip(s, t)], dtype=bool)
        G = np.zeros((len(gene_names), len(gene_names)))
        w = prediction[wcol].to_numpy(dtype=float)[keep]
        rows = np.array([index[b] for b in t[keep]], dtype=int)
        cols_ = np.array([index[a] for a in s[keep]], dtype=int)
        G[rows, cols_] = w
        return G, gene_names
    G = np.asarray(prediction, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise PerturbODEError(f"The score matrix has shape {G.shape}, not genes x genes", where=where,
                              fix="Pass G with G[i, j] = effect of regulator j on target i")
    if gene_names is None or len(gene_names) != G.shape[0]:
        raise PerturbODEError(
            f"{G.shape[0]} x {G.shape[0]} score matrix needs {G.shape[0]} gene names "
            f"(got {None if gene_names is None else len(gene_names)})", where=where,
            fix="Pass the model's gene names in the order of G's rows and columns")
    if not np.isfinite(G).all():
        raise PerturbODEError("The score matrix has NaN or infinite entries", where=where,
                              fix="Replace them (e.g. np.nan_to_num) before scoring")
    return G, [str(g) for g in gene_names]


def matrix_to_edges(G: np.ndarray, gene_names, *, top_k: int | None = None) -> pd.DataFrame:
    """Edges ``source, target, weight`` of a score matrix, sorted by ``|weight|`` (no self-loops).

    Parameters
    ----------
    G
        p x p, ``G[i, j]`` = effect of regulator ``j`` on target ``i``.
    gene_names
        Names of G's rows/columns.
    top_k
        Keep the ``top_k`` strongest edges (all non-zero edges when None).
    """
    G, names = _as_matrix(G, gene_names)
    p = len(names)
    tgt, src = np.nonzero(~np.eye(p, dtype=bool) & (G != 0))
    w = G[tgt, src]
    order = np.argsort(-np.abs(w), kind="stable")
    if top_k is not None:
        order = order[: int(top_k)]
    arr = np.asarray(names, dtype=object)
    return pd.DataFrame({"source": arr[src[order]], "target": arr[tgt[order]], "weight": w[order]})


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
    G, names = _as_matrix(prediction, gene_names)
    if isinstance(truth, (str, Path)):
        truth = read_edge_list(truth)
    else:
        truth = validate_edge_list(truth, where="ground truth")
    p = len(names)
    index = pd.Series(np.arange(p), index=names)

    reg_mask = np.ones(p, dtype=bool)
    if regulators is not None:
        reg_set = {str(r) for r in regulators}
        reg_mask = np.isin(np.asarray(names, dtype=object), list(reg_set))
        if not reg_mask.any():
            raise PerturbODEError("None of the given regulators are among the genes", where="regulators",
                                  fix="Pass regulator names exactly as the gene names")
    candidate = ~np.eye(p, dtype=bool) & reg_mask[None, :]  # [target, regulator]

    self_loop = (truth["source"] == truth["target"]).to_numpy()
    known = truth["source"].isin(index.index).to_numpy() & truth["target"].isin(index.index).to_numpy()
    t = truth[known & ~self_loop]
    ti = index[t["target"]].to_numpy()
    tj = index[t["source"]].to_numpy()
    in_cand = candidate[ti, tj]
    ti, tj, tsign = ti[in_cand], tj[in_cand], t["sign"].to_numpy()[in_cand]
    n_dropped = int((~known & ~self_loop).sum())
    n_outside = int((~in_cand).sum())

    labels_mat = np.zeros((p, p), dtype=bool)
    labels_mat[ti, tj] = True
    scores = np.abs(G[candidate])
    labels = labels_mat[candidate]
    n_cand, n_pos = int(labels.size), int(labels.sum())
    density_true = n_pos / n_cand if n_cand else np.nan

    both = 0 < n_pos < n_cand
    aupr = float(average_precision_score(labels, scores)) if both else np.nan
    auroc = float(roc_auc_score(labels, scores)) if both else np.nan
    ep = _expected_tp_at_k(scores, labels, n_pos) / n_pos if n_pos else np.nan

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

    has_sign = np.isfinite(tsign)
    pred_sign = np.sign(G[ti[has_sign], tj[has_sign]])
    n_signed = int(has_sign.sum())
    sign_acc = float(np.mean(pred_sign == tsign[has_sign])) if n_signed else np.nan

    return {
        "aupr": aupr,
        "auroc": auroc,
        "aupr_ratio": aupr / density_true if both else np.nan,
        "early_precision": ep,
        "early_precision_ratio": ep / density_true if both else np.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_called": n_called,
        "sign_accuracy": sign_acc,
        "n_signed_true": n_signed,
        "n_true_edges": n_pos,
        "n_candidates": n_cand,
        "edge_density": density_true,
        "n_regulators": int(reg_mask.sum()),
        "n_truth_dropped": n_dropped,
        "n_truth_outside_regulators": n_outside,
        "n_truth_self_loops": int(self_loop.sum()),
    }


def metrics_frame(metrics: dict, **labels) -> pd.DataFrame:
    """One-row DataFrame of a metrics dict, with label columns first (e.g. ``method="genie3"``).

    Non-scalar values (tables) are left out.
    """
    row = {**labels, **{k: v for k, v in metrics.items() if np.isscalar(v) or v is None}}
    return pd.DataFrame([row])
