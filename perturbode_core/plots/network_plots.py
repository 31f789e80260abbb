"""Figures of the gene network: node-link drawing (with the known-network overlay) and the G heatmap."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core.plots.style import (DIVERGING_SCALE, NODE_STATUS_COLORS, OTHER_COLOR, SIGN_COLORS, TRUTH_STYLES,
                                         UNMEASURED_COLOR, module_color, readable_layout)
from perturbode_core.io.edges import as_edge_frame
from perturbode_core.tools.network_view import classify_edges


def network_layout(graph: nx.Graph, *, method: str = "spring", seed: int = 0) -> dict:
    """Node positions ``{node: (x, y)}`` (deterministic for a given seed).

    ``spring`` (Fruchterman-Reingold, weighted by ``abs_weight``), ``kamada_kawai`` or ``circular``.
    """
    from perturbode_core.errors import check_choice

    check_choice("layout", method, ("spring", "kamada_kawai", "circular"))
    n = graph.number_of_nodes()
    if n == 0:
        return {}
    if n == 1:
        return {next(iter(graph.nodes)): (0.0, 0.0)}
    if method == "circular":
        return {k: tuple(v) for k, v in nx.circular_layout(graph).items()}
    und = graph.to_undirected() if graph.is_directed() else graph
    if method == "kamada_kawai" and nx.is_connected(und):
        # weight=None: signed "weight" attributes would be read as (negative) distances
        return {k: tuple(v) for k, v in nx.kamada_kawai_layout(und, weight=None).items()}
    # k a bit above the default 1/sqrt(n) spreads the crowded centre of hub-heavy GRNs
    pos = nx.spring_layout(und, seed=seed, weight="abs_weight", k=1.5 / math.sqrt(n), iterations=100)
    return {k: tuple(v) for k, v in pos.items()}


def _width_bins(absw: np.ndarray, n_bins: int = 4, lo: float = 1.0, hi: float = 4.5):
    """Bin |weight| into a few line widths (plotly draws one width per trace)."""
    if len(absw) == 0:
        return np.zeros(0, int), np.array([lo])
    top = float(absw.max()) or 1.0
    b = np.minimum((absw / top * n_bins).astype(int), n_bins - 1)
    return b, np.linspace(lo, hi, n_bins)


def _segment_trace(xy_pairs, *, color, width, dash="solid", name, legendgroup, showlegend):
    xs, ys = [], []
    for (x0, y0), (x1, y1) in xy_pairs:
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width, dash=dash), hoverinfo="skip",
                      name=name, legendgroup=legendgroup, showlegend=showlegend)


# ------------------------------------------------------------------------------------------ networks
#: Genes drawn with their names by default: all up to this many, else the strongest this many.
MAX_LABELS = 40
#: Module colours drawn by default: the modules with the most genes; the others are "other modules".
MAX_GROUPS = 10


def network_figure(edges, *, genes=None, node_groups: dict | None = None, truth=None, focus: str | None = None,
                   layout: str = "spring", seed: int = 0, title: str | None = None, height: int = 650,
                   node_size: float = 14.0, labels: bool | int | None = None, unmeasured=()) -> go.Figure:
    """An interactive network of the given edges.

    Edges are coloured by sign (activation blue, repression vermillion) and drawn wider for larger
    ``|weight|``; an arrow marker near each target shows the direction and carries the hover text
    (``source -> target``, weight, rank). With ``truth`` the edges are drawn by status instead
    (true positive / wrong sign / false positive / missed, see :data:`TRUTH_STYLES`; an edge whose
    sign contradicts the known one is never a true positive) and genes are coloured by their role
    in the known network.

    Parameters
    ----------
    edges
        Edge table (``source, target, weight``, optional ``sign``, ``rank``).
    genes
        Extra genes to draw even without edges.
    node_groups
        ``{gene: group}`` (e.g. from :func:`dominant_module`) to colour genes by module.
    truth
        Known edges (``source, target``); missed true edges are drawn among the shown genes only.
    focus
        A gene to highlight (larger, outlined).
    layout, seed
        See :func:`network_layout`.
    labels
        Gene names on the nodes: True (all), False (none), a number (the genes with the largest
        summed |weight|, plus ``focus``); default all up to :data:`MAX_LABELS` genes, else the
        strongest :data:`MAX_LABELS`.
    unmeasured
        Regulators that are not measured genes (a model's latent regulators): drawn as open
        diamonds, marked "not measured".
    """
    df = as_edge_frame(edges)
    shown = list(dict.fromkeys(list(df["source"]) + list(df["target"]) + [str(g) for g in (genes or [])]))
    if truth is not None:
        tr = pd.DataFrame(truth)
        tr = tr[tr["source"].astype(str).isin(shown) & tr["target"].astype(str).isin(shown)]
        df = classify_edges(df, tr)
    g = nx.DiGraph()
    g.add_nodes_from(shown)
    for r in df.itertuples(index=False):
        g.add_edge(r.source, r.target, abs_weight=abs(r.weight) or 1e-3)
    pos = network_layout(g, method=layout, seed=seed)
    fig = go.Figure()
    if not shown:
        fig.add_annotation(text="No edges to show: lower the threshold or raise top-k", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(title=title, height=height, xaxis_visible=False, yaxis_visible=False)
        return fig

    bins, widths = _width_bins(df["weight"].abs().to_numpy())
    _add_edge_lines(fig, df, pos, bins, widths, with_truth=truth is not None)
    if len(df):
        _add_edge_arrows(fig, df, pos, bins, widths, with_truth=truth is not None)
    _add_nodes(fig, g, shown, pos, truth=truth, node_groups=node_groups, focus=focus, node_size=node_size,
               labelled=_labelled(df, shown, labels, focus), unmeasured=set(map(str, unmeasured)))
    readable_layout(fig, title=title)
    fig.update_layout(
        height=height, hovermode="closest", plot_bgcolor="white",
        xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x", scaleratio=1),
        legend=dict(itemsizing="constant"),
        meta={"kind": "network", "n_edges": int((df.get("status", pd.Series(dtype=str)) != "missed").sum())
              if truth is not None else int(len(df)), "n_genes": len(shown)},
    )
    return fig


def _labelled(df: pd.DataFrame, shown: list[str], labels, focus) -> set[str]:
    """The genes whose names are drawn: all, none, or the strongest (summed |weight|) and the focus."""
    if labels is True or (labels is None and len(shown) <= MAX_LABELS):
        return set(shown)
    if labels is False:
        return set()
    n = MAX_LABELS if labels is None else int(labels)
    strength = pd.concat([df.groupby("source")["weight"].apply(lambda w: w.abs().sum()),
                          df.groupby("target")["weight"].apply(lambda w: w.abs().sum())]).groupby(level=0).sum()
    strongest = strength.sort_values(ascending=False, kind="stable").index[:n]
    return set(map(str, strongest)) | ({focus} if focus else set())


def _add_edge_lines(fig, df, pos, bins, widths, *, with_truth: bool) -> None:
    """One line trace per (sign or truth status) x width bin: colour says what, width says how strong."""
    seg = [(pos[s], pos[t]) for s, t in zip(df["source"], df["target"])]
    if with_truth:
        groups = [(status, df["status"] == status, style["color"], style["dash"]) for status, style in TRUTH_STYLES.items()]
    else:
        groups = [(("activation" if s > 0 else "repression" if s < 0 else "zero"), df["sign"] == s, SIGN_COLORS[s], "solid")
                  for s in (1, -1, 0)]
    for name, mask, color, dash in groups:
        mask = np.asarray(mask)
        first = True
        for b, w in enumerate(widths):
            sel = np.nonzero(mask & (bins == b))[0]
            if len(sel) == 0:
                continue
            # missed edges have no weight: draw them thin so they do not dominate
            lw = 1.2 if name == "missed" else float(w)
            fig.add_trace(_segment_trace([seg[i] for i in sel], color=color, width=lw, dash=dash,
                                         name=f"{name} ({int(mask.sum())})", legendgroup=name, showlegend=first))
            first = False


def _add_edge_arrows(fig, df, pos, bins, widths, *, with_truth: bool) -> None:
    """Direction: an arrow marker 75% of the way to the target (also the edge's hover target)."""
    p0 = np.array([pos[s] for s in df["source"]], float)
    p1 = np.array([pos[t] for t in df["target"]], float)
    mid = p0 + 0.75 * (p1 - p0)
    d = p1 - p0
    angle = np.degrees(np.arctan2(d[:, 0], d[:, 1]))  # plotly: clockwise from "up"
    colors = [TRUTH_STYLES[s]["color"] for s in df["status"]] if with_truth else \
        [SIGN_COLORS[int(s)] for s in df["sign"]]
    rank = df["rank"] if "rank" in df else pd.Series(np.arange(1, len(df) + 1))
    hover = [f"{s} → {t}<br>weight {w:+.3g}" + (f"<br>rank {int(r)}" if pd.notna(r) else "")
             + (f"<br>{st}" if with_truth else "")
             for s, t, w, r, st in zip(df["source"], df["target"], df["weight"], rank,
                                       df["status"] if with_truth else [None] * len(df))]
    # the marker grows with the line width so a wide edge does not swallow its own arrow
    sizes = 11 + 2.5 * widths[bins] if len(widths) else 11
    fig.add_trace(go.Scatter(x=mid[:, 0], y=mid[:, 1], mode="markers",
                             marker=dict(symbol="arrow", angle=angle, size=sizes, color=colors,
                                         line=dict(color="white", width=1)),
                             hovertext=hover, hoverinfo="text", showlegend=False, name="edges"))


def _add_nodes(fig, g, shown, pos, *, truth, node_groups, focus, node_size, labelled: set,
               unmeasured=frozenset()) -> None:
    """Genes coloured by their role in the known network, by module (the :data:`MAX_GROUPS`
    largest; the rest as "other modules"), or all alike; unmeasured regulators apart (open
    diamonds, "not measured")."""
    indeg, outdeg = dict(g.in_degree()), dict(g.out_degree())
    latent = [n for n in shown if n in unmeasured]
    shown = [n for n in shown if n not in unmeasured]
    if latent:
        names = [n if n in labelled else "" for n in latent]
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in latent], y=[pos[n][1] for n in latent],
            mode="markers+text" if any(names) else "markers", text=names if any(names) else None,
            textposition="top center", textfont=dict(size=10),
            marker=dict(size=node_size * 1.2, symbol="diamond", color=UNMEASURED_COLOR,
                        line=dict(color="#222222", width=2)),
            hovertext=[f"<b>{n}</b><br>not measured (a perturbed target outside the genes)<br>targets: {outdeg.get(n, 0)}"
                       for n in latent],
            hoverinfo="text", name="not measured", legendgroup="node-not-measured"))
    if truth is not None:
        tr_src = set(pd.DataFrame(truth)["source"].astype(str))
        tr_tgt = set(pd.DataFrame(truth)["target"].astype(str))
        groups_of = {n: ("true regulator" if n in tr_src else "true target" if n in tr_tgt else "not in truth")
                     for n in shown}
        palette = NODE_STATUS_COLORS
    elif node_groups:
        groups_of = {n: str(node_groups.get(n, "none")) for n in shown}
        sizes = pd.Series(groups_of).value_counts()
        cats = sorted(sizes.index, key=lambda c: (-sizes[c], len(c), c))
        big = cats[:MAX_GROUPS] if len(cats) > MAX_GROUPS else cats
        if len(cats) > len(big):
            groups_of = {n: (c if c in set(big) else "other modules") for n, c in groups_of.items()}
        palette = {c: module_color(i) for i, c in enumerate(big)}
        if len(cats) > len(big):
            palette["other modules"] = OTHER_COLOR
    else:
        groups_of = {n: "gene" for n in shown}
        palette = {"gene": "#444444"}
    for cat, color in palette.items():
        nodes = [n for n in shown if groups_of[n] == cat]
        if not nodes:
            continue
        names = [n if n in labelled else "" for n in nodes]
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes],
            mode="markers+text" if any(names) else "markers", text=names if any(names) else None,
            textposition="top center", textfont=dict(size=10),
            marker=dict(size=[node_size * (1.7 if n == focus else 1.0) for n in nodes], color=color,
                        line=dict(color=["black" if n == focus else "white" for n in nodes],
                                  width=[3 if n == focus else 1 for n in nodes])),
            hovertext=[f"<b>{n}</b><br>{cat}<br>regulators: {indeg.get(n, 0)} · targets: {outdeg.get(n, 0)}"
                       for n in nodes],
            hoverinfo="text", name=cat if len(palette) > 1 else "genes", legendgroup=f"node-{cat}",
        ))


def truth_overlay_figure(edges, truth, **kwargs) -> go.Figure:
    """:func:`network_figure` with the ground-truth overlay (true positive / false positive / missed)."""
    return network_figure(edges, truth=truth, **kwargs)


def g_heatmap(G, gene_names, *, max_genes: int = 60, title: str | None = "Network matrix G") -> go.Figure:
    """Heatmap of G (rows: targets, columns: regulators), every gene named, in the sign colours
    (activation blue, repression vermillion, :data:`~perturbode_core.plots.style.DIVERGING_SCALE`).

    With more than ``max_genes`` genes, shows the genes with the largest total ``|G|`` (in + out).
    """
    G = np.asarray(G, float)
    genes = np.asarray([str(g) for g in gene_names])
    if len(genes) > max_genes:
        score = np.abs(G).sum(0) + np.abs(G).sum(1)
        keep = np.sort(np.argsort(-score, kind="stable")[:max_genes])
        G, genes = G[np.ix_(keep, keep)], genes[keep]
    lim = float(np.abs(G).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=G, x=genes, y=genes, colorscale=DIVERGING_SCALE, zmin=-lim, zmax=lim, zmid=0,
        colorbar=dict(title="effect"),
        hovertemplate="regulator %{x} → target %{y}<br>G = %{z:+.3g}<extra></extra>"))
    side = max(400, 14 * len(genes) + 200)
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title="regulator (source)", yaxis_title="target", height=side)
    # every gene gets its tick label (plotly skips categories when they look crowded)
    fig.update_xaxes(tickmode="array", tickvals=list(genes), ticktext=list(genes), tickangle=-90, tickfont_size=10)
    fig.update_yaxes(tickmode="array", tickvals=list(genes), ticktext=list(genes), tickfont_size=10,
                     autorange="reversed")
    return fig
