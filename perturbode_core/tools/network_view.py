"""Views of an edge table: edges classified against a known network, a gene's neighbourhood."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from perturbode_core.io.edges import as_edge_frame


def classify_edges(edges, truth) -> pd.DataFrame:
    """Compare predicted edges with a known network (direction counts, sign does not).

    Parameters
    ----------
    edges
        Predicted edges (``source, target, weight``).
    truth
        Known edges (``source, target[, sign]``).

    Returns
    -------
    pandas.DataFrame
        The predicted edges with ``status`` ``true positive`` / ``false positive``, followed by the
        true edges that were not predicted (``missed``, weight 0, sign 0). Every true edge passed
        in can be ``missed``: the caller chooses the gene universe by filtering ``truth`` first.
    """
    pred = as_edge_frame(edges)
    t = pd.DataFrame(truth)[["source", "target"]].astype(str).drop_duplicates()
    t = t[t["source"] != t["target"]]
    true_pairs = set(zip(t["source"], t["target"]))
    pred_pairs = set(zip(pred["source"], pred["target"]))
    pred["status"] = ["true positive" if pair in true_pairs else "false positive"
                      for pair in zip(pred["source"], pred["target"])]
    missed = t[[pair not in pred_pairs for pair in zip(t["source"], t["target"])]].copy()
    missed["weight"] = 0.0
    missed["sign"] = 0
    missed["status"] = "missed"
    return pd.concat([pred, missed], ignore_index=True)


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
