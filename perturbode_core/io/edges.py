"""Edge tables: the one format of a network (``source, target, weight, sign, rank``), from a
matrix or a file, and out to CSV, GraphML and networkx.

Conventions: a score matrix ``G`` is p x p with ``G[i, j]`` the effect of regulator ``j`` on
target ``i`` (sign kept); an edge table lists ``source`` (regulator) -> ``target`` with its signed
``weight``, ranked by ``|weight|``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import atomic_path, check_input_file, write_text_atomic


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
    path = check_input_file(path, kind="Edge list")
    where = str(path)
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
def as_score_matrix(prediction, gene_names, *, where: str = "prediction") -> tuple[np.ndarray, list[str]]:
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


def edge_table(G: np.ndarray, gene_names, *, top_k: int | None = None, sparsity: float | None = None,
               threshold: float | None = None, self_loops: bool = False, nonzero: bool = False) -> pd.DataFrame:
    """Edges ranked by |weight| (sign kept), optionally binarised.

    Parameters
    ----------
    G
        Network matrix, ``G[i, j]`` = effect of j on i.
    top_k
        Keep the k strongest edges.
    sparsity
        Keep this share of all possible edges (0-1), e.g. 0.05.
    threshold
        Keep edges with |weight| >= threshold.
    self_loops
        Include i -> i edges (excluded by default: decay is modelled apart).
    nonzero
        Leave out edges of weight exactly 0 (a sparse prediction's absent edges).

    Returns
    -------
    DataFrame with columns source, target, weight, sign, rank (1 = strongest).
    """
    genes = np.asarray([str(g) for g in gene_names], dtype=object)
    G = np.asarray(G)
    p = len(genes)
    if G.shape != (p, p):
        raise PerturbODEError(f"Network matrix of shape {G.shape} does not fit {p} genes", fix="Pass the model's genes")
    if sum(x is not None for x in (top_k, sparsity, threshold)) > 1:
        raise PerturbODEError("Choose one of top_k, sparsity or threshold", where="edge selection",
                              fix="Give only one of them")
    absw = np.abs(G).astype(np.float64).ravel()
    candidate = np.ones(p * p, bool)
    if not self_loops:
        candidate[np.arange(p) * (p + 1)] = False
    if nonzero:
        candidate &= absw != 0
    n_cand = int(candidate.sum())
    n = n_cand
    if top_k is not None:
        if top_k < 0:
            raise PerturbODEError(f"top_k must be >= 0, got {top_k}", fix="Give a number of edges")
        n = min(int(top_k), n_cand)
    elif sparsity is not None:
        if not 0 <= sparsity <= 1:
            raise PerturbODEError(f"sparsity must be in [0, 1], got {sparsity}", fix="Give e.g. 0.05")
        n = int(round(sparsity * n_cand))
    elif threshold is not None:
        n = int((candidate & (absw >= threshold)).sum())
    # non-candidates sort last; with few edges wanted from a large network, partition first
    # (O(p^2)) and sort only those (a full argsort of 10,000 genes' 10^8 pairs takes ~10 s)
    key = np.where(candidate, -absw, np.inf)
    if n < len(key) // 4:
        picked = np.argpartition(key, n)[:n] if n else np.array([], dtype=np.int64)
        # stable order among ties: by flat position, as a full stable argsort would give
        picked = picked[np.lexsort((picked, key[picked]))]
    else:
        picked = np.argsort(key, kind="stable")[:n]
    tgt, src = np.divmod(picked, p)
    w = G.ravel()[picked].astype(np.float64)
    return pd.DataFrame({
        "source": genes[src].astype(str), "target": genes[tgt].astype(str), "weight": w,
        "sign": np.sign(w).astype(int), "rank": np.arange(1, n + 1),
    })


#: The default edge count of ``grn.csv`` in words (help texts).
DEFAULT_TOP_K_RULE = "max(20 x genes, 100,000) strongest edges, at most every ordered pair"


def default_top_k(n_genes: int) -> int:
    """Edges a network file keeps by default: ``max(20 p, 100,000)``, capped at all p (p - 1) pairs.

    Networks of up to ~316 genes keep every pair (the full ranking that precision-recall
    evaluation needs); 2,000 genes keep 100,000 of 3,998,000 pairs and 10,000 genes 200,000 of
    ~10^8 (a ~4 MB file instead of gigabytes that nobody opens).
    """
    p = int(n_genes)
    return min(max(20 * p, 100_000), p * (p - 1))


def write_matrix_npz(G: np.ndarray, gene_names, path, *, score: np.ndarray | None = None) -> Path:
    """Write the whole network matrix compactly: ``.npz`` with ``G`` (float32, ``G[i, j]`` = effect
    of gene j on gene i), ``genes`` (their names) and, when given, ``score`` (float32: the signed
    scores that rank the edges, :func:`perturbode_core.tools.grn.network_matrix`), atomically.
    400 MB per matrix at 10,000 genes, against ~8 GB as CSV; :func:`read_matrix_npz` reads it back."""
    G = np.asarray(G, dtype=np.float32)
    genes = np.asarray([str(g) for g in gene_names])
    arrays = {"G": G} if score is None else {"G": G, "score": np.asarray(score, dtype=np.float32)}
    for name, M in arrays.items():
        if M.shape != (len(genes), len(genes)):
            raise PerturbODEError(f"Network matrix {name} of shape {M.shape} does not fit {len(genes)} genes",
                                  fix="Pass the model's genes")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez would rename a path
        np.savez(fh, genes=genes, **arrays)
    return Path(path)


def read_matrix_npz(path, *, array: str = "G") -> tuple[np.ndarray, list[str]]:
    """``(matrix, gene_names)`` from a file written by :func:`write_matrix_npz`: ``array="G"`` the
    model's direct effects, ``"score"`` the ranking scores (when the file has them)."""
    path = check_input_file(path, kind="Network matrix")
    try:
        with np.load(path, allow_pickle=False) as z:
            if array not in z.files and {"G", "genes"} <= set(z.files):
                raise PerturbODEError(f"The network matrix file has no {array!r} (it holds {', '.join(z.files)})",
                                      where=str(path), fix="Read 'G', or write the file with --reading combined "
                                                           "from a model trained with this version")
            G, genes = z[array], [str(g) for g in z["genes"]]
    except (OSError, ValueError, KeyError) as exc:
        raise PerturbODEError(f"Not a network matrix file ({exc})", where=str(path),
                              fix="Give an .npz written by 'perturbode grn --out FILE.npz' or by "
                                  "'perturbode train --matrix'") from None
    G, genes = as_score_matrix(G, genes, where=str(path))
    return G, genes


def as_edge_frame(edges, gene_names=None, *, top_k: int | None = None, where: str = "edges") -> pd.DataFrame:
    """Any network as an edge table: a score matrix (with ``gene_names``) or a table whose columns
    may use the usual aliases (regulator/TF/from, to, score/importance).

    Returns a new table with ``source``, ``target`` (str), ``weight`` (float; 1 when the table has
    none) and ``sign`` (int; that of the weight unless given), the ``top_k`` strongest by
    ``|weight|`` when asked (a matrix's zero entries are not edges).
    """
    if not isinstance(edges, pd.DataFrame) and not isinstance(edges, dict):
        G, names = as_score_matrix(edges, gene_names, where=where)
        table = edge_table(G, names, top_k=top_k, nonzero=True)
        return table[["source", "target", "weight", "sign"]]
    df = pd.DataFrame(edges)
    cols = {str(c).strip().lower(): c for c in df.columns}
    src, tgt, w = _pick(cols, _SOURCE_ALIASES), _pick(cols, _TARGET_ALIASES), _pick(cols, _WEIGHT_ALIASES)
    if src is None or tgt is None:
        raise PerturbODEError("The edge table needs columns source and target",
                              where=f"{where} (columns: {', '.join(map(str, df.columns)) or 'none'})",
                              fix="Rename the columns source,target[,weight]")
    weight = pd.to_numeric(df[w], errors="coerce").fillna(0.0).to_numpy(dtype=float) if w is not None \
        else np.ones(len(df))
    out = pd.DataFrame({"source": df[src].astype(str).to_numpy(), "target": df[tgt].astype(str).to_numpy(),
                        "weight": weight})
    out["sign"] = df["sign"].to_numpy(dtype=int) if "sign" in df.columns and df["sign"].notna().all() \
        else np.sign(weight).astype(int)
    if top_k is not None:
        if w is None:
            raise PerturbODEError("top_k needs a weight column to rank edges", where=where,
                                  fix="Add a weight column or drop top_k")
        out = out.iloc[np.argsort(-np.abs(weight), kind="stable")[: int(top_k)]]
    return out.reset_index(drop=True)


#: Optional numeric edge columns carried into graphs and GraphML when a table has them
#: (``G``: the direct effect beside a combined reading's score).
EXTRA_EDGE_ATTRIBUTES = ("confidence", "rank", "G")


def to_networkx(edges: pd.DataFrame, *, genes=None):
    """A directed graph (``networkx.DiGraph``) with ``weight``, ``abs_weight`` and ``sign`` on each
    edge, plus ``confidence``, ``rank`` and ``G`` where the table has them (a seed consensus, a
    combined reading)."""
    import networkx as nx  # on use: reading an edge table (the first page) does not need it

    g = nx.DiGraph()
    if genes is not None:
        g.add_nodes_from(map(str, genes))
    extra = [c for c in EXTRA_EDGE_ATTRIBUTES if c in edges.columns]
    for row in edges.itertuples(index=False):
        more = {c: int(getattr(row, c)) if c == "rank" else float(getattr(row, c)) for c in extra}
        g.add_edge(str(row.source), str(row.target), weight=float(row.weight), abs_weight=abs(float(row.weight)),
                   sign=int(row.sign), **more)
    return g


def write_edges_csv(edges: pd.DataFrame, path) -> Path:
    """Write ``source,target,weight,sign`` (plus rank, G, confidence where present) atomically."""
    write_text_atomic(path, edges.to_csv(index=False, lineterminator="\n"))
    return Path(path)


def graphml_bytes(edges: pd.DataFrame, *, genes=None, node_attributes: dict | None = None) -> bytes:
    """GraphML of the edges (opens in Cytoscape and Gephi); node attributes optional."""
    import networkx as nx

    g = to_networkx(edges, genes=genes)
    for name, values in (node_attributes or {}).items():
        nx.set_node_attributes(g, {str(k): v for k, v in values.items() if str(k) in g}, name)
    return "\n".join(nx.generate_graphml(g)).encode("utf-8")


def write_graphml(edges: pd.DataFrame, path, *, genes=None, node_attributes: dict | None = None) -> Path:
    """Write the edges as GraphML atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(graphml_bytes(edges, genes=genes, node_attributes=node_attributes))
    return Path(path)


def truth_from_uns(adata) -> pd.DataFrame | None:
    """The known network stored in ``uns["true_edges"]`` (by the simulator), as ``source, target,
    sign``; None when the data carry none."""
    t = (getattr(adata, "uns", None) or {}).get("true_edges")
    if t is None:
        return None
    return pd.DataFrame({"source": [str(s) for s in t["source"]], "target": [str(s) for s in t["target"]],
                         "sign": [int(s) for s in t["sign"]]})
