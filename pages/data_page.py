"""Home / Data: pick a built-in dataset, upload an .h5ad or name a server file; see a summary."""

import streamlit as st

from perturbode_ui.state import has_state

SUMMARY_METRICS = ("Cells", "Genes", "Conditions", "Control cells", "Median cells / condition")


def summary_skeleton():
    """The summary's row of metrics without values, in a placeholder the real summary replaces."""
    slot = st.empty()
    with slot.container():
        st.caption("Reading the demo dataset…")
        for col, label in zip(st.columns(len(SUMMARY_METRICS)), SUMMARY_METRICS):
            col.metric(label, "…")
    return slot


st.title("Data")
st.caption("Learn a gene regulatory network from a perturbation screen with an interpretable neural ODE. "
           "The demo dataset and a trained model are loaded; load your own data here.")
builtin, upload, server = st.tabs(["Built-in datasets", "Upload .h5ad", "Server-side file"])
# a session's first run: the layout goes out before the demo is read (importing pandas and AnnData
# takes most of a second), so the browser fetches the page's widgets meanwhile
skeleton = None if has_state() else summary_skeleton()

import pandas as pd  # noqa: E402

from perturbode_core.data import dataset as pdata  # noqa: E402
from perturbode_core.io.h5ad import read_h5ad  # noqa: E402
from perturbode_core.data.knockout_level import knockdown_rule, measured_knockdown  # noqa: E402
from perturbode_core import plots  # noqa: E402
from perturbode_core.errors import PerturbODEError  # noqa: E402
from perturbode_ui import data_io, loaders  # noqa: E402
from perturbode_ui.state import get_state, load_demo  # noqa: E402
from perturbode_ui.widgets import user_errors  # noqa: E402

state = get_state()
with builtin:
    names = loaders.builtin_datasets()
    current = names.index(state.dataset_name) if state.dataset_name in names else 0
    # the simulated demo (known network) and the real screen come first, each with its trained model
    name = st.selectbox("Dataset", names, index=current, key="data_builtin_name",
                        help="First: the simulated demo with a known network, then the real CRISPR screen")
    st.caption(f"**{loaders.dataset_label(name)}** · {loaders.dataset_description(name)}")
    if st.button("Load dataset", key="data_builtin_load", type="primary"):
        with user_errors("loading " + name), st.spinner(f"Loading {name}…"):
            if loaders.has_demo_model(name):
                load_demo(state, name)  # a demo comes with its trained model
            else:
                data, truth, messages = loaders.load_builtin(name)
                state.set_data(data, name=name, source="builtin", truth=truth, messages=messages)
            st.rerun()  # refresh the sidebar with the new dataset

with upload:
    file = st.file_uploader("An AnnData file (.h5ad): cells × genes, log-normalised, with a perturbation "
                            "column in obs", type=["h5ad"], key="data_upload")
    if file is not None and state.upload.get("id") != file.file_id:  # read each new file once
        state.upload = {"id": file.file_id, "error": None}
        try:
            adata = data_io.read_upload(file.name, file.getvalue(), state.workdir)
            state.pending = {"adata": adata, "name": file.name, "source": "upload"}
        except PerturbODEError as exc:
            state.upload["error"] = str(exc)
    if file is not None and state.upload.get("error"):
        st.error(state.upload["error"])

with server:
    allowed = state.settings.allowed_data_dir
    st.caption(f"Files inside {allowed} only." if allowed else
               "Any file this server can read (local use). Set PERTURBODE_DATA_DIR to restrict.")
    path_text = st.text_input("Path of an .h5ad file on the server", key="data_path")
    if st.button("Read file", key="data_path_read"):
        with user_errors("reading the file"):
            path = data_io.check_server_path(path_text, allowed)
            adata = read_h5ad(path)
            state.pending = {"adata": adata, "name": path.name, "source": "path"}

if state.pending is not None:
    st.subheader(f"Columns of {state.pending['name']}")
    adata = state.pending["adata"]
    key_guess, control_guess = data_io.guess_columns(adata)
    columns = [str(c) for c in adata.obs.columns]
    if not columns:
        st.error(f"{state.pending['name']} has no obs columns: it needs one naming the perturbation of each cell.")
    else:
        c1, c2, c3 = st.columns(3)
        key = c1.selectbox("Perturbation column", columns, help="obs column with the target gene(s) of each cell, "
                           "'+'-joined for combinations", index=columns.index(key_guess) if key_guess in columns else 0)
        guess = pdata.guess_control_label(adata.obs[key])
        # the guessed control first; a screen may have thousands of conditions, list 1,000 at most
        values = [v for v in [guess] if v] + sorted(set(map(str, pd.unique(adata.obs[key].astype(str)))) - {guess})[:999]
        control = c2.selectbox("Control label", values, index=values.index(guess) if guess in values else 0,
                               help="The label of unperturbed cells")
        normalize = c3.checkbox("Normalise raw counts", help="normalize_total + log1p (only for raw counts); the "
                                "counts are kept as a layer")
        with st.expander("Real-screen options: genes, guides, escaping cells"):
            r1, r2, r3 = st.columns(3)
            none = "(none)"
            layer = r1.selectbox("Expression from", ["X"] + [str(k) for k in adata.layers.keys()], key="data_layer",
                                 help="X, or a layer (e.g. raw counts, with normalisation)")
            hvg = r1.number_input("Highly variable genes (0: all)", 0, max(adata.n_vars, 1), 0, key="data_hvg",
                                  help="scanpy highly variable genes; perturbed genes are always kept")
            condition_key = r1.selectbox("Conditions keyed by", [none] + columns, key="data_condition_key",
                                         help="A column naming each cell's condition (a guide, a drug and dose); "
                                              "none: the perturbation labels")
            guides = r2.selectbox("Guides", [none] + data_io.guide_sources(adata), key="data_guides",
                                  help="Guide UMI counts (obsm) or guide calls (obs): each cell gets its top guide "
                                       "when it has ≥ 5 UMIs and ≥ half the cell's guide UMIs, untied; others are set aside")
            apart = r2.checkbox("Keep guides of one gene apart", key="data_guides_apart")
            escapees = r3.radio("Escaping knockout cells", ["keep", "flag", "drop"], horizontal=True,
                                key="data_escapees", help="flag: classify (Mixscape-style) and report the knockout "
                                "efficiency; drop: also train on the perturbed cells only")
            split = r3.selectbox("Control neighbours within", [none] + columns, key="data_escape_split",
                                 help="e.g. the replicate column")
            drugs = r3.radio("inhibition / activation read as", ["auto", "activity", "expression"], horizontal=True,
                             key="data_activity_words",
                             help="activity (drugs, signalling proteins): the protein's effect on its targets is "
                                  "scaled by 0 / 2, its measured level is free. expression: knock-down / "
                                  "overexpression of the gene. auto: activity unless a dose comes with the word")
        options = {"hvg": int(hvg) or None, "escapees": escapees, "layer": None if layer == "X" else layer,
                   "activity_synonyms": {"auto": "auto", "activity": "yes", "expression": "no"}[drugs],
                   "condition_key": None if condition_key == none else condition_key,
                   "escape_split_key": None if split == none else split}
        if guides != none:
            options.update(guides=guides, pool_guides=not apart)
        if st.button("Use these data", type="primary", key="data_use"):
            with user_errors("loading the data"):
                data, truth, messages = data_io.build_data(adata, perturbation_key=key, control=control,
                                                           source=state.pending["name"], normalize=normalize,
                                                           **options)
                state.set_data(data, name=state.pending["name"], source=state.pending["source"],
                               truth=truth, messages=messages)
                st.rerun()

if skeleton is not None:
    skeleton.empty()
if state.data is None:
    if state.startup_error:
        st.error(state.startup_error)
    st.info("No dataset loaded yet.")
    st.stop()

data = state.data
summary = pdata.describe(data)
st.subheader(f"{state.dataset_name}")
for msg in state.data_messages:
    st.warning(msg)
values = (f"{summary['n_cells']:,}", f"{summary['n_genes']:,}", summary["n_conditions"],
          f"{summary['n_control_cells']:,}", f"{summary['median_cells_per_condition']:.0f}")
for col, label, value in zip(st.columns(len(SUMMARY_METRICS)), SUMMARY_METRICS, values):
    col.metric(label, value)
types = ", ".join(f"{k}: {v}" for k, v in summary["intervention_types"].items()) or "none"
st.caption(f"Control label **{data.control}** · intervention targets by type: {types} · "
           f"{summary['n_combinations']} combinations · "
           f"{'time points ' + ', '.join(map(str, summary['times'])) if summary['times'] else 'steady state'}"
           f"{' · known network: ' + str(len(state.truth)) + ' edges' if state.truth is not None else ''}")

left, right = st.columns([3, 2])
with left:
    method = st.radio("Embedding", ["pca", "umap"], horizontal=True, format_func=str.upper,
                      help="PCA is instant; UMAP takes 10-20 s the first time (then cached)")
    emb = data_io.embedding(data, state.data_key, method, state.settings.max_plot_cells)
    st.plotly_chart(plots.embedding_figure(emb["coords"], emb["labels"], control=data.control, axis_names=emb["axes"],
                                           title=f"Cells coloured by condition ({len(emb['index']):,} shown)"))
with right:
    st.plotly_chart(plots.cells_per_condition_figure(summary["per_condition"], control=data.control))
    st.dataframe(summary["per_condition"], hide_index=True, height=260)

if data.unmeasured_targets:
    st.caption(f"{len(data.unmeasured_targets)} target(s) are not among the measured genes and enter the model as "
               f"unmeasured regulators: {', '.join(data.unmeasured_targets)}.")
if data.escape is not None:
    st.subheader("Knockout efficiency")
    st.caption("Each knockout's cells classified as perturbed or escaping (Mixscape-style: signature against the "
               "nearest control cells, two-component mixture). " + ("Escaping cells are set aside for training."
                                                                     if data.preprocessing.get("escapees") == "drop"
                                                                     else "All cells are kept."))
    e1, e2 = st.columns([3, 2])
    e1.plotly_chart(plots.knockout_efficiency_figure(data.escape), key="data_efficiency_fig")
    e2.dataframe(data.escape, hide_index=True, height=320,
                 column_config={"efficiency": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                              format="%.2f")})
on_target = data_io.on_target_table(data, state.data_key)
if len(on_target):
    st.subheader("On-target levels")
    summary_by_type = "; ".join(
        f"{len(part)} {kind}{'s' if len(part) > 1 else ''} left {100 * part['level'].sum() / part['control_level'].sum():.0f} % "
        "of their targets' level in all" for kind, part in on_target[on_target["control_level"] > 0].groupby("type"))
    st.caption("What each knockout and knock-down left of its own target (mean level in its cells over the control "
               f"cells'): {summary_by_type}. A CRISPR knockout's transcript is often only partly degraded; a "
               "simulator's is deleted. The model reads the training conditions' levels (knockout_level, "
               "knockdown_level on the Train page).")
    # the model's readings only when it is loaded already: this page must not load one (first-page speed)
    model = state.model if state.entry is not None and state.entry.loaded else None
    rule = knockdown_rule(model.config) if model is not None and measured_knockdown(model.config) else None
    t1, t2 = st.columns([3, 2])
    level = float(model.config.knockout_level) if model is not None else 0.0
    t1.plotly_chart(plots.target_level_figure(on_target, rule=rule, knockout_level=level), key="data_target_levels_fig")
    t2.dataframe(on_target, hide_index=True, height=320,
                 column_config={"left": st.column_config.NumberColumn(format="%.2f")})

if len(data.set_aside):
    with st.expander(f"Set aside on load ({int(data.set_aside['cells'].sum()):,} cells)"):
        st.dataframe(data.set_aside, hide_index=True)
