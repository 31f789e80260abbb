"""Plotly figure builders for gene modules and their enrichment (pure functions, no streamlit).

Each function takes tables or graphs from :mod:`perturbode_core.tools.modules` /
:mod:`perturbode_core.tools.enrichment` and returns a ``plotly.graph_objects.Figure``; nothing is
shown or written, so the dashboard, the report and the tests use the same figures.
"""

from __future__ import annotations

import math
from typing import Sequence

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core.tools.enrichment import empty_result_message, top_terms
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.plots.style import DIVERGING_SCALE, SIGN_COLORS, readable_layout
from perturbode_core.tools.modules import module_label

__all__ = ["enrichment_dotplot", "enrichment_heatmap", "module_network_figure", "module_activity_heatmap"]

_LAYOUTS = ("spring", "kamada_kawai", "circular", "shell")


def _short(term: str, width: int = 60) -> str:
    return term if len(term) <= width else term[: width - 1] + "…"


def _module_names(values) -> list[str]:
    return [module_label(v) if isinstance(v, (int, np.integer)) else str(v) for v in values]


def _pick(result: pd.DataFrame, n_terms: int, max_q: float | None, modules: Sequence | None) -> pd.DataFrame:
    if result is None or len(result) == 0:
        return pd.DataFrame(columns=["module", "term", "overlap", "qvalue", "neg_log10_q", "pvalue", "genes"])
    missing = {"module", "term", "overlap", "qvalue", "neg_log10_q", "pvalue"} - set(result.columns)
    if missing:
        raise PerturbODEError(f"The enrichment table lacks column(s) {', '.join(sorted(missing))}",
                              where="enrichment plot", fix="Pass the output of enrich_modules()")
    return top_terms(result, n=n_terms, max_q=max_q, modules=modules)


def _say_empty(fig: go.Figure, text: str) -> None:
    """An empty result in words, without axes (no empty grid that looks like a broken plot)."""
    import textwrap

    fig.add_annotation(text="<br>".join(textwrap.wrap(text, 90)), showarrow=False, x=0.5, y=0.5,
                       xref="paper", yref="paper", align="center")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)


def enrichment_dotplot(result: pd.DataFrame, *, n_terms: int = 3, max_q: float | None = 0.05,
                       modules: Sequence | None = None, max_dot: float = 24.0, term_width: int = 60) -> go.Figure:
    """Dot plot of the top terms per module.

    x: module, y: term, dot size: overlap (genes shared), colour: −log10 q.

    Parameters
    ----------
    result
        The output of :func:`~perturbode_core.tools.enrichment.enrich_modules` (or ``over_representation``).
    n_terms
        Top terms (smallest p) per module.
    max_q
        Only terms with q <= ``max_q`` (``None``: all).
    modules
        Restrict to these modules, in this order (default: every module with a term, by id).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Scatter`` trace (empty, with a note, when nothing passes the filter).
    """
    top = _pick(result, n_terms, max_q, modules)
    fig = go.Figure()
    if len(top) == 0:
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="terms"))
        _say_empty(fig, empty_result_message(result, max_q) or "No enriched terms pass the filter")
        fig.update_layout(title="Top enriched terms per module")
        return fig
    mod_order = list(modules) if modules is not None else sorted(top["module"].unique(), key=_sort_key)
    x = _module_names(top["module"])
    terms = [_short(t, term_width) for t in top["term"]]
    # terms in the order their modules come, so each module's terms sit together
    rank = {m: i for i, m in enumerate(mod_order)}
    term_order = list(dict.fromkeys(t for _, t in sorted(zip(top["module"].map(rank), terms), key=lambda z: z[0])))
    ov = top["overlap"].to_numpy(float)
    sizes = 6 + (max_dot - 6) * np.sqrt(ov / ov.max())
    fig.add_trace(go.Scatter(
        x=x, y=terms, mode="markers", name="terms",
        marker=dict(size=sizes, color=top["neg_log10_q"], colorscale="Viridis", showscale=True,
                    colorbar=dict(title="−log10 q"), line=dict(width=0.5, color="#333")),
        customdata=np.stack([top["term"], top["overlap"], top["qvalue"], top["genes"].astype(str).str.slice(0, 120)],
                            axis=1),
        hovertemplate="%{x}<br>%{customdata[0]}<br>overlap %{customdata[1]}, q = %{customdata[2]:.2g}"
                      "<br>%{customdata[3]}<extra></extra>",
    ))
    readable_layout(fig, title="Top enriched terms per module")
    fig.update_layout(xaxis_title="module", yaxis_title="", height=max(350, 22 * len(term_order) + 120))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=_module_names(mod_order))
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=term_order[::-1], automargin=True)
    return fig


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, np.integer)) else (1, 0, str(v))


def enrichment_heatmap(result: pd.DataFrame, *, n_terms: int = 3, max_q: float | None = 0.05,
                       modules: Sequence | None = None, value: str = "neg_log10_q", term_width: int = 60) -> go.Figure:
    """Module × term heatmap of ``value`` (default −log10 q) over the union of each module's top terms.

    Cells for (module, term) pairs not in ``result`` (not tested or zero overlap) are 0.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace: rows terms, columns modules.
    """
    check_choice("value", value, ("neg_log10_q", "odds_ratio", "overlap"))
    top = _pick(result, n_terms, max_q, modules)
    fig = go.Figure()
    if len(top) == 0:
        fig.add_trace(go.Heatmap(z=[[]], x=[], y=[]))
        _say_empty(fig, empty_result_message(result, max_q) or "No enriched terms pass the filter")
        return fig
    mods = list(modules) if modules is not None else sorted(top["module"].unique(), key=_sort_key)
    terms = list(dict.fromkeys(top.sort_values("pvalue")["term"]))
    sub = result[result["module"].isin(mods) & result["term"].isin(terms)]
    grid = sub.pivot_table(index="term", columns="module", values=value, aggfunc="max")
    grid = grid.reindex(index=terms, columns=mods).fillna(0.0)
    fig.add_trace(go.Heatmap(
        z=grid.to_numpy(), x=_module_names(mods), y=[_short(t, term_width) for t in terms],
        colorscale="Viridis", colorbar=dict(title={"neg_log10_q": "−log10 q"}.get(value, value)),
        hovertemplate="%{x}<br>%{y}<br>" + value + " = %{z:.3g}<extra></extra>",
    ))
    readable_layout(fig, title="Module × term enrichment")
    fig.update_layout(xaxis_title="module", height=max(350, 22 * len(terms) + 120))
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def module_network_figure(graph: nx.DiGraph, *, layout: str = "spring", seed: int = 0,
                          hide_isolated: bool = True, node_labels: dict | None = None) -> go.Figure:
    """The module network (from :func:`~perturbode_core.tools.modules.module_network`) as a plotly figure.

    Edges are lines in the sign colours (blue: activating, vermillion: repressing; see
    :mod:`~perturbode_core.plots.style`) with an arrowhead near the target (hover
    it for the weight and the shared genes); nodes are sized by module strength.

    Parameters
    ----------
    graph
        Module DiGraph (edge attributes ``weight``, ``sign``, ``genes``; node ``label``, ``strength``).
    layout
        networkx layout: ``spring`` (seeded, reproducible), ``kamada_kawai``, ``circular``, ``shell``.
    hide_isolated
        Drop modules with no edge.
    node_labels
        Optional ``{module: text}`` shown on hover (e.g. the module's top enriched term).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces, in order: ``activating`` edges, ``repressing`` edges, ``arrows``, ``modules``.
    """
    check_choice("layout", layout, _LAYOUTS)
    G = graph.copy()
    if hide_isolated:
        G.remove_nodes_from([n for n in list(G.nodes) if G.degree(n) == 0])
    fig = go.Figure()
    if G.number_of_nodes() == 0:
        for name in ("activating", "repressing", "arrows", "modules"):
            fig.add_trace(go.Scatter(x=[], y=[], name=name, mode="markers"))
        fig.add_annotation(text="No module edges", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    if layout == "spring":
        pos = nx.spring_layout(G, seed=seed, weight="weight")
    elif layout == "kamada_kawai":
        pos = nx.kamada_kawai_layout(G) if G.number_of_nodes() > 1 else {n: (0.0, 0.0) for n in G}
    elif layout == "circular":
        pos = nx.circular_layout(G)
    else:
        pos = nx.shell_layout(G)
    edges = {1: ([], [], []), -1: ([], [], [])}
    ax, ay, aangle, atext = [], [], [], []
    for u, v, d in G.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        sign = 1 if d.get("sign", 1) >= 0 else -1
        xs, ys, _ = edges[sign]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
        # arrowhead 80% of the way to the target, pointing along the edge (angle clockwise from up)
        ax.append(x0 + 0.8 * (x1 - x0))
        ay.append(y0 + 0.8 * (y1 - y0))
        aangle.append(math.degrees(math.atan2(x1 - x0, y1 - y0)))
        genes = d.get("genes", [])
        atext.append(f"{module_label(u)} → {module_label(v)}<br>weight {d.get('weight', 0):.3g}, "
                     f"{'activating' if sign > 0 else 'repressing'}<br>via {', '.join(genes[:8])}"
                     + (" …" if len(genes) > 8 else ""))
    for sign, name, colour in ((1, "activating", SIGN_COLORS[1]), (-1, "repressing", SIGN_COLORS[-1])):
        xs, ys, _ = edges[sign]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, hoverinfo="skip",
                                 line=dict(width=1.5, color=colour)))
    fig.add_trace(go.Scatter(x=ax, y=ay, mode="markers", name="arrows", text=atext, hoverinfo="text",
                             marker=dict(symbol="arrow", size=11, angle=aangle, color="#555"), showlegend=False))
    nodes = list(G.nodes)
    strength = np.array([G.nodes[n].get("strength", 1.0) for n in nodes], float)
    smax = strength.max() if strength.size and strength.max() > 0 else 1.0
    labels = [G.nodes[n].get("label", module_label(n)) for n in nodes]
    hover = [f"{lab}<br>strength {s:.3g}" + (f"<br>{node_labels[n]}" if node_labels and n in node_labels else "")
             for n, lab, s in zip(nodes, labels, strength)]
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text", name="modules",
        text=labels, textposition="top center", hovertext=hover, hoverinfo="text",
        marker=dict(size=12 + 18 * np.sqrt(strength / smax), color="#ffbf00", line=dict(width=1, color="#333")),
    ))
    readable_layout(fig, title="Module network (module → module through shared genes)")
    fig.update_layout(showlegend=True, xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"))
    return fig


def module_activity_heatmap(activity: pd.DataFrame, *, control: str | None = "control",
                            modules: Sequence[int] | None = None, relative: bool = True) -> go.Figure:
    """Conditions × modules heatmap of mean module activity (from ``condition_activity``).

    With ``relative`` (and a control present), shows activity minus the control's, so the colours
    say which modules each perturbation moves and in which direction.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace: rows conditions, columns modules.
    """
    H = activity.drop(columns=["n_cells"], errors="ignore")
    if modules is not None:
        H = H[list(modules)]
    title = "Module activity per condition"
    if relative and control is not None and control in H.index:
        H = H - H.loc[control]
        title += f" (minus {control})"
    z = H.to_numpy(float)
    lim = float(np.abs(z).max()) if z.size else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=_module_names(H.columns), y=[str(i) for i in H.index],
        colorscale=DIVERGING_SCALE if relative else "Viridis", zmid=0.0 if relative else None,
        zmin=-lim if relative else None, zmax=lim if relative else None,
        colorbar=dict(title="Δ activity" if relative else "activity"),
    ))
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title="module", height=max(350, 18 * len(H) + 120))
    fig.update_xaxes(type="category")
    fig.update_yaxes(automargin=True)
    return fig
