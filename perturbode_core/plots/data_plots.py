"""Figures of the data: cells on an embedding, cells per condition, knockout efficiency, on-target levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core.data.knockout_level import knocked_down_level
from perturbode_core.plots.style import CONTROL_COLOR, OTHER_COLOR, palette_color, readable_layout


def embedding_figure(coords, labels, *, control: str | None = None, title: str = "",
                     axis_names=("PC1", "PC2"), max_legend: int = 30) -> go.Figure:
    """Cells on a 2-D embedding, coloured by condition (control in grey, drawn first).

    With more than ``max_legend`` conditions the rarest ones are grouped as "other".
    """
    coords = np.asarray(coords)
    labels = np.asarray(labels).astype(str)
    counts = pd.Series(labels).value_counts()
    keep = [c for c in counts.index if c != control][:max_legend]
    shown = np.where(np.isin(labels, keep) | (labels == control), labels, "other")
    order = ([control] if control in set(shown) else []) + keep + (["other"] if "other" in set(shown) else [])
    fig = go.Figure()
    for i, cond in enumerate(order):
        m = shown == cond
        color = CONTROL_COLOR if cond == control else (OTHER_COLOR if cond == "other" else palette_color(i))
        fig.add_trace(go.Scattergl(x=coords[m, 0], y=coords[m, 1], mode="markers", name=f"{cond} ({m.sum()})",
                                   marker=dict(size=4, color=color, opacity=0.7),
                                   hovertemplate=f"{cond}<extra></extra>"))
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title=axis_names[0], yaxis_title=axis_names[1], height=520,
                      legend=dict(itemsizing="constant"))
    return fig


def cells_per_condition_figure(per_condition: pd.DataFrame, *, control: str | None = None,
                               max_bars: int = 60) -> go.Figure:
    """Bar chart of cells per condition (``data.describe(...)["per_condition"]``)."""
    df = per_condition.sort_values("cells", ascending=False).head(max_bars)
    colors = [CONTROL_COLOR if c == control else palette_color(0) for c in df["condition"]]
    fig = go.Figure(go.Bar(x=df["condition"].astype(str), y=df["cells"], marker_color=colors,
                           hovertemplate="%{x}: %{y} cells<extra></extra>"))
    readable_layout(fig, title="Cells per condition" + (f" (largest {max_bars})" if len(per_condition) > max_bars else ""))
    fig.update_layout(yaxis_title="cells", height=320)
    return fig


def knockout_efficiency_figure(table: pd.DataFrame) -> go.Figure:
    """Stacked bars of perturbed and escaping cells per knockout (the ``escape`` table of
    :class:`~perturbode_core.data.dataset.PerturbationData`); conditions that could not be
    classified are listed in the title's note instead of drawn as empty bars."""
    classified = table[table["status"] == "classified"].sort_values("efficiency", ascending=False)
    fig = go.Figure()
    for column, name, color in (("perturbed", "perturbed", palette_color(0)), ("escaping", "escaping", CONTROL_COLOR)):
        fig.add_trace(go.Bar(x=classified["condition"].astype(str), y=classified[column], name=name,
                             marker_color=color,
                             customdata=np.c_[classified["efficiency"].to_numpy(float)],
                             hovertemplate="%{x}: %{y} " + name + " cells (efficiency %{customdata[0]:.0%})<extra></extra>"))
    others = table[table["status"] != "classified"]
    note = f"; {len(others)} not classified (no detectable signature or not a knockout)" if len(others) else ""
    fig.update_layout(barmode="stack", title=f"Knockout efficiency: perturbed vs escaping cells{note}",
                      yaxis_title="cells", height=340, margin=dict(l=10, r=10, t=40, b=10))
    if classified.empty:
        fig.add_annotation(text="No knockout showed a detectable signature to classify its cells by",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def target_level_figure(table: pd.DataFrame, *, rule=None, knockout_level: float = 0.0,
                        max_labels: int = 25) -> go.Figure:
    """Each knockout's and knock-down's target: its level in the perturbed cells against its control
    level (:func:`~perturbode_core.data.knockout_level.own_level_table`), one colour per type, named
    when there are at most ``max_labels``; the diagonal (nothing removed) and the model's readings:
    ``knockout_level`` (above 0: the share a knockout leaves) and ``rule`` ``(slope, intercept)``,
    the line an undosed knock-down follows."""
    fig = go.Figure()
    mode = "markers+text" if len(table) <= max_labels else "markers"
    for i, (kind, part) in enumerate(table.groupby("type", sort=True)):
        fig.add_trace(go.Scatter(x=part["control_level"], y=part["level"], mode=mode, name=kind,
                                 textposition="top center", textfont=dict(size=11),
                                 marker=dict(size=9, color=palette_color(i)), text=part["condition"].astype(str),
                                 customdata=np.c_[part["left"].to_numpy(float)],
                                 hovertemplate="%{text}: %{y:.2f} of %{x:.2f} (%{customdata[0]:.0%} left)<extra></extra>"))
    top = float(max(table["control_level"].max(), table["level"].max(), 1e-9)) if len(table) else 1.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="nothing removed",
                             line=dict(color=CONTROL_COLOR, dash="dot"), hoverinfo="skip"))
    if knockout_level > 0:
        fig.add_trace(go.Scatter(x=[0, top], y=[0, knockout_level * top], mode="lines",
                                 name=f"the model's knockout ({100 * knockout_level:.0f} % left)",
                                 line=dict(color=palette_color(1)), hoverinfo="skip"))
    if rule is not None:
        xs = np.linspace(0, top, 50)
        ys = knocked_down_level(rule, xs)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="the model's undosed knock-down",
                                 line=dict(color=palette_color(2)), hoverinfo="skip"))
    readable_layout(fig, title="On-target levels: what each knockout and knock-down left of its target")
    fig.update_layout(xaxis_title="control level", yaxis_title="level in the perturbed cells", height=380)
    return fig
