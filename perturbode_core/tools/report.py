"""A self-contained HTML report for collaborators, and figure export (PNG / SVG / PDF / HTML).

:func:`build_report` writes one HTML file that opens in any browser without the app and without a
network: plotly.js is inlined once (in the first figure), every later figure reuses it, and no
script or stylesheet is fetched from a CDN. Sections appear only for what is given: dataset
summary, training settings and loss curves, the network figure and top-edge table, modules and
enrichment, chosen simulations (effect tables), metrics with their baselines, package versions
and the seed.

:func:`figure_bytes` exports one figure as an image with kaleido (1.x drives a Chrome: we point it
at the system Chromium and never download one); where kaleido or a browser is missing it falls
back to a standalone HTML file, so a download button always has something to give.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import shutil
from pathlib import Path

import pandas as pd

from perturbode_core.io.files import write_text_atomic
from perturbode_core.errors import PerturbODEError, check_choice

__all__ = ["build_report", "figure_bytes", "browser_path", "IMAGE_FORMATS"]

IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
_HTML_MIME = "text/html"
# where Debian / Ubuntu / Fedora put a Chromium or Chrome; BROWSER_PATH (choreographer's own
# variable) wins when set
_BROWSER_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_BROWSER_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


# ------------------------------------------------------------------------------------------- export
def browser_path() -> str | None:
    """The Chrome/Chromium kaleido will use: ``$BROWSER_PATH``, then PATH, then usual places; None if absent."""
    env = os.environ.get("BROWSER_PATH")
    if env and os.access(env, os.X_OK):
        return env
    for name in _BROWSER_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    for p in _BROWSER_PATHS:
        if os.access(p, os.X_OK):
            return p
    return None


def _standalone_html(fig) -> bytes:
    return fig.to_html(full_html=True, include_plotlyjs=True, config={"displaylogo": False}).encode("utf-8")


def figure_bytes(fig, fmt: str = "png", *, width: int | None = None, height: int | None = None,
                 scale: float = 2.0, timeout: float = 60.0) -> tuple[bytes, str, str]:
    """Export a plotly figure.

    Parameters
    ----------
    fig
        A ``plotly.graph_objects.Figure``.
    fmt
        ``png``, ``svg``, ``pdf`` or ``html``.
    width, height
        Pixel size (default: the figure's own, else 1000 x its height or 600).
    scale
        Resolution factor for PNG.
    timeout
        Seconds kaleido may take before we give up and fall back to HTML.

    Returns
    -------
    (bytes, mime type, file extension)
        The extension is ``html`` (and the bytes a standalone, offline HTML page) when the image
        could not be made: kaleido not installed, no Chrome/Chromium found, or the export failed.
    """
    check_choice("figure format", fmt, (*IMAGE_FORMATS, "html"))
    if fmt == "html":
        return _standalone_html(fig), _HTML_MIME, "html"
    browser = browser_path()
    if browser is None:
        return _standalone_html(fig), _HTML_MIME, "html"
    try:
        import kaleido
    except Exception:  # noqa: BLE001 - kaleido is optional: fall back
        return _standalone_html(fig), _HTML_MIME, "html"
    # choreographer (kaleido's browser driver) reads BROWSER_PATH; set it only if unset so a
    # user's choice stands
    os.environ.setdefault("BROWSER_PATH", browser)
    layout = fig.layout
    opts = dict(format=fmt, width=int(width or layout.width or 1000), height=int(height or layout.height or 600),
                scale=float(scale))
    try:
        # mathjax=False: its default is a CDN URL, which an offline machine would wait on
        data = kaleido.calc_fig_sync(fig.to_dict(), opts=opts, kopts=dict(mathjax=False, timeout=timeout))
    except Exception:  # noqa: BLE001 - any browser/driver failure: give the user HTML instead
        return _standalone_html(fig), _HTML_MIME, "html"
    if isinstance(data, str):
        data = data.encode("utf-8")
    return bytes(data), IMAGE_FORMATS[fmt], fmt


# ------------------------------------------------------------------------------------------- report
_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1150px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.8em;margin-bottom:0}h2{border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:2em}
h3{margin-top:1.4em}.meta{color:#666;font-size:.9em}
table.tbl{border-collapse:collapse;font-size:.85em;margin:8px 0 16px}
table.tbl th,table.tbl td{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.tbl th{background:#f3f6f9}table.tbl td:first-child,table.tbl th:first-child{text-align:left}
.kv td:first-child{font-weight:600}.note{background:#f8f8f0;border-left:4px solid #E69F00;padding:6px 12px}
nav a{margin-right:12px}.fig{margin:8px 0 20px}.cols{display:flex;gap:40px;flex-wrap:wrap}
"""


class _Doc:
    """Accumulates HTML parts; inlines plotly.js with the first figure only."""

    def __init__(self):
        self.parts: list[str] = []
        self.toc: list[tuple[str, str]] = []
        self._js_done = False
        self._n_fig = 0

    def section(self, anchor: str, title: str):
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def h3(self, text: str):
        self.parts.append(f"<h3>{html.escape(str(text))}</h3>")

    def p(self, text: str, cls: str | None = None):
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(str(text))}</p>")

    def figure(self, fig, div_id: str | None = None):
        if fig is None:
            return
        self._n_fig += 1
        div_id = div_id or f"figure-{self._n_fig}"
        # include_plotlyjs=True inlines the whole library (no CDN) once; later figures find it
        # on the page
        body = fig.to_html(full_html=False, include_plotlyjs=not self._js_done, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})
        self._js_done = True
        self.parts.append(f'<div class="fig" data-figure="{html.escape(div_id)}">{body}</div>')

    def table(self, df: pd.DataFrame, *, max_rows: int = 50, index: bool = False):
        if df is None:
            return
        df = pd.DataFrame(df)
        note = ""
        if len(df) > max_rows:
            note = f'<p class="meta">First {max_rows} of {len(df)} rows.</p>'
            df = df.head(max_rows)
        # to_html escapes cell text, so gene names or uploaded labels cannot inject markup
        self.parts.append(df.to_html(index=index, classes="tbl", border=0, na_rep="",
                                     float_format=lambda v: f"{v:.4g}") + note)

    def kv(self, mapping: dict):
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in mapping.items())
        self.parts.append(f'<table class="tbl kv">{rows}</table>')


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(map(_fmt, v))
    return "" if v is None else str(v)


def _as_dict(cfg) -> dict | None:
    if cfg is None:
        return None
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return dict(cfg)


def build_report(path=None, *, title: str = "PerturbODE report", data=None, dataset_summary: dict | None = None,
                 model=None, model_config=None, train_config=None, history=None, best_epoch: int | None = None,
                 edges: pd.DataFrame | None = None, top_k: int = 50, truth=None, network_figure=None,
                 modules: pd.DataFrame | None = None, enrichment: pd.DataFrame | None = None,
                 module_figures=None, simulations: dict | None = None, metrics=None, metric_figures=None,
                 figures: dict | None = None, seed: int | None = None, versions: dict | None = None,
                 notes: str | None = None) -> str:
    """Build a self-contained HTML report; write it atomically to ``path`` when given.

    Every argument is optional; a section appears when its content is given (or can be derived:
    with ``model`` and no ``edges``, the top-``top_k`` edges and the network figure are computed;
    with ``data`` and no ``dataset_summary``, :func:`perturbode_core.data.dataset.describe` is used).

    Parameters
    ----------
    path
        Output file (``.html``), written via a temporary file and rename. None: only return the text.
    data, dataset_summary
        A :class:`~perturbode_core.data.dataset.PerturbationData` and/or its ``describe`` dict.
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE` (network, G heatmap, model settings).
    model_config, train_config
        Settings (dataclasses with ``to_dict`` or dicts).
    history, best_epoch
        Training history (``epoch, train_loss, val_loss``) and the kept epoch.
    edges, top_k, truth, network_figure
        The network's edge table (top ``top_k`` shown), known edges for the overlay, or a ready figure.
    modules, enrichment, module_figures
        Module summary table, enrichment table, and extra module/enrichment figures (list).
    simulations
        ``{label: effect table}`` from :func:`perturbode_core.tools.simulate.effect_table`.
    metrics
        A DataFrame (one row per method, column ``method``) or ``{section title: DataFrame}``;
        bar charts put the model beside the baselines.
    metric_figures
        Extra metric figures (list).
    figures
        ``{title: figure}`` appended in an "Other figures" section.
    seed, versions, notes
        Seed used for training; package versions (default
        :func:`perturbode_core.io.checkpoint.package_versions`); free text shown at the top.

    Returns
    -------
    str
        The HTML text.
    """
    from perturbode_core import plots

    doc = _Doc()
    if notes:
        doc.parts.append(f'<p class="note">{html.escape(notes)}</p>')

    # --- dataset
    if dataset_summary is None and data is not None:
        from perturbode_core.data.dataset import describe

        dataset_summary = describe(data)
    if dataset_summary:
        doc.section("dataset", "Dataset")
        summary = {k: v for k, v in dataset_summary.items() if not isinstance(v, pd.DataFrame)}
        doc.kv(summary)
        per = dataset_summary.get("per_condition")
        if isinstance(per, pd.DataFrame):
            doc.h3("Cells per condition")
            doc.table(per, max_rows=60)

    # --- training
    mc = _as_dict(model_config) or (model.config.to_dict() if model is not None and hasattr(model, "config") else None)
    tc = _as_dict(train_config)
    if seed is None and tc and "seed" in tc:
        seed = tc["seed"]
    hist = None if history is None else pd.DataFrame(history)
    if mc or tc or (hist is not None and not hist.empty):
        doc.section("training", "Training")
        # the two settings tables side by side: they are long and narrow
        doc.parts.append('<div class="cols">')
        for name, cfg in (("Training settings", tc), ("Model settings", mc)):
            if cfg:
                doc.parts.append("<div>")
                doc.h3(name)
                doc.kv(cfg)
                doc.parts.append("</div>")
        doc.parts.append("</div>")
        if hist is not None and not hist.empty:
            doc.figure(plots.loss_figure(hist, best_epoch=best_epoch, title="Loss by epoch"), "loss-figure")
            if best_epoch is not None:
                doc.p(f"Kept the model of epoch {best_epoch} (lowest validation loss when a validation set was used).",
                      cls="meta")

    # --- network
    G = None
    if model is not None:
        from perturbode_core.tools.grn import grn_matrix

        G = grn_matrix(model)
        if edges is None:
            from perturbode_core.tools.grn import edge_table

            edges = edge_table(G, model.gene_names, top_k=top_k)
    if edges is not None or network_figure is not None:
        doc.section("network", "Gene regulatory network")
        if network_figure is None and edges is not None and len(edges):
            shown = pd.DataFrame(edges).head(top_k)
            network_figure = plots.network_figure(shown, truth=truth,
                                                  title=f"Top {len(shown)} edges" + (" vs. the known network" if truth is not None else ""))
        doc.p("Edges point from regulator to target; blue activates, orange represses, wider is stronger. "
              "Hover an arrow for the weight.", cls="meta")
        doc.figure(network_figure, "network-figure")
        if edges is not None:
            doc.h3("Strongest edges")
            doc.table(pd.DataFrame(edges), max_rows=top_k)
        if G is not None:
            doc.figure(plots.g_heatmap(G, model.gene_names), "g-heatmap")

    # --- modules and enrichment
    if modules is not None or enrichment is not None or module_figures:
        doc.section("modules", "Modules and enrichment")
        if modules is not None:
            doc.h3("Modules")
            doc.table(modules, max_rows=60)
        for i, f in enumerate(module_figures or []):
            doc.figure(f, f"module-figure-{i}")
        if enrichment is not None:
            doc.h3("Enrichment")
            doc.table(enrichment, max_rows=60)

    # --- simulations
    if simulations:
        doc.section("simulations", "Simulations")
        for i, (label, table) in enumerate(simulations.items()):
            doc.h3(label)
            t = pd.DataFrame(table)
            if "gene" in t and "z_change" in t:
                doc.figure(plots.effect_figure(t, top=20, title=f"Largest effects of {label}"), f"simulation-{i}")
            doc.table(t, max_rows=25)

    # --- metrics
    if metrics is not None or metric_figures:
        doc.section("metrics", "Accuracy, with baselines")
        groups = metrics if isinstance(metrics, dict) else ({"Metrics": metrics} if metrics is not None else {})
        for i, (name, table) in enumerate(groups.items()):
            t = pd.DataFrame(table)
            doc.h3(name)
            numeric = [c for c in t.columns if c != "method" and pd.api.types.is_numeric_dtype(t[c])
                       and not c.startswith("n_")]
            if "method" in t and numeric:
                doc.figure(plots.metric_bar_figure(t, metrics=numeric[:8]), f"metrics-figure-{i}")
            doc.table(t, max_rows=40)
        for i, f in enumerate(metric_figures or []):
            doc.figure(f, f"metric-extra-{i}")

    # --- other figures
    if figures:
        doc.section("figures", "Other figures")
        for i, (name, f) in enumerate(figures.items()):
            doc.h3(name)
            doc.figure(f, f"extra-{i}")

    # --- reproducibility
    if versions is None:
        from perturbode_core.io.checkpoint import package_versions

        versions = package_versions()
    doc.section("reproducibility", "Reproducibility")
    doc.kv({"seed": "not recorded" if seed is None else seed, **versions})

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    toc = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in doc.toc)
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"PerturbODE\"><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">Made with PerturbODE on {stamp}. "
        "This file is self-contained: it opens offline in any browser.</p>"
        f"<nav>{toc}</nav>" + "\n".join(doc.parts) + "</body></html>\n"
    )
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise PerturbODEError(f"{path} is a folder", where="report path", fix="Give a file name ending in .html")
        write_text_atomic(path, text)
    return text
