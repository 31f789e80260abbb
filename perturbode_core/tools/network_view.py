"""Views of a network: edges classified against a known network (signs checked), a gene's
neighbourhood, and the neighbourhood read off the whole matrix rather than a global cut."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from perturbode_core.io.edges import as_edge_frame

#: Status of a predicted edge against a known network (``missed``: a known edge not predicted).
STATUSES = ("true positive", "wrong sign", "false positive", "missed")


def _known_signs(truth: pd.DataFrame) -> dict:
    """``{(source, target): +1 / -1 / 0}`` of a known network (0 where its sign is unknown)."""
    t = pd.DataFrame(truth)
    signs = pd.to_numeric(t["sign"], errors="coerce").fillna(0).to_numpy() if "sign" in t else np.zeros(len(t))
    out = {}
    for s, g, v in zip(t["source"].astype(str), t["target"].astype(str), signs):
        if s != g:
            out.setdefault((s, g), int(np.sign(v)))
    return out


def classify_edges(edges, truth) -> pd.DataFrame:
    """Compare predicted edges with a known network: direction and, where known, sign.

    Parameters
    ----------
    edges
        Predicted edges (``source, target, weight``; ``sign`` from the weight when absent).
    truth
        Known edges (``source, target[, sign]``; a sign of 0 or none means unknown).

    Returns
    -------
    pandas.DataFrame
        The predicted edges with ``status`` and ``true_sign`` (the known sign, 0 when unknown or
        not a known edge): ``true positive`` (a known edge, with the known sign or an unknown
        one), ``wrong sign`` (a known edge predicted with the opposite sign: a predicted
        activation of a known repression is not a true positive) or ``false positive``; followed
        by the known edges that were not predicted (``missed``, weight 0, sign 0). Every known
        edge passed in can be ``missed``: the caller chooses the gene universe by filtering
        ``truth`` first.
    """
    pred = as_edge_frame(edges)
    known = _known_signs(truth)
    true_sign = np.array([known.get(pair, 0) for pair in zip(pred["source"], pred["target"])], dtype=int)
    status = []
    for pair, sign, ts in zip(zip(pred["source"], pred["target"]), pred["sign"], true_sign):
        if pair not in known:
            status.append("false positive")
        elif ts != 0 and int(np.sign(sign)) != ts:
            status.append("wrong sign")
        else:
            status.append("true positive")
    pred["status"] = status
    pred["true_sign"] = true_sign
    pred_pairs = set(zip(pred["source"], pred["target"]))
    missed = pd.DataFrame([{"source": s, "target": t, "weight": 0.0, "sign": 0, "status": "missed", "true_sign": v}
                           for (s, t), v in known.items() if (s, t) not in pred_pairs],
                          columns=["source", "target", "weight", "sign", "status", "true_sign"])
    return pd.concat([pred, missed], ignore_index=True) if len(missed) else pred


def neighbourhood_edges(edges, gene: str, *, hops: int = 1, direction: str = "both") -> pd.DataFrame:
    """The edges within ``hops`` steps of ``gene``: its regulators (upstream), targets (downstream) or both.

    Parameters
    ----------
    edges
        Edge table.
    gene
        Centre gene (matched exactly, then case-insensitively).
    hops
        Number of steps (1 = direct regulators / targets).
    direction
        ``upstream`` (regulators), ``downstream`` (targets) or ``both``.

    Returns
    -------
    pandas.DataFrame
        The edges whose both ends lie in the neighbourhood, in the input order. Empty when the gene
        has no edges.
    """
    from perturbode_core.errors import check_choice

    check_choice("direction", direction, ("both", "upstream", "downstream"))
    df = as_edge_frame(edges)
    genes = set(df["source"]) | set(df["target"])
    if gene not in genes:
        folded = {g.casefold(): g for g in genes}
        gene = folded.get(str(gene).casefold(), gene)
    g = nx.DiGraph()
    g.add_edges_from(zip(df["source"], df["target"]))
    if gene not in g:
        return df.iloc[0:0]
    keep = {gene}
    for graph in ([g.reverse(copy=False)] if direction == "upstream" else [g] if direction == "downstream"
                  else [g.reverse(copy=False), g]):
        keep |= set(nx.single_source_shortest_path_length(graph, gene, cutoff=max(int(hops), 0)))
    mask = df["source"].isin(keep) & df["target"].isin(keep)
    if direction != "both":
        # a one-sided view keeps only edges that point along the chosen direction
        dist = nx.single_source_shortest_path_length(
            g.reverse(copy=False) if direction == "upstream" else g, gene, cutoff=max(int(hops), 0))
        if direction == "upstream":
            mask &= np.array([dist.get(t, math.inf) < dist.get(s, math.inf) for s, t in zip(df["source"], df["target"])], bool)
        else:
            mask &= np.array([dist.get(s, math.inf) < dist.get(t, math.inf) for s, t in zip(df["source"], df["target"])], bool)
    return df[mask]


def find_gene(query: str, gene_names) -> str | None:
    """The gene a search box means: exact, then case-insensitive, then the one gene starting with it."""
    q = str(query or "").strip()
    if not q:
        return None
    genes = [str(g) for g in gene_names]
    if q in genes:
        return q
    folded = {g.casefold(): g for g in genes}
    if q.casefold() in folded:
        return folded[q.casefold()]
    starts = [g for g in genes if g.casefold().startswith(q.casefold())]
    return starts[0] if len(starts) == 1 else None


def focus_edges(G, gene_names, gene: str, *, hops: int = 1, direction: str = "both",
                per_gene: int = 10) -> pd.DataFrame:
    """A gene's neighbourhood read off the whole network matrix, not a global top-k cut.

    A global cut keeps the strongest edges of the whole network, so a gene whose edges are all
    weaker than the hubs' shows almost nothing. Here each gene reached keeps its own ``per_gene``
    strongest regulators (upstream) and/or targets (downstream) from the full ``G``, for ``hops``
    steps out from ``gene``.

    Parameters
    ----------
    G
        Network matrix, ``G[i, j]`` = effect of j on i.
    gene_names
        Its genes.
    gene
        The centre gene.
    hops, direction
        As in :func:`neighbourhood_edges`.
    per_gene
        Edges kept per gene and side.

    Returns
    -------
    pandas.DataFrame
        ``source, target, weight, sign, rank`` (rank by |weight| within the view), strongest first.
    """
    from perturbode_core.errors import PerturbODEError, check_choice

    check_choice("direction", direction, ("both", "upstream", "downstream"))
    G = np.asarray(G, float)
    genes = [str(g) for g in gene_names]
    idx = {g: i for i, g in enumerate(genes)}
    if gene not in idx:
        raise PerturbODEError(f"Gene {gene!r} is not in the network", where="focus",
                              fix="Pick one of the model's genes")
    A = np.abs(G).copy()
    np.fill_diagonal(A, 0.0)
    k = max(1, int(per_gene))
    pairs: dict[tuple[int, int], float] = {}
    frontier, seen = {idx[gene]}, {idx[gene]}
    for _ in range(max(1, int(hops))):
        nxt = set()
        for i in frontier:
            if direction in ("both", "upstream"):  # regulators of i: row i
                for j in np.argsort(-A[i], kind="stable")[:k]:
                    if A[i, j] > 0:
                        pairs[(int(i), int(j))] = G[i, j]
                        nxt.add(int(j))
            if direction in ("both", "downstream"):  # targets of i: column i
                for t in np.argsort(-A[:, i], kind="stable")[:k]:
                    if A[t, i] > 0:
                        pairs[(int(t), int(i))] = G[t, i]
                        nxt.add(int(t))
        frontier = nxt - seen
        seen |= nxt
    rows = [{"source": genes[j], "target": genes[i], "weight": float(w)} for (i, j), w in pairs.items()]
    df = pd.DataFrame(rows, columns=["source", "target", "weight"])
    df = df.iloc[np.argsort(-df["weight"].abs().to_numpy(), kind="stable")].reset_index(drop=True)
    df["sign"] = np.sign(df["weight"]).astype(int)
    df["rank"] = np.arange(1, len(df) + 1)
    return df


def with_unmeasured(edges, latent, *, per_regulator: int = 5) -> pd.DataFrame:
    """The edges plus the strongest ``per_regulator`` edges of each unmeasured regulator.

    Parameters
    ----------
    edges
        Edges among measured genes (``source, target, weight[, sign, rank]``).
    latent
        Edges of unmeasured regulators to measured genes
        (:func:`~perturbode_core.tools.grn.latent_edges`, strongest first).
    per_regulator
        How many edges of each unmeasured regulator to add (0: none).

    Returns
    -------
    pandas.DataFrame
        Both tables with a ``measured`` column (False for the unmeasured regulators' edges), the
        measured edges first.
    """
    base = pd.DataFrame(edges).copy()
    base["measured"] = True
    lat = pd.DataFrame(latent)
    if per_regulator <= 0 or lat.empty:
        return base.reset_index(drop=True)
    lat = lat.iloc[np.argsort(-np.abs(lat["weight"].to_numpy()), kind="stable")]
    lat = lat.groupby("source", sort=False).head(int(per_regulator)).copy()
    lat["measured"] = False
    return pd.concat([base, lat[[c for c in lat.columns if c in base.columns or c == "measured"]]],
                     ignore_index=True)
