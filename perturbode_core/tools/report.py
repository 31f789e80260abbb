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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perturbode_core.io.files import write_text_atomic
from perturbode_core.errors import PerturbODEError, check_choice

__all__ = ["ReportInputs", "build_report", "figure_bytes", "browser_path", "IMAGE_FORMATS"]

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
# readable in a normal window: the page never grows wider than the window (wide tables scroll in
# their own box, long cells such as gene lists wrap, figures take the column's width)
_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1150px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.8em;margin-bottom:0}h2{border-bottom:2px solid #444;padding-bottom:4px;margin-top:2em}
h3{margin-top:1.4em}.meta{color:#666;font-size:.9em}
table.tbl{border-collapse:collapse;font-size:.85em;margin:8px 0 16px;display:block;max-width:100%;overflow-x:auto}
table.tbl th,table.tbl td{border:1px solid #ddd;padding:3px 8px;text-align:right;max-width:32em;
overflow-wrap:anywhere;word-break:break-word}
table.tbl th{background:#f3f6f9}table.tbl td:first-child,table.tbl th:first-child{text-align:left}
.kv td:first-child{font-weight:600}.note{background:#f8f8f0;border-left:4px solid #E69F00;padding:6px 12px}
.caveat{background:#fdf3e7;border-left:4px solid #D55E00;padding:6px 12px}
nav a{margin-right:12px}.fig{margin:8px 0 20px;max-width:100%;overflow-x:auto}.fig>div{max-width:100%}
.cols{display:flex;gap:40px;flex-wrap:wrap}.cols>div{min-width:0;max-width:100%}
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


@dataclass
class ReportInputs:
    """Everything a report can hold; a section appears when its content is given (or derivable).

    Attributes
    ----------
    title, notes
        The report's title and free text shown at the top.
    data, dataset_summary
        A :class:`~perturbode_core.data.dataset.PerturbationData` and/or its
        :func:`~perturbode_core.data.dataset.describe` dict (derived from ``data`` when absent).
    model, settings, history
        The trained model, what it was trained with
        (:class:`~perturbode_core.io.checkpoint.TrainedSettings`) and its per-epoch history.
    edges, top_k, reading, truth, network_figure
        The network's edge table (derived from ``model`` in ``reading`` when absent, see
        :func:`~perturbode_core.tools.grn.network_matrix`; the top ``top_k`` shown), known edges
        for the overlay, or a ready figure.
    modules, enrichment, module_figures
        Module summary table, enrichment table, and module / enrichment figures.
    simulations
        ``{label: effect table}`` from :func:`~perturbode_core.tools.simulate.effect_table`.
    screens
        ``{label: ScreenResult}`` from :func:`~perturbode_core.tools.insilico_screen.run_screen`.
    network_score, prediction_score, stability, literature_score
        Typed results of :mod:`~perturbode_core.tools.evaluate` (a
        :class:`~perturbode_core.tools.evaluate.NetworkScore`, a
        :class:`~perturbode_core.tools.evaluate.PredictionScore`, whose title and note say what
        was held out and what is in-sample, a :func:`~perturbode_core.tools.evaluate.stability_summary`
        and a :class:`~perturbode_core.tools.evaluate.LiteratureScore`).
    metrics, metric_notes
        More ``{section title: table}`` (one row per method, column ``method``); bar charts put the
        model beside the baselines. ``metric_notes[title]`` is printed under its title.
    figures
        ``{title: figure}`` appended in an "Other figures" section.
    versions
        Package versions (default: :func:`~perturbode_core.io.checkpoint.package_versions`).
    """

    title: str = "PerturbODE report"
    notes: str | None = None
    data: object | None = None
    dataset_summary: dict | None = None
    model: object | None = None
    settings: object | None = None
    history: pd.DataFrame | None = None
    edges: pd.DataFrame | None = None
    top_k: int = 50
    reading: str = "combined"
    truth: pd.DataFrame | None = None
    network_figure: object | None = None
    modules: pd.DataFrame | None = None
    enrichment: pd.DataFrame | None = None
    module_figures: list = field(default_factory=list)
    simulations: dict = field(default_factory=dict)
    screens: dict = field(default_factory=dict)
    network_score: object | None = None
    prediction_score: object | None = None
    stability: dict | None = None
    literature_score: object | None = None
    metrics: dict = field(default_factory=dict)
    metric_notes: dict = field(default_factory=dict)

    def metric_tables(self) -> tuple[dict, dict]:
        """``({title: table}, {title: note})`` of every metric section, the typed scores first."""
        tables, notes = {}, {}
        if self.network_score is not None:
            tables[self.network_score.title] = self.network_score.table
            notes[self.network_score.title] = self.network_score.note
        if self.prediction_score is not None:
            tables[self.prediction_score.title] = self.prediction_score.summary
            notes[self.prediction_score.title] = self.prediction_score.note
        if self.stability and "spread" in self.stability:
            title = "Stability over seeds (network metrics)"
            tables[title] = self.stability["spread"].reset_index(names="metric")
            notes[title] = f"{self.stability['n_runs']} runs with different seeds: mean and spread of each metric."
        if self.literature_score is not None:
            tables[self.literature_score.title] = self.literature_score.table
            notes[self.literature_score.title] = self.literature_score.note
        tables.update(self.metrics)
        notes.update(self.metric_notes)
        return tables, notes
    figures: dict = field(default_factory=dict)
    versions: dict | None = None


def _dataset_section(doc: _Doc, r: ReportInputs) -> None:
    summary = r.dataset_summary
    if summary is None and r.data is not None:
        from perturbode_core.data.dataset import describe

        summary = describe(r.data)
    if not summary:
        return
    doc.section("dataset", "Dataset")
    doc.kv({k: v for k, v in summary.items() if not isinstance(v, pd.DataFrame)})
    per = summary.get("per_condition")
    if isinstance(per, pd.DataFrame):
        doc.h3("Cells per condition")
        doc.table(per, max_rows=60)
    if r.data is not None and getattr(r.data, "escape", None) is not None:
        doc.h3("Knockout efficiency (perturbed vs escaping cells)")
        doc.table(r.data.escape, max_rows=60)
    if r.data is not None and len(getattr(r.data, "set_aside", ())):
        doc.h3("Set aside on load")
        doc.table(r.data.set_aside, max_rows=60)


def _training_section(doc: _Doc, r: ReportInputs) -> None:
    from perturbode_core import plots

    settings = r.settings
    mc = settings.model_config.to_dict() if settings is not None else \
        (r.model.config.to_dict() if r.model is not None else None)
    tc = settings.train_config.to_dict() if settings is not None and settings.train_config is not None else None
    hist = None if r.history is None else pd.DataFrame(r.history)
    if not (mc or tc or (hist is not None and not hist.empty)):
        return
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
    if settings is not None and settings.train_conditions is not None and r.data is not None:
        held = settings.heldout_conditions(r.data)
        doc.p(f"Trained on {len(settings.train_conditions) - 1} perturbations"
              + (f" (of which {len(settings.val_conditions)} only chose the best epoch: "
                 f"{', '.join(settings.val_conditions)})" if settings.val_conditions else "")
              + (f"; never shown: {', '.join(held)}." if held else "; every perturbation of the data was seen."),
              cls="meta")
    best_epoch = settings.best_epoch if settings is not None else None
    if hist is not None and not hist.empty:
        doc.figure(plots.loss_figure(hist, best_epoch=best_epoch, title="Loss by epoch"), "loss-figure")
        if best_epoch is not None:
            doc.p(f"Kept the model of epoch {best_epoch} (lowest validation loss when a validation set was used).",
                  cls="meta")


def _network_section(doc: _Doc, r: ReportInputs) -> None:
    from perturbode_core import plots

    edges, G, ranking = r.edges, None, ""
    if r.model is not None:
        from perturbode_core.tools.grn import describe_reading, grn_matrix, model_edges

        G = grn_matrix(r.model)
        ranking = " " + describe_reading(r.model, r.reading)
        if edges is None:
            edges = model_edges(r.model, reading=r.reading, top_k=r.top_k)
    figure = r.network_figure
    if edges is None and figure is None:
        return
    doc.section("network", "Gene regulatory network")
    if figure is None and len(edges):
        shown = pd.DataFrame(edges).head(r.top_k)
        figure = plots.network_figure(shown, truth=r.truth, title=f"Top {len(shown)} edges"
                                      + (" vs. the known network" if r.truth is not None else ""))
    from perturbode_core.plots.style import SIGN_COLOR_NAMES

    key = ("edges by their status against the known network (a predicted edge with the opposite sign of the "
           "known one counts as wrong sign, not as a true positive)" if r.truth is not None else
           f"{SIGN_COLOR_NAMES[1]} activates, {SIGN_COLOR_NAMES[-1]} represses")
    doc.p(f"Edges point from regulator to target; {key}; wider is stronger. Hover an arrow for the weight."
          + ranking, cls="meta")
    doc.figure(figure, "network-figure")
    if edges is not None:
        doc.h3("Strongest edges")
        doc.table(pd.DataFrame(edges), max_rows=r.top_k)
    if G is not None:
        doc.figure(plots.g_heatmap(G, r.model.gene_names), "g-heatmap")


def _modules_section(doc: _Doc, r: ReportInputs) -> None:
    if r.modules is None and r.enrichment is None and not r.module_figures:
        return
    doc.section("modules", "Modules and enrichment")
    if r.modules is not None:
        doc.h3("Modules")
        doc.table(r.modules, max_rows=60)
    for i, f in enumerate(r.module_figures):
        doc.figure(f, f"module-figure-{i}")
    if r.enrichment is not None:
        doc.h3("Enrichment")
        doc.table(r.enrichment, max_rows=60)


def _simulations_section(doc: _Doc, r: ReportInputs) -> None:
    from perturbode_core import plots

    if not r.simulations:
        return
    doc.section("simulations", "Simulations")
    for i, (label, table) in enumerate(r.simulations.items()):
        doc.h3(label)
        t = pd.DataFrame(table)
        if "gene" in t and "z_change" in t:
            doc.figure(plots.effect_figure(t, top=20, title=f"Largest effects of {label}"), f"simulation-{i}")
        doc.table(t, max_rows=25)


def _screens_section(doc: _Doc, r: ReportInputs) -> None:
    from perturbode_core import plots

    if not r.screens:
        return
    doc.section("screens", "In-silico screens")
    for i, (label, res) in enumerate(r.screens.items()):
        doc.h3(label)
        doc.p(f"{res.title}. Start: {res.start or 'control cells'} ({res.n_cells} cells)"
              + (f", with {res.base_perturbation} kept on" if res.base_perturbation else "")
              + (f"; bars: mean over {res.n_models} models, error bars their spread" if res.n_models > 1 else "")
              + ". Model predictions, not measurements.", cls="meta")
        doc.figure(plots.screen_figure(res.table, top=20, title=f"Top perturbations by {res.readout.label}"),
                   f"screen-{i}")
        doc.table(res.table.drop(columns=[c for c in res.table.columns if c.startswith("effect_model")]), max_rows=25)


def _metrics_section(doc: _Doc, r: ReportInputs) -> None:
    from perturbode_core import plots

    tables, notes = r.metric_tables()
    if not tables:
        return
    doc.section("metrics", "Accuracy, with baselines")
    for i, (name, table) in enumerate(tables.items()):
        t = pd.DataFrame(table)
        doc.h3(name)
        ps = r.prediction_score
        if ps is not None and name == ps.title and ps.in_sample:
            doc.p(f"In-sample: the model was fitted on {', '.join(ps.fitted)}. These numbers say how well it fits "
                  "what it saw, not how well it predicts; only never-shown conditions test prediction.",
                  cls="caveat")
        if notes.get(name):
            doc.p(notes[name], cls="meta")
        numeric = [c for c in t.columns if c != "method" and pd.api.types.is_numeric_dtype(t[c])
                   and not c.startswith("n_") and c != "seconds"]
        if "method" in t and numeric:
            doc.figure(plots.metric_bar_figure(t, metrics=numeric[:8]), f"metrics-figure-{i}")
        doc.table(t, max_rows=40)


def _figures_section(doc: _Doc, r: ReportInputs) -> None:
    if not r.figures:
        return
    doc.section("figures", "Other figures")
    for i, (name, f) in enumerate(r.figures.items()):
        doc.h3(name)
        doc.figure(f, f"extra-{i}")


def _reproducibility_section(doc: _Doc, r: ReportInputs) -> None:
    versions = r.versions
    if versions is None:
        from perturbode_core.io.checkpoint import package_versions

        versions = package_versions()
    tc = r.settings.train_config if r.settings is not None else None
    seed = tc.seed if tc is not None else None
    doc.section("reproducibility", "Reproducibility")
    doc.kv({"seed": "not recorded" if seed is None else seed, **versions})


#: The report's sections, in order: one writer each.
SECTIONS = (_dataset_section, _training_section, _network_section, _modules_section, _simulations_section,
            _screens_section, _metrics_section, _figures_section, _reproducibility_section)


def build_report(inputs: ReportInputs, path=None) -> str:
    """Build a self-contained HTML report; write it atomically to ``path`` when given.

    Parameters
    ----------
    inputs
        :class:`ReportInputs`: a section appears for what is given.
    path
        Output file (``.html``), written via a temporary file and rename. None: only return the text.

    Returns
    -------
    str
        The HTML text.
    """
    doc = _Doc()
    if inputs.notes:
        doc.parts.append(f'<p class="note">{html.escape(inputs.notes)}</p>')
    for write_section in SECTIONS:
        write_section(doc, inputs)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    toc = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in doc.toc)
    title = inputs.title
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
