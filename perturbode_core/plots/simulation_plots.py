"""Figures of simulations: trajectories, cells moving on the embedding, per-gene effects, scenario comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from perturbode_core.plots.style import CONTROL_COLOR, palette_color, readable_layout, rgba, sign_color
from perturbode_core.tools.simulate import compare_effects


# ------------------------------------------------------------------------------------ simulation
def trajectory_figure(times, mean, sd, gene_names, genes, *, labels=("control", "perturbed"),
                      title: str = "Trajectories") -> go.Figure:
    """Mean ± 1 sd over cells of selected genes against time, one panel per gene.

    ``mean`` and ``sd`` are (T, C, p); ``labels`` names the C simulations, the first being the
    reference (the control, or the start condition's own perturbation), drawn in grey.
    """
    times = np.asarray(times)
    mean, sd = np.asarray(mean), np.asarray(sd)
    idx = {g: i for i, g in enumerate(gene_names)}
    genes = [g for g in genes if g in idx] or list(gene_names[:1])
    ncols = min(3, len(genes))
    nrows = int(np.ceil(len(genes) / ncols))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=genes, shared_xaxes=True)
    for gi, gene in enumerate(genes):
        r, c = gi // ncols + 1, gi % ncols + 1
        j = idx[gene]
        for ci, lab in enumerate(labels):
            color = CONTROL_COLOR if ci == 0 else palette_color(ci - 1)  # the first is the reference
            m, s = mean[:, ci, j], sd[:, ci, j]
            fig.add_trace(go.Scatter(x=np.concatenate([times, times[::-1]]), y=np.concatenate([m + s, (m - s)[::-1]]),
                                     fill="toself", fillcolor=rgba(color, 0.2), line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, legendgroup=lab), row=r, col=c)
            fig.add_trace(go.Scatter(x=times, y=m, mode="lines", name=lab, line=dict(color=color),
                                     legendgroup=lab, showlegend=gi == 0,
                                     hovertemplate=f"{lab} {gene}: %{{y:.3f}} at t=%{{x:.2f}}<extra></extra>"),
                          row=r, col=c)
    readable_layout(fig, title=title)
    fig.update_layout(height=260 * nrows + 60)
    fig.update_xaxes(title_text="time", row=nrows)
    return fig


def moving_cells_figure(background, background_labels, sim_coords, times, *, control: str | None = None,
                        measured: str | None = None, sim_label: str = "simulated",
                        axis_names=("PC1", "PC2"), title: str = "Cells moving on the embedding") -> go.Figure:
    """Simulated cells moving on the embedding of the measured data (a play button and slider).

    Parameters
    ----------
    background, background_labels
        Measured cells' coordinates (n, 2) and conditions; drawn in light grey, the control and the
        ``measured`` population (the condition simulated, when it was measured) highlighted.
    sim_coords
        (T, n_sim, 2) coordinates of the simulated cells at each time.
    times
        (T,) times.
    """
    bg = np.asarray(background)
    lab = np.asarray(background_labels).astype(str)
    sim = np.asarray(sim_coords)
    static = []
    other = np.ones(len(bg), bool)
    if control is not None:
        other &= lab != control
    if measured is not None:
        other &= lab != measured
    static.append(go.Scattergl(x=bg[other, 0], y=bg[other, 1], mode="markers", name="other measured cells",
                               marker=dict(size=3, color="#e0e0e0"), hoverinfo="skip"))
    if control is not None and (lab == control).any():
        m = lab == control
        static.append(go.Scattergl(x=bg[m, 0], y=bg[m, 1], mode="markers", name=f"measured {control}",
                                   marker=dict(size=4, color=CONTROL_COLOR, opacity=0.6), hoverinfo="skip"))
    if measured is not None and (lab == measured).any():
        m = lab == measured
        static.append(go.Scattergl(x=bg[m, 0], y=bg[m, 1], mode="markers", name=f"measured {measured}",
                                   marker=dict(size=5, color=palette_color(2), opacity=0.6), hoverinfo="skip"))
    mean_path = sim.mean(1)
    static.append(go.Scatter(x=mean_path[:, 0], y=mean_path[:, 1], mode="lines", name="mean path",
                             line=dict(color="black", dash="dot")))

    def moving(t):
        return go.Scatter(x=sim[t, :, 0], y=sim[t, :, 1], mode="markers", name=sim_label,
                          marker=dict(size=6, color=palette_color(0), line=dict(width=0.5, color="white")))

    last = len(sim) - 1
    fig = go.Figure(data=static + [moving(last)])
    k = len(static)
    fig.frames = [go.Frame(data=[moving(t)], traces=[k], name=f"{times[t]:.2f}") for t in range(len(sim))]
    allx = np.concatenate([bg[:, 0], sim[..., 0].ravel()])
    ally = np.concatenate([bg[:, 1], sim[..., 1].ravel()])
    pad = lambda v: [float(v.min() - 0.05 * np.ptp(v)), float(v.max() + 0.05 * np.ptp(v))]  # noqa: E731
    readable_layout(fig, title=title)
    fig.update_layout(
        height=520, xaxis=dict(title=axis_names[0], range=pad(allx)),
        yaxis=dict(title=axis_names[1], range=pad(ally)),
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.08, xanchor="left", buttons=[
            dict(label="▶ play", method="animate",
                 args=[None, dict(frame=dict(duration=150, redraw=False), fromcurrent=False, transition=dict(duration=0))]),
            dict(label="❚❚", method="animate", args=[[None], dict(mode="immediate", frame=dict(duration=0))])])],
        sliders=[dict(active=last, x=0.12, len=0.88, y=-0.02, currentvalue=dict(prefix="t = "),
                      steps=[dict(label=f"{times[t]:.1f}", method="animate",
                                  args=[[f"{times[t]:.2f}"], dict(mode="immediate", frame=dict(duration=0, redraw=False))])
                             for t in range(len(sim))])])
    return fig


def effect_figure(effects: pd.DataFrame, *, top: int = 20, value: str = "z_change",
                  title: str | None = "Largest effects") -> go.Figure:
    """Horizontal bars of the ``top`` genes with the largest ``|value|`` of an effect table
    (:func:`~perturbode_core.tools.simulate.effect_table`); up in blue, down in vermillion (the
    sign colours of every page), the perturbation's own targets hatched, full gene names."""
    df = pd.DataFrame(effects)
    df = df.reindex(df[value].abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    targeted = df["targeted"] if "targeted" in df else [False] * len(df)
    fig = go.Figure(go.Bar(x=df[value], y=df["gene"].astype(str), orientation="h",
                           marker_color=[sign_color(v) for v in df[value]],
                           marker_pattern_shape=["/" if t else "" for t in targeted],
                           hovertemplate="%{y}: %{x:+.3g}<extra></extra>"))
    readable_layout(fig, title=title)
    fig.update_layout(xaxis_title=value.replace("_", " "), height=max(260, 22 * len(df) + 80))
    fig.update_yaxes(tickmode="array", tickvals=list(df["gene"].astype(str)), ticktext=list(df["gene"].astype(str)))
    return fig


def comparison_figure(tables: dict[str, pd.DataFrame], *, value: str = "z_change", top: int = 20,
                      title: str = "Scenario comparison") -> go.Figure:
    """Scatter of scenario A's effects against B's (two scenarios), or grouped bars (more)."""
    wide = compare_effects(tables, value=value)
    names = list(tables)
    if len(names) == 2:
        a, b = names
        lim = float(np.nanmax(np.abs(wide[[a, b]].to_numpy()))) * 1.1 or 1.0
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(color="#bbb", dash="dash"),
                                 hoverinfo="skip", showlegend=False))
        topmask = np.arange(len(wide)) < min(top, 10)
        fig.add_trace(go.Scatter(x=wide[a], y=wide[b], mode="markers+text", text=np.where(topmask, wide["gene"], ""),
                                 textposition="top center", marker=dict(size=7, color=palette_color(0)),
                                 customdata=wide["gene"], showlegend=False,
                                 hovertemplate="%{customdata}: %{x:.3f} vs %{y:.3f}<extra></extra>"))
        readable_layout(fig, title=title)
        fig.update_layout(xaxis_title=f"{a} ({value})", yaxis_title=f"{b} ({value})", height=520)
        return fig
    df = wide.head(top)
    fig = go.Figure([go.Bar(name=n, x=df["gene"], y=df[n], marker_color=palette_color(i)) for i, n in enumerate(names)])
    readable_layout(fig, title=title)
    fig.update_layout(barmode="group", yaxis_title=value, height=420)
    return fig
