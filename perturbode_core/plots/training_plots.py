"""Figures of training: loss curves."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from perturbode_core.plots.style import palette_color, readable_layout


def loss_figure(history, *, best_epoch: int | None = None, log_y: bool | None = None,
                title: str | None = "Loss") -> go.Figure:
    """Training and validation loss against epochs (a dashed line at the best epoch when given).

    Parameters
    ----------
    history
        A DataFrame or list of dicts with ``epoch``, ``train_loss`` and optionally ``val_loss``:
        one record per epoch (:attr:`FitResult.history`) or per step (a running job; the
        validation loss, known once per epoch, is then drawn at its distinct values only).
    best_epoch
        Marked with a dashed vertical line.
    log_y
        Logarithmic loss axis; default: when every loss is positive.
    """
    h = pd.DataFrame(history)
    fig = go.Figure()
    if h.empty or "epoch" not in h:
        fig.add_annotation(text="No training history yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        values = pd.Series(dtype=float)
    else:
        per_step = h["epoch"].duplicated().any() or (h["epoch"] % 1 != 0).any()
        for i, (col, name) in enumerate((("train_loss", "training loss"), ("val_loss", "validation loss"))):
            if col not in h or not h[col].notna().any():
                continue
            d = h.dropna(subset=[col])
            if col == "val_loss" and per_step:
                d = d.drop_duplicates(subset=[col])
            fig.add_trace(go.Scatter(x=d["epoch"], y=d[col], mode="lines" if per_step and col == "train_loss"
                                     else "lines+markers", name=name, line=dict(color=palette_color(i)), marker=dict(size=4)))
        if best_epoch is not None and best_epoch >= 0:
            fig.add_vline(x=best_epoch, line_dash="dash", line_color="#555555",
                          annotation_text=f"best epoch {best_epoch}", annotation_position="top right")
        values = pd.concat([h[c] for c in ("train_loss", "val_loss") if c in h], ignore_index=True).dropna()
    if log_y is None:
        log_y = bool(len(values)) and bool((values > 0).all())
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title="epoch", yaxis_title="loss", height=380, yaxis_type="log" if log_y else "linear",
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig
