"""Simulate: knockouts, knock-downs, overexpression and shifts of any genes, alone or combined."""

import streamlit as st

from perturbode_core import plots
from perturbode_core.data.interventions import format_spec
from perturbode_core.tools.simulate import target_level_note
from perturbode_core.tools.target_support import support_note
from perturbode_ui import data_io, simulation
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

state = get_state()
st.title("Simulate")
require_model(state)
model, data = state.model, state.data
st.caption(f"Model: **{state.current_model}** · {model.n_genes} genes. Ask what a perturbation does, measured or not.")

# ---- start cells and horizon (first: the builder's fold changes are calibrated on these cells)
c1, c2, c3, c4 = st.columns(4)
condition = c1.selectbox("Start from the cells of", data.conditions, key="sim_start",
                         help="Usually the control cells; any measured condition works")
columns = simulation.subset_columns(data)
column = c2.selectbox("Only cells with", ["(all)"] + columns, key="sim_subset_col")
values = []
if column != "(all)":
    values = c3.multiselect("equal to", sorted(map(str, data.obs[column].astype(str).unique())), key="sim_subset_vals")
horizon = c4.number_input("Horizon", 0.1, 1000.0, float(model.config.horizon), key="sim_horizon",
                          help="Integration time (the model was trained to this horizon)")
start_ivs = simulation.kept_perturbation(data, condition)
keep = False
if start_ivs:
    keep = st.checkbox(f"Keep {format_spec(start_ivs)} on (the start cells' own perturbation)", value=True,
                       key="sim_keep_start",
                       help="On: the start cells stay perturbed in both simulations, so a new knockout is a double "
                            "knockout and the effects are those of the new perturbation on top. Off: the model lets the "
                            "start cells relax as if their perturbation had been lifted (a knocked-out gene rebounds).")
    st.caption(f"Effects are measured against {'these cells with ' + format_spec(start_ivs) + ' kept on' if keep else 'these cells with their perturbation lifted'}.")

# ---- perturbation: typed, or built
typed = st.text_input("Type a perturbation (when given, the builder below is switched off)", key="sim_spec",
                      placeholder="GATA1:knockout+SPI1:overexpression=2+CEBPA:knockdown=0.7",
                      help="Targets joined by '+'; types knockout, knockdown=FRACTION removed (0-1, as in the builder), "
                           "overexpression=STRENGTH (× the screen's overexpression, as the builder's 'strength'), "
                           "shift=rate")
use_typed = bool(typed.strip())
targets = [iv.gene for ivs in data.interventions.values() for iv in ivs]
default_gene = [targets[0]] if targets and targets[0] in model.gene_names else list(model.gene_names[:1])
genes = st.multiselect("Target genes (several = a combination)", list(model.gene_names), default=default_gene,
                       key="sim_genes", disabled=use_typed)
rows = []
for gene in genes:
    b1, b2 = st.columns([2, 1])
    label = b1.selectbox(f"{gene}: intervention", list(simulation.KINDS), key=f"sim_kind_{gene}", disabled=use_typed)
    _, unit, _ = simulation.KINDS[label]
    default = simulation.default_value(model, gene, label)
    value = None
    if unit:
        value = b2.number_input(f"{gene}: {unit}", value=float(default), key=f"sim_value_{label}_{gene}",
                                min_value=1.0 if label == simulation.FOLD else 0.0,
                                max_value=1.0 if label == "knock-down" else None, disabled=use_typed)
    rows.append((gene, label, value))

spec, check, notes = "", None, []
with user_errors("perturbation"):
    if use_typed:
        check = simulation.parse_and_check(typed.strip(), model.gene_names)  # names any gene the model lacks
        if genes:
            st.info("The typed perturbation is used; the builder is switched off while the text box has text.")
    elif rows:
        cells, _ = simulation.simulation_cells(state, condition=condition, column=None if column == "(all)" else column,
                                               values=values)
        check, notes = simulation.builder_interventions(model, cells, rows, base=start_ivs if keep else None)
    if check:
        spec = format_spec(check)
        st.caption(f"Perturbation: `{spec}`" + (" · " + "; ".join(notes) if notes else ""))

quick = st.toggle("Quick preview", value=True, key="sim_quick", help=simulation.PREVIEW_HELP)
if st.button("Run simulation", type="primary", disabled=not check, key="sim_run"):
    with user_errors("simulation"), st.spinner("Simulating…"):
        emb = data_io.embedding(data, state.data_key, "pca", state.settings.max_plot_cells)
        state.last_simulation = simulation.run_scenario(
            state, check, condition=condition, column=None if column == "(all)" else column, values=values,
            horizon=float(horizon), pca=emb["pca"], keep_start_perturbation=keep, preview=quick)

sc = state.last_simulation
if sc is not None:
    st.subheader(f"{sc.spec} from {sc.start}")
    st.caption(f"{sc.n_cells} start cells · horizon {sc.horizon:g} · {sc.seconds:.2f} s · effects against {sc.reference}"
               + (f" · measured as condition **{sc.measured}** (shown beside the simulation)" if sc.measured else
                  " · never measured"))
    clipped = sc.effects[sc.effects["clipped"] > 0] if "clipped" in sc.effects else sc.effects.iloc[0:0]
    if len(clipped):
        st.warning(f"The model's prediction fell below zero for {', '.join(clipped['gene'].head(8))}"
                   f"{'…' if len(clipped) > 8 else ''}: shown clipped at 0 (column *clipped*: the share of cells). "
                   "Expression cannot be negative; treat these numbers as 'switched off', not as precise levels.")
    weak_note = support_note(model, sc.spec)
    if weak_note:
        st.info(weak_note)
    ko_note = target_level_note(model, sc.spec)
    if ko_note:
        st.caption(ko_note)
    effects_tab, traj_tab, cells_tab = st.tabs(["Effects", "Trajectories", "Cells on the embedding"])
    with effects_tab:
        left, right = st.columns([3, 2])
        left.dataframe(sc.effects, hide_index=True, height=420,
                       column_config={c: st.column_config.NumberColumn(format="%.3f")
                                      for c in ("control", "perturbed", "mean_change", "log2_fold_change", "z_change",
                                                "clipped")})
        right.plotly_chart(plots.effect_figure(sc.effects, top=15), key="sim_effect_fig")
        right.caption("Blue: up, vermillion: down (the colours of every page); hatched: the perturbed genes.")
        a, b, c = st.columns([1, 1, 2])
        a.download_button("Effect table (CSV)", sc.effects.to_csv(index=False).encode(), on_click="ignore",
                          file_name=f"effects_{sc.spec.replace(':', '-').replace('+', '_')}.csv", mime="text/csv")
        name = c.text_input("Scenario name", value=sc.name, key=f"sim_name_{sc.spec}", label_visibility="collapsed")
        if b.button("Save scenario", key="sim_save"):
            sc.name = name or sc.spec
            state.simulations[sc.name] = sc
            st.success(f"Saved {sc.name} ({len(state.simulations)} saved).")
    with traj_tab:
        top = [g for g in sc.effects["gene"].head(4) if g in model.gene_names]
        show = st.multiselect("Genes", list(model.gene_names), default=list(dict.fromkeys(top)), key="sim_traj_genes")
        st.plotly_chart(plots.trajectory_figure(sc.times, sc.mean, sc.sd, model.gene_names, show,
                                                labels=(sc.reference, sc.spec)), key="sim_traj_fig")
    with cells_tab:
        emb = data_io.embedding(data, state.data_key, "pca", state.settings.max_plot_cells)
        st.plotly_chart(plots.moving_cells_figure(emb["coords"], emb["labels"], sc.coords[:, 1], sc.times,
                                                  control=data.control, measured=sc.measured, sim_label=sc.spec,
                                                  axis_names=emb["axes"]), key="sim_cells_fig")

# ---- comparison of saved scenarios
if state.simulations:
    st.subheader("Compare saved scenarios")
    names = list(state.simulations)
    chosen = st.multiselect("Scenarios", names, default=names[-2:],
                            key=f"sim_compare_{len(names)}")  # a new save resets the default
    if len(chosen) >= 2:
        value = st.radio("Effect", ["z_change", "mean_change", "log2_fold_change"], horizontal=True, key="sim_cmp_val")
        table = simulation.comparison_table(state.simulations, chosen, value)
        st.plotly_chart(plots.comparison_figure({n: state.simulations[n].effects for n in chosen}, value=value),
                        key="sim_cmp_fig")
        st.dataframe(table, hide_index=True, height=300)
        st.download_button("Comparison (CSV)", table.to_csv(index=False).encode(), file_name="scenario_comparison.csv",
                           mime="text/csv", on_click="ignore")
    else:
        st.caption("Save at least two scenarios to compare them.")
