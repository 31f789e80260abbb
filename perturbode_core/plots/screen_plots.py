"""Figures of in-silico screens: the ranked perturbations with their spread over models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core.plots.style import readable_layout, sign_color


def screen_figure(table: pd.DataFrame, *, top: int = 20, title: str | None = None,
                  effect_label: str = "effect") -> go.Figure:
    """Horizontal bars of the ``top`` ranked perturbations of a screen
    (:func:`~perturbode_core.tools.insilico_screen.run_screen`), best at the top.

    Up in blue, down in vermillion (the sign colours of every page); error bars are the spread
    over models (a seed ensemble) when there is one; perturbations of the readout gene itself are
    hatched (trivial hits).
    """
    df = pd.DataFrame(table).head(int(top)).iloc[::-1]
    sd = df["effect_sd"] if "effect_sd" in df else pd.Series(np.nan, index=df.index)
    hits = df["hits_readout"] if "hits_readout" in df else [False] * len(df)
    labels = [str(p) for p in df["perturbation"]]
    fig = go.Figure(go.Bar(
        x=df["effect"], y=labels, orientation="h", marker_color=[sign_color(v) for v in df["effect"]],
        marker_pattern_shape=["/" if h else "" for h in hits],
        error_x=dict(type="data", array=sd.fillna(0).to_numpy(), visible=bool(sd.notna().any())),
        customdata=np.stack([df["rank"], sd.fillna(np.nan)], axis=1) if "rank" in df else None,
        hovertemplate="%{y}<br>" + effect_label + " %{x:+.3g}" + ("<br>rank %{customdata[0]}" if "rank" in df else "")
                      + "<extra></extra>"))
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title=effect_label, height=max(280, 24 * len(df) + 100))
    fig.update_yaxes(tickmode="array", tickvals=labels, ticktext=labels)
    return fig
