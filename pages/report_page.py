"""Report page: one self-contained HTML file for collaborators, and figures as PNG / SVG.

Answers "how do I share this without the app?": the report holds the dataset summary, training
settings and loss curves, the network and its strongest edges, modules and enrichment, the saved
simulations, the metrics beside their baselines, package versions and the seed; it opens offline
in any browser. Figures export through kaleido with the system Chromium (HTML where that is missing).
"""

import datetime as dt

import streamlit as st

from perturbode_core import plots
from perturbode_core.tools import grn
from perturbode_core.tools import report
from perturbode_core.tools.modules import dominant_module
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_data, user_errors

state = get_state()
st.title("Report")
require_data(state)
model, data = state.model, state.data
ev, mods, net = state.evaluation, state.modules, state.network


def _edges(top_k: int | None = None):
    """The edges on the Network page when it was opened, else the strongest ``top_k`` (2p by default)."""
    if net.edges is not None and len(net.edges):
        return net.edges
    return grn.model_edges(model, top_k=top_k or min(2 * model.n_genes, model.n_genes * (model.n_genes - 1)))


def _module_groups():
    w = model.module_weights()
    return dominant_module(w["A"], w["alpha"], model.gene_names)


# what each figure download is built from (built only when asked for: kaleido takes seconds)
figures = {}
if model is not None:
    figures["Network"] = lambda: plots.network_figure(_edges(), node_groups=_module_groups(), title="Gene regulatory network")
    if state.truth is not None:
        figures["Network vs known network"] = lambda: plots.network_figure(_edges(), truth=state.truth,
                                                                           title="Network vs known network")
    figures["Network matrix G (heatmap)"] = lambda: plots.g_heatmap(grn.grn_matrix(model), model.gene_names)
if state.history is not None and len(state.history):
    figures["Loss curves"] = lambda: plots.loss_figure(
        state.history, best_epoch=state.model_settings.best_epoch if state.model_settings else None)
if mods.network_figure is not None:
    figures["Module network"] = lambda: mods.network_figure
if mods.dotplot is not None:
    figures["Enrichment dot plot"] = lambda: mods.dotplot
if ev.network is not None:
    figures["Network metrics vs baselines"] = lambda: plots.metric_bar_figure(
        ev.network.table, metrics=["aupr", "auroc", "early_precision", "f1", "sign_accuracy"], title=ev.network.title)
if ev.prediction is not None:
    figures["Prediction metrics vs baselines"] = lambda: plots.metric_bar_figure(
        ev.prediction.summary, metrics=["w2", "energy", "pearson_delta", "mse_mean"], title=ev.prediction.title)
# saved scenarios, plus the latest run of the Simulate page when it was not saved
scenarios = dict(state.simulations)
last = getattr(state, "last_simulation", None)
if last is not None and all(sc is not last and sc.spec != last.spec for sc in scenarios.values()):
    scenarios[f"latest: {last.spec}"] = last
for name, sc in scenarios.items():
    figures[f"Effects of {name}"] = (lambda sc=sc: plots.effect_figure(sc.effects, title=f"Largest effects: {sc.spec}"))
# saved in-silico screens, plus the latest when it was not saved
screens = dict(state.screens.saved)
if state.screens.last is not None and all(r is not state.screens.last for r in screens.values()):
    screens[f"latest: {state.screens.last.readout.label}"] = state.screens.last
for name, res in screens.items():
    figures[f"Screen: {name}"] = (lambda res=res: plots.screen_figure(res.table, top=20, title=res.title))

# ------------------------------------------------------------------------------------- report
st.subheader("HTML report")
with st.form("report_form"):
    title = st.text_input("Title", f"PerturbODE: {state.dataset_name or 'analysis'}", key="rep_title")
    notes = st.text_area("Notes for the reader (optional)", key="rep_notes")
    sims = st.multiselect("Simulations to include", list(scenarios), default=list(scenarios),
                          key="rep_sims", help="Scenarios saved on the Simulate page, and its latest run.")
    chosen_screens = st.multiselect("In-silico screens to include", list(screens), default=list(screens),
                                    key="rep_screens", help="Screens saved on the In-silico screen page, and its latest.")
    c1, c2, c3 = st.columns(3)
    top_k = c1.number_input("Edges in the network table", 5, 1000, 50, key="rep_topk")
    with_truth = c2.checkbox("Overlay the known network", value=state.truth is not None,
                             disabled=state.truth is None, key="rep_truth")
    with_metrics = c3.checkbox("Include metrics (from the Evaluate page)", value=True, key="rep_metrics")
    build = st.form_submit_button("Build report", type="primary", icon=":material/description:")

if build:
    with user_errors("report"), st.spinner("Building the report…"):
        enrichment = mods.enrichment
        inputs = report.ReportInputs(
            title=title, notes=notes or None, data=data, model=model, settings=state.model_settings,
            history=state.history, edges=_edges(int(top_k)) if model is not None else None, top_k=int(top_k),
            reading=net.reading,
            truth=state.truth if with_truth else None, modules=mods.summary,
            enrichment=None if enrichment is None else enrichment[enrichment["qvalue"] <= 0.25],
            module_figures=[f for f in (mods.network_figure, mods.dotplot) if f is not None],
            simulations={(n if n.startswith("latest") else f"{n} ({scenarios[n].spec})"): scenarios[n].effects
                         for n in sims if n in scenarios},
            screens={n: screens[n] for n in chosen_screens if n in screens},
            network_score=ev.network if with_metrics else None,
            prediction_score=ev.prediction if with_metrics else None,
            stability=ev.stability if with_metrics else None,
            literature_score=ev.literature if with_metrics else None)
        text = report.build_report(inputs)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
        state.report = {"html": text.encode("utf-8"), "file": f"perturbode_report_{stamp}.html"}

if state.report.get("html"):
    size = len(state.report["html"]) / 1e6
    st.success(f"Report ready ({size:.1f} MB, self-contained: plotly.js is inside, nothing loads from the internet).")
    st.download_button("Download report (HTML)", state.report["html"], state.report["file"], "text/html",
                       key="rep_dl", on_click="ignore", icon=":material/download:", type="primary")
else:
    st.caption("Press Build report. Visit Network, Modules and Evaluate first to include their results.")

# ------------------------------------------------------------------------------------ figures
st.subheader("Figures")
if not figures:
    st.info("No figures yet: train or load a model first.")
else:
    c1, c2, c3 = st.columns([2, 1, 1])
    which = c1.selectbox("Figure", list(figures), key="rep_fig")
    fmt = c2.radio("Format", ["png", "svg", "html"], horizontal=True, key="rep_fmt")
    if c3.button("Prepare figure", key="rep_fig_go"):
        with user_errors("figure export"), st.spinner("Rendering…"):
            data_bytes, mime, ext = report.figure_bytes(figures[which](), fmt)
            state.report["figure"] = (which, data_bytes, mime, ext)
            if ext != fmt:
                st.warning("No Chrome/Chromium found for image export: the figure comes as interactive HTML.")
    fig_item = state.report.get("figure")
    if fig_item:
        name, data_bytes, mime, ext = fig_item
        stem = "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")
        st.download_button(f"Download {name} ({ext.upper()})", data_bytes, f"{stem}.{ext}", mime,
                           key="rep_fig_dl", on_click="ignore", icon=":material/download:")
