"""Plotly figure builders: pure functions from tables and arrays to ``plotly.graph_objects.Figure``.

Nothing here imports streamlit; every builder is testable without a browser and is shared by the
dashboard pages and the HTML report (:mod:`perturbode_core.report`).

Network convention (as in :mod:`perturbode_core.grn`): an edge table has columns ``source``,
``target``, ``weight`` (signed effect of source on target) and optionally ``sign`` and ``rank``.

Figures of other modules are re-exported here when those modules exist, so ``plots.<name>`` is
the one place to look: :mod:`perturbode_core.plots_enrichment` (modules and enrichment) and
:mod:`perturbode_core.plots_dashboard` (dashboard-specific figures). They are imported lazily and
defensively: this module works whether or not they are installed.
"""

from __future__ import annotations

import importlib
import math

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "SIGN_COLORS",
    "TRUTH_STYLES",
    "classify_edges",
    "neighbourhood_edges",
    "dominant_module",
    "network_layout",
    "network_figure",
    "truth_overlay_figure",
    "loss_figure",
    "g_heatmap",
    "metric_bar_figure",
    "effect_bar_figure",
]

#: Edge colours by sign: activation and repression (colour-blind-safe blue / vermillion).
SIGN_COLORS = {1: "#0072B2", -1: "#D55E00", 0: "#999999"}
#: Edge styles in the ground-truth overlay: colour and dash per status.
TRUTH_STYLES = {
    "true positive": {"color": "#009E73", "dash": "solid"},
    "false positive": {"color": "#D55E00", "dash": "dot"},
    "missed": {"color": "#999999", "dash": "dash"},
}
# a qualitative palette long enough for a few dozen modules (plotly's Dark24 + Light24 cycle)
_PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B", "#511CFB",
    "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042",
    "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#222A2A",
]
_NODE_STATUS_COLORS = {"true regulator": "#009E73", "true target": "#56B4E9", "not in truth": "#BBBBBB"}


# ----------------------------------------------------------------------------------------- helpers
def _edges(edges) -> pd.DataFrame:
    """A copy of an edge table with string genes, float weights and an integer sign."""
    df = pd.DataFrame(edges).copy()
    missing = {"source", "target"} - set(df.columns)
    if missing:
        from .errors import PerturbODEError

        raise PerturbODEError(f"Edge table lacks column(s) {', '.join(sorted(missing))}", where="network figure",
                              fix="Pass a table with columns source, target, weight")
    df["source"] = df["source"].astype(str)
    df["target"] = df["target"].astype(str)
    if "weight" not in df:
        df["weight"] = 1.0
    df["weight"] = pd.to_numeric(df["weight"], errors="coerce").fillna(0.0).astype(float)
    if "sign" not in df:
        df["sign"] = np.sign(df["weight"]).astype(int)
    return df.reset_index(drop=True)


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
    pred = _edges(edges)
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
    from .errors import check_choice

    check_choice("direction", direction, ("both", "upstream", "downstream"))
    df = _edges(edges)
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


def dominant_module(A, alpha, gene_names, *, min_share: float = 0.0) -> dict:
    """Each gene's main module: the one that writes to it most strongly (``argmax_k |alpha_k A[g, k]|``).

    Used to colour genes by module in the network view. Genes whose strongest module carries less than
    ``min_share`` of their total incoming module weight are labelled ``"mixed"``.

    Returns
    -------
    dict
        ``{gene: "M{k}" or "mixed"}``.
    """
    W = np.abs(np.asarray(A, float) * np.asarray(alpha, float)[None, :])
    total = W.sum(1)
    k = W.argmax(1)
    share = np.divide(W[np.arange(len(k)), k], total, out=np.zeros(len(k)), where=total > 0)
    return {str(g): (f"M{int(kk)}" if s >= min_share and t > 0 else "mixed")
            for g, kk, s, t in zip(gene_names, k, share, total)}


def network_layout(graph: nx.Graph, *, method: str = "spring", seed: int = 0) -> dict:
    """Node positions ``{node: (x, y)}`` (deterministic for a given seed).

    ``spring`` (Fruchterman-Reingold, weighted by ``abs_weight``), ``kamada_kawai`` or ``circular``.
    """
    from .errors import check_choice

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
def network_figure(edges, *, genes=None, node_groups: dict | None = None, truth=None, focus: str | None = None,
                   layout: str = "spring", seed: int = 0, title: str | None = None, height: int = 650,
                   node_size: float = 14.0, labels: bool | None = None) -> go.Figure:
    """An interactive network of the given edges.

    Edges are coloured by sign (activation blue, repression vermillion) and drawn wider for larger
    ``|weight|``; an arrow marker near each target shows the direction and carries the hover text
    (``source -> target``, weight, rank). With ``truth`` the edges are drawn by status instead
    (true positive / false positive / missed, see :data:`TRUTH_STYLES`) and genes are coloured by
    their role in the known network.

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
        Show gene names on the nodes (default: when at most 80 genes are drawn).
    """
    df = _edges(edges)
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

    absw = df["weight"].abs().to_numpy()
    bins, widths = _width_bins(absw)
    seg = [(pos[s], pos[t]) for s, t in zip(df["source"], df["target"])]
    if truth is not None:
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

    # direction: an arrow marker 75% of the way to the target (also the edge's hover target)
    if len(df):
        p0 = np.array([pos[s] for s in df["source"]], float)
        p1 = np.array([pos[t] for t in df["target"]], float)
        mid = p0 + 0.75 * (p1 - p0)
        d = p1 - p0
        angle = np.degrees(np.arctan2(d[:, 0], d[:, 1]))  # plotly: clockwise from "up"
        if truth is not None:
            colors = [TRUTH_STYLES[s]["color"] for s in df["status"]]
        else:
            colors = [SIGN_COLORS[int(s)] for s in df["sign"]]
        rank = df["rank"] if "rank" in df else pd.Series(np.arange(1, len(df) + 1))
        hover = [f"{s} → {t}<br>weight {w:+.3g}" + (f"<br>rank {int(r)}" if pd.notna(r) else "")
                 + (f"<br>{st}" if truth is not None else "")
                 for s, t, w, r, st in zip(df["source"], df["target"], df["weight"], rank,
                                           df["status"] if truth is not None else [None] * len(df))]
        # the marker grows with the line width so a wide edge does not swallow its own arrow
        sizes = 11 + 2.5 * widths[bins] if len(widths) else 11
        fig.add_trace(go.Scatter(x=mid[:, 0], y=mid[:, 1], mode="markers",
                                 marker=dict(symbol="arrow", angle=angle, size=sizes, color=colors,
                                             line=dict(color="white", width=1)),
                                 hovertext=hover, hoverinfo="text", showlegend=False, name="edges"))

    # nodes
    indeg = dict(g.in_degree())
    outdeg = dict(g.out_degree())
    if truth is not None:
        tr_src = set(pd.DataFrame(truth)["source"].astype(str))
        tr_tgt = set(pd.DataFrame(truth)["target"].astype(str))
        groups_of = {n: ("true regulator" if n in tr_src else "true target" if n in tr_tgt else "not in truth")
                     for n in shown}
        palette = _NODE_STATUS_COLORS
    elif node_groups:
        groups_of = {n: str(node_groups.get(n, "none")) for n in shown}
        cats = sorted(set(groups_of.values()), key=lambda c: (len(c), c))
        palette = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(cats)}
    else:
        groups_of = {n: "gene" for n in shown}
        palette = {"gene": "#444444"}
    show_labels = labels if labels is not None else len(shown) <= 80
    for cat, color in palette.items():
        nodes = [n for n in shown if groups_of[n] == cat]
        if not nodes:
            continue
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes],
            mode="markers+text" if show_labels else "markers", text=nodes if show_labels else None,
            textposition="top center", textfont=dict(size=10),
            marker=dict(size=[node_size * (1.7 if n == focus else 1.0) for n in nodes], color=color,
                        line=dict(color=["black" if n == focus else "white" for n in nodes],
                                  width=[3 if n == focus else 1 for n in nodes])),
            hovertext=[f"<b>{n}</b><br>{cat}<br>regulators: {indeg.get(n, 0)} · targets: {outdeg.get(n, 0)}"
                       for n in nodes],
            hoverinfo="text", name=cat if len(palette) > 1 else "genes", legendgroup=f"node-{cat}",
        ))
    fig.update_layout(
        title=title, height=height, hovermode="closest", plot_bgcolor="white",
        margin=dict(l=10, r=10, t=50 if title else 20, b=10),
        xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x", scaleratio=1),
        legend=dict(itemsizing="constant"),
        meta={"kind": "network", "n_edges": int((df.get("status", pd.Series(dtype=str)) != "missed").sum())
              if truth is not None else int(len(df)), "n_genes": len(shown)},
    )
    return fig


def truth_overlay_figure(edges, truth, **kwargs) -> go.Figure:
    """:func:`network_figure` with the ground-truth overlay (true positive / false positive / missed)."""
    return network_figure(edges, truth=truth, **kwargs)


# ---------------------------------------------------------------------------------------- training
def loss_figure(history, *, best_epoch: int | None = None, log_y: bool = False, title: str | None = "Loss") -> go.Figure:
    """Training and validation loss by epoch (a dashed line at the best epoch when given).

    ``history`` is a DataFrame (or list of dicts) with ``epoch``, ``train_loss`` and optionally
    ``val_loss`` (as :attr:`FitResult.history`).
    """
    h = pd.DataFrame(history)
    fig = go.Figure()
    if h.empty or "epoch" not in h:
        fig.add_annotation(text="No training history yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    else:
        for col, name, color in (("train_loss", "train", "#0072B2"), ("val_loss", "validation", "#E69F00")):
            if col in h and h[col].notna().any():
                fig.add_trace(go.Scatter(x=h["epoch"], y=h[col], mode="lines+markers", name=name,
                                         line=dict(color=color), marker=dict(size=4)))
        if best_epoch is not None and best_epoch >= 0:
            fig.add_vline(x=best_epoch, line_dash="dash", line_color="#555555",
                          annotation_text=f"best epoch {best_epoch}", annotation_position="top right")
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="loss", height=380,
                      yaxis_type="log" if log_y else "linear", margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def g_heatmap(G, gene_names, *, max_genes: int = 60, title: str | None = "Network matrix G") -> go.Figure:
    """Heatmap of G (rows: targets, columns: regulators), symmetric diverging colour scale.

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
        z=G, x=genes, y=genes, colorscale="RdBu_r", zmin=-lim, zmax=lim, zmid=0,
        colorbar=dict(title="effect"),
        hovertemplate="regulator %{x} → target %{y}<br>G = %{z:+.3g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="regulator (source)", yaxis_title="target",
                      yaxis_autorange="reversed", height=max(400, 12 * len(genes) + 150),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


# ----------------------------------------------------------------------------------------- metrics
def metric_bar_figure(table, *, metrics=None, method_col: str = "method", model_name: str = "PerturbODE",
                      title: str | None = None, reference: dict | None = None) -> go.Figure:
    """Grouped bars: one group per metric, the model beside its baselines.

    Parameters
    ----------
    table
        A DataFrame with one row per method (column ``method_col``) and one column per metric, or a
        dict ``{method: {metric: value}}``.
    metrics
        Metric columns to draw (default: every numeric column).
    model_name
        The method drawn in the highlight colour; baselines are drawn in greys.
    reference
        ``{metric: value}`` drawn as a dotted line, e.g. a random predictor's level.
    """
    if isinstance(table, dict):
        df = pd.DataFrame([{method_col: k, **v} for k, v in table.items()])
    else:
        df = pd.DataFrame(table).copy()
    if method_col not in df:
        df = df.reset_index().rename(columns={"index": method_col})
    if metrics is None:
        metrics = [c for c in df.columns if c != method_col and pd.api.types.is_numeric_dtype(df[c])]
    metrics = list(metrics)
    greys = ["#7F7F7F", "#A6A6A6", "#C7C7C7", "#5E5E5E", "#D9D9D9"]
    fig = go.Figure()
    others = 0
    for _, row in df.iterrows():
        method = str(row[method_col])
        is_model = method == model_name
        color = "#0072B2" if is_model else greys[others % len(greys)]
        others += 0 if is_model else 1
        vals = [float(row[m]) if pd.notna(row.get(m)) else None for m in metrics]
        fig.add_trace(go.Bar(x=metrics, y=vals, name=method, marker_color=color,
                             text=[f"{v:.3g}" if v is not None else "n/a" for v in vals], textposition="outside",
                             hovertemplate=f"{method}<br>%{{x}} = %{{y:.4g}}<extra></extra>"))
    for m, v in (reference or {}).items():
        if m in metrics and v is not None and np.isfinite(v):
            i = metrics.index(m)
            fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=v, y1=v, xref="x", yref="y",
                          line=dict(dash="dot", color="black"))
    fig.update_layout(barmode="group", title=title, height=420, yaxis_title="value",
                      margin=dict(l=10, r=10, t=50 if title else 20, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def effect_bar_figure(effects, *, n: int = 20, value: str = "z_change", title: str | None = None) -> go.Figure:
    """Horizontal bars of the ``n`` largest per-gene effects of a simulation (:func:`simulate.effect_table`)."""
    df = pd.DataFrame(effects)
    df = df.reindex(df[value].abs().sort_values(ascending=False).index).head(n).iloc[::-1]
    colors = [SIGN_COLORS[1] if v > 0 else SIGN_COLORS[-1] for v in df[value]]
    fig = go.Figure(go.Bar(x=df[value], y=df["gene"], orientation="h", marker_color=colors,
                           hovertemplate="%{y}: %{x:+.3g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=value.replace("_", " "), height=max(300, 18 * len(df) + 120),
                      margin=dict(l=10, r=10, t=50 if title else 20, b=10))
    return fig


# ------------------------------------------------------------------------------------- re-exports
_REEXPORT_MODULES = ("perturbode_core.plots_enrichment", "perturbode_core.plots_dashboard")


def __getattr__(name: str):
    """Forward unknown names to the enrichment and dashboard figure modules, when they exist.

    Lazy (PEP 562) so importing :mod:`plots` never fails because a sibling module is missing or
    broken, and costs nothing until such a figure is asked for.
    """
    if name.startswith("__"):
        raise AttributeError(name)
    for mod_name in _REEXPORT_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001 - a missing or broken optional module must not break plots
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module 'perturbode_core.plots' has no attribute {name!r}")


def available_extras() -> dict:
    """``{module name: [public figure functions]}`` of the re-exported modules that import cleanly."""
    out = {}
    for mod_name in _REEXPORT_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001
            continue
        out[mod_name] = [n for n in getattr(mod, "__all__", dir(mod)) if not n.startswith("_")]
    return out
