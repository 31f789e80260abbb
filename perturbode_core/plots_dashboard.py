"""Figure builders of the dashboard's Data, Train and Simulate pages (pure; no streamlit).

Every function takes arrays / DataFrames and returns a ``plotly.graph_objects.Figure``, so the
figures are tested without a browser and reused by the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2
CONTROL_COLOR = "#9e9e9e"


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ------------------------------------------------------------------------------------ embeddings
def pca_fit(X, *, n_components: int = 2, max_cells: int = 20000, seed: int = 0) -> dict:
    """A PCA of cells (centred, not scaled), fitted on at most ``max_cells`` cells.

    Returns ``{"mean", "components" (k, p), "explained" (k,)}``; project with :func:`pca_project`.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) > max_cells:
        X = X[np.random.default_rng(seed).choice(len(X), max_cells, replace=False)]
    mean = X.mean(0)
    k = int(min(n_components, X.shape[1], max(len(X) - 1, 1)))
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s ** 2
    # fix the sign of each axis (largest loading positive) so plots do not flip between runs
    signs = np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(1)])
    signs[signs == 0] = 1
    comps = vt[:k] * signs[:, None]
    if k < n_components:  # one-gene data: pad with a zero axis
        comps = np.vstack([comps, np.zeros((n_components - k, X.shape[1]))])
        var = np.concatenate([var, np.zeros(n_components)])
    return {"mean": mean, "components": comps, "explained": var[:n_components] / max(var.sum(), 1e-12)}


def pca_project(X, fit: dict) -> np.ndarray:
    """Coordinates of cells ``X`` (..., p) on a :func:`pca_fit` (..., k)."""
    return (np.asarray(X, dtype=np.float64) - fit["mean"]) @ fit["components"].T


def subsample(n: int, max_n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_n`` of ``n`` items (seeded)."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_n, replace=False))


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
        color = CONTROL_COLOR if cond == control else ("#d0d0d0" if cond == "other" else _color(i))
        fig.add_trace(go.Scattergl(x=coords[m, 0], y=coords[m, 1], mode="markers", name=f"{cond} ({m.sum()})",
                                   marker=dict(size=4, color=color, opacity=0.7),
                                   hovertemplate=f"{cond}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=axis_names[0], yaxis_title=axis_names[1], height=520,
                      legend=dict(itemsizing="constant"), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def cells_per_condition_figure(per_condition: pd.DataFrame, *, control: str | None = None,
                               max_bars: int = 60) -> go.Figure:
    """Bar chart of cells per condition (``data.describe(...)["per_condition"]``)."""
    df = per_condition.sort_values("cells", ascending=False).head(max_bars)
    colors = [CONTROL_COLOR if c == control else _color(0) for c in df["condition"]]
    fig = go.Figure(go.Bar(x=df["condition"].astype(str), y=df["cells"], marker_color=colors,
                           hovertemplate="%{x}: %{y} cells<extra></extra>"))
    fig.update_layout(title="Cells per condition" + (f" (largest {max_bars})" if len(per_condition) > max_bars else ""),
                      yaxis_title="cells", height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


# ------------------------------------------------------------------------------------ training
def loss_figure(history, *, title: str = "Loss") -> go.Figure:
    """Training (and validation) loss against epochs.

    ``history``: a DataFrame or list of dicts with ``epoch``, ``train_loss`` and optional
    ``val_loss`` (per step or per epoch; missing values are skipped).
    """
    df = pd.DataFrame(history)
    fig = go.Figure()
    if len(df) and "train_loss" in df:
        d = df.dropna(subset=["train_loss"])
        fig.add_trace(go.Scatter(x=d["epoch"], y=d["train_loss"], mode="lines", name="training loss",
                                 line=dict(color=_color(0))))
    if len(df) and "val_loss" in df and df["val_loss"].notna().any():
        d = df.dropna(subset=["val_loss"]).drop_duplicates(subset=["val_loss"])
        fig.add_trace(go.Scatter(x=d["epoch"], y=d["val_loss"], mode="lines+markers", name="validation loss",
                                 line=dict(color=_color(1))))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="OT loss", height=320,
                      margin=dict(l=10, r=10, t=40, b=10), yaxis_type="log" if _positive(df) else "linear")
    return fig


def _positive(df: pd.DataFrame) -> bool:
    vals = pd.concat([df[c] for c in ("train_loss", "val_loss") if c in df], ignore_index=True).dropna() \
        if len(df) else pd.Series(dtype=float)
    return bool(len(vals)) and bool((vals > 0).all())


# ------------------------------------------------------------------------------------ simulation
def trajectory_figure(times, mean, sd, gene_names, genes, *, labels=("control", "perturbed"),
                      title: str = "Trajectories") -> go.Figure:
    """Mean ± 1 sd over cells of selected genes against time, one panel per gene.

    ``mean`` and ``sd`` are (T, C, p); ``labels`` names the C simulations.
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
            color = CONTROL_COLOR if lab == "control" else _color(ci)
            m, s = mean[:, ci, j], sd[:, ci, j]
            fig.add_trace(go.Scatter(x=np.concatenate([times, times[::-1]]), y=np.concatenate([m + s, (m - s)[::-1]]),
                                     fill="toself", fillcolor=_rgba(color, 0.2), line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, legendgroup=lab), row=r, col=c)
            fig.add_trace(go.Scatter(x=times, y=m, mode="lines", name=lab, line=dict(color=color),
                                     legendgroup=lab, showlegend=gi == 0,
                                     hovertemplate=f"{lab} {gene}: %{{y:.3f}} at t=%{{x:.2f}}<extra></extra>"),
                          row=r, col=c)
    fig.update_layout(title=title, height=260 * nrows + 60, margin=dict(l=10, r=10, t=60, b=10))
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
                                   marker=dict(size=5, color=_color(2), opacity=0.6), hoverinfo="skip"))
    mean_path = sim.mean(1)
    static.append(go.Scatter(x=mean_path[:, 0], y=mean_path[:, 1], mode="lines", name="mean path",
                             line=dict(color="black", dash="dot")))

    def moving(t):
        return go.Scatter(x=sim[t, :, 0], y=sim[t, :, 1], mode="markers", name=sim_label,
                          marker=dict(size=6, color=_color(0), line=dict(width=0.5, color="white")))

    last = len(sim) - 1
    fig = go.Figure(data=static + [moving(last)])
    k = len(static)
    fig.frames = [go.Frame(data=[moving(t)], traces=[k], name=f"{times[t]:.2f}") for t in range(len(sim))]
    allx = np.concatenate([bg[:, 0], sim[..., 0].ravel()])
    ally = np.concatenate([bg[:, 1], sim[..., 1].ravel()])
    pad = lambda v: [float(v.min() - 0.05 * np.ptp(v)), float(v.max() + 0.05 * np.ptp(v))]  # noqa: E731
    fig.update_layout(
        title=title, height=520, xaxis=dict(title=axis_names[0], range=pad(allx)),
        yaxis=dict(title=axis_names[1], range=pad(ally)), margin=dict(l=10, r=10, t=40, b=10),
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
                  title: str = "Largest effects") -> go.Figure:
    """Horizontal bars of the ``top`` genes of an effect table (targets hatched)."""
    df = effects.head(top).iloc[::-1]
    colors = ["#c62828" if v < 0 else "#1565c0" for v in df[value]]
    fig = go.Figure(go.Bar(x=df[value], y=df["gene"].astype(str), orientation="h", marker_color=colors,
                           marker_pattern_shape=["/" if t else "" for t in df.get("targeted", [False] * len(df))],
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=value.replace("_", " "), height=max(260, 22 * len(df) + 80),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def compare_effects(tables: dict[str, pd.DataFrame], *, value: str = "z_change") -> pd.DataFrame:
    """Effects of several scenarios side by side: one row per gene, one column per scenario.

    Rows are sorted by the largest absolute effect in any scenario.
    """
    cols = {name: t.set_index("gene")[value] for name, t in tables.items()}
    wide = pd.DataFrame(cols)
    wide = wide.loc[wide.abs().max(axis=1).sort_values(ascending=False).index]
    wide.index.name = "gene"
    return wide.reset_index()


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
                                 textposition="top center", marker=dict(size=7, color=_color(0)),
                                 customdata=wide["gene"], showlegend=False,
                                 hovertemplate="%{customdata}: %{x:.3f} vs %{y:.3f}<extra></extra>"))
        fig.update_layout(title=title, xaxis_title=f"{a} ({value})", yaxis_title=f"{b} ({value})", height=520,
                          margin=dict(l=10, r=10, t=40, b=10))
        return fig
    df = wide.head(top)
    fig = go.Figure([go.Bar(name=n, x=df["gene"], y=df[n], marker_color=_color(i)) for i, n in enumerate(names)])
    fig.update_layout(barmode="group", title=title, yaxis_title=value, height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig
