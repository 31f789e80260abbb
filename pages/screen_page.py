"""In-silico screen: simulate every single perturbation (or a gene list) and rank them by a readout.

Answers "which knockout / overexpression moves my gene, module or cell state the most?" (as
CellOracle's perturbation scores): all candidates are simulated from the same start cells in a few
batched solves, ranked, with their spread over a seed ensemble when there is one; a table and a
plot, both downloadable, and saved screens go into the report.
"""

import streamlit as st

from perturbode_core import plots
from perturbode_core.tools.insilico_screen import DIRECTIONS
from perturbode_core.tools.modules import module_strength, weights_from_model
from perturbode_ui import screening
from perturbode_ui.simulation import subset_columns
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

state = get_state()
st.title("In-silico screen")
require_model(state)
model, data = state.model, state.data
genes = list(model.gene_names)
st.caption(f"Model **{state.current_model}**. Every candidate is simulated from the same start cells and ranked by "
           "its effect on the readout against the unperturbed simulation of those cells. Predictions of the model, "
           "not measurements: check the top hits against the data where they were measured.")

# ---- what to perturb
c1, c2, c3 = st.columns([1.3, 1, 1])
which = c1.radio("Perturb", screening.GENE_SETS, key="screen_set", horizontal=True,
                 help="The screen's perturbed genes are those the model saw perturbed; every gene is a genome-wide "
                      "screen (one batched solve per few hundred genes).")
gene_list = c1.multiselect("Genes", genes, key="screen_genes", disabled=which != "a gene list")
kind_label = c2.selectbox("Intervention", screening.screen_kinds(model), key="screen_kind",
                          help="Knock-down (as the screen's): no dose, each target left at the level this model's "
                               "training knock-downs left of a gene of its control level.")
_, unit, default = screening.kind_of(kind_label)
value = c2.number_input(unit or "value", min_value=0.0 if kind_label == "knock-down" else 1.0,
                        max_value=1.0 if kind_label == "knock-down" else 1000.0,
                        value=float(default or 0.0), key=f"screen_value_{kind_label}", disabled=unit is None,
                        help="Knock-down: the share of the target's control level removed (0.8 holds it at 20%). "
                             "Overexpression: fold change of the target's expression (2 = twice), converted to the "
                             "model's overexpression strength for each gene.") if unit else None
condition = c3.selectbox("Start from the cells of", data.conditions, key="screen_start",
                         help="Usually the control cells.")
keep = condition != data.control and c3.checkbox(
    f"Keep {condition}'s own perturbation on", value=True, key="screen_keep",
    help="Without it, the start cells relax back as if their perturbation had been lifted (a knocked-out "
                        "gene rebounds): the screen then is not a second perturbation on top of the first.")

# ---- the readout
r1, r2, r3 = st.columns([1, 1.3, 1])
kind = r1.radio("Rank by their effect on", ["gene", "module", "state"], key="screen_readout_kind",
                format_func={"gene": "a gene", "module": "a module", "state": "a cell state"}.get)
state_condition = column = value_choice = None
if kind == "gene":
    name = r2.selectbox("Gene", genes, key="screen_readout_gene")
elif kind == "module":
    w = weights_from_model(model)
    strength = module_strength(w.A, w.B, w.alpha)
    live = [k for k in strength.argsort()[::-1] if strength[k] > 0]
    name = r2.selectbox("Module", [f"M{k}" for k in live], key="screen_readout_module",
                        help="Modules by strength; dead modules (strength 0) are left out.")
else:
    name = "state"
    cols = ["(a measured condition)"] + subset_columns(data)
    column = r2.selectbox("Cell state", cols, key="screen_state_col",
                          help="The mean of a measured condition's cells, or of the cells with an annotation value")
    if column == "(a measured condition)":
        column = None
        state_condition = r2.selectbox("Condition", data.perturbations, key="screen_state_cond")
    else:
        value_choice = r2.selectbox("equal to", sorted(map(str, data.obs[column].astype(str).unique())),
                                    key="screen_state_val")
direction = r3.radio("Best first", DIRECTIONS, key="screen_direction", index=2,
                     help="decrease: the strongest lowering first; increase: the strongest raising; either: |effect|")

# ---- the models
others = [n for n in state.fitting_models() if n != state.current_model]
e1, e2 = st.columns(2)
extra = e1.multiselect("Also screen with (an ensemble)", others, key="screen_extra",
                       help="Other kept models of these data, e.g. reruns with other seeds: the table then gives the "
                            "mean effect, its spread and the share of models that agree on its sign.")
n_seed = screening.seed_run_count(state)
use_seeds = e2.checkbox(f"Use the {n_seed} seed reruns of the Evaluate page", value=n_seed > 0, disabled=n_seed == 0,
                        key="screen_use_seeds", help="Train them on the Evaluate page (Stability over seeds).")

if st.button("Run the screen", type="primary", key="screen_run"):
    with user_errors("screen"), st.spinner("Simulating every candidate…"):
        readout = screening.build_readout(state, kind, name, state_condition=state_condition, column=column,
                                          value=value_choice)
        candidates = screening.candidate_genes(state, which, gene_list)
        screening.run(state, genes=candidates, kind_label=kind_label, value=value, readout=readout,
                      direction=direction, condition=condition, keep_start_perturbation=keep, extra_models=extra,
                      seed_runs=use_seeds)

res = state.screens.last
if res is not None:
    st.subheader(res.title)
    st.caption(f"{res.n_cells} start cells ({res.start})"
               + (f", with {res.base_perturbation} kept on" if res.base_perturbation else "")
               + f" · readout without a candidate: {res.baseline:.3g} · {res.seconds:.1f} s"
               + (f" · error bars: spread over {res.n_models} models" if res.n_models > 1 else ""))
    for note in res.notes:
        st.warning(note)
    left, right = st.columns([3, 2])
    shown = res.table.drop(columns=[c for c in res.table.columns if c.startswith("effect_") and c != "effect_sd"])
    left.dataframe(shown, hide_index=True, height=460,
                   column_config={c: st.column_config.NumberColumn(format="%+.3f")
                                  for c in ("effect", "effect_sd", "z_effect")})
    effect_label = {"gene": f"change of {res.readout.name}", "module": f"change of {res.readout.name} activity",
                    "state": "share of the way to the state"}[res.readout.kind]
    right.plotly_chart(plots.screen_figure(res.table, top=20, effect_label=effect_label,
                                           title=f"Top 20 by {res.readout.label}"), key="screen_fig")
    stem = "".join(ch if ch.isalnum() else "_" for ch in res.readout.label).strip("_")
    d1, d2, d3, d4 = st.columns([1, 1, 1.5, 1])
    d1.download_button("Screen table (CSV)", res.table.to_csv(index=False).encode("utf-8"),
                       f"screen_{stem}.csv", "text/csv", key="screen_dl_csv", on_click="ignore",
                       icon=":material/download:")
    d2.download_button("Plot (HTML)", plots.screen_figure(res.table, top=20, effect_label=effect_label).to_html(
        include_plotlyjs=True).encode("utf-8"), f"screen_{stem}.html", "text/html", key="screen_dl_html",
        on_click="ignore", icon=":material/download:")
    label = d3.text_input("Name", value=f"{res.readout.label} ({len(res.table)} perturbations)",
                          key="screen_save_name", label_visibility="collapsed")
    if d4.button("Save for the report", key="screen_save"):
        state.screens.saved[label] = res
        st.success(f"Saved {label} ({len(state.screens.saved)} saved screens).")
