"""Figures of metrics: the model beside its baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core.plots.style import BASELINE_GREYS, MODEL_COLOR, readable_layout


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
        The method drawn in :data:`~perturbode_core.plots.style.MODEL_COLOR`; baselines in greys.
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
    fig = go.Figure()
    others = 0
    for _, row in df.iterrows():
        method = str(row[method_col])
        is_model = method == model_name
        color = MODEL_COLOR if is_model else BASELINE_GREYS[others % len(BASELINE_GREYS)]
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
    readable_layout(fig, title=title)
    fig.update_layout(barmode="group", height=420, yaxis_title="value",
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig
