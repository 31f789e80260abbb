"""Models: every model of the session (demo, trained, stopped, recovered, uploaded), kept until deleted.

Answers "which model am I looking at, and how do two of them differ?": the list with dataset,
settings, epochs and time; one current model (switch), rename, delete, download; two models side
by side (their networks and their scores on the same conditions).
"""

import pandas as pd
import streamlit as st

from perturbode_core import plots
from perturbode_core.tools import evaluate, grn
from perturbode_core.tools.model_comparison import compare_networks, shared_heldout
from perturbode_ui.state import get_state
from perturbode_ui.widgets import model_notice, require_data, user_errors

state = get_state()
st.title("Models")
require_data(state)
st.caption("Every model you train, stop, recover or upload is kept here under a name until you delete it. "
           "One is current: the other pages show it.")
model_notice(state, where="models")

if not state.models:
    st.info("No models yet: train one on the Train page or upload a checkpoint there.")
    st.stop()

fitting = set(state.fitting_models())
rows = []
for name, entry in state.models.items():
    row = entry.summary()
    row["current"] = "●" if name == state.current_model else ""
    row["fits these data"] = name in fitting
    rows.append(row)
table = pd.DataFrame(rows)[["current", "name", "dataset", "source", "genes", "modules", "epochs", "best epoch",
                            "learning rate", "l1", "seed", "added", "fits these data"]]
st.dataframe(table, hide_index=True)

names = list(state.models)
# keyed on the names: after a rename or a delete the choice starts again from the current model
pick = st.selectbox("Model", names, index=names.index(state.current_model) if state.current_model in names else 0,
                    key=f"models_pick_{abs(hash(tuple(names)))}")
entry = state.models[pick]
held = entry.settings.heldout_conditions(state.data) if entry.settings is not None and pick in fitting else []
st.caption(f"{entry.source} · trained on {entry.dataset or 'unknown data'}"
           + (f" · never shown: {', '.join(held)}" if held else ""))
c1, c2, c3, c4 = st.columns([1, 1.6, 1, 1])
if c1.button("Make current", key="models_switch", type="primary", disabled=pick == state.current_model
             or pick not in fitting, help="Only a model trained on these data's genes can be current"):
    with user_errors("switch model"):
        state.switch_model(pick)
        st.rerun()
new_name = c2.text_input("New name", value=pick, key=f"models_rename_{entry.id}", label_visibility="collapsed")
if c3.button("Rename", key="models_rename_go", disabled=new_name.strip() == pick):
    with user_errors("rename"):
        state.rename_model(pick, new_name)
        st.rerun()
if c4.button("Delete", key="models_delete", help="Forget this model and its checkpoint file"):
    state.delete_model(pick)
    st.rerun()
payload = entry.checkpoint_bytes
if entry.checkpoint_path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in pick)
    st.download_button(f"Download {pick} (model.pt)", payload, file_name=f"{safe}.pt",
                       mime="application/octet-stream", on_click="ignore", key="models_download",
                       icon=":material/download:")

# ---------------------------------------------------------------------------------- compare two
st.header("Compare two models")
comparable = [n for n in names if n in fitting]
if len(comparable) < 2:
    st.info("Two models trained on these data are needed: train another (e.g. other settings or seed).")
    st.stop()
a_col, b_col, k_col = st.columns([1, 1, 1])
a = a_col.selectbox("Model A", comparable, index=0, key="models_cmp_a")
b = b_col.selectbox("Model B", [n for n in comparable if n != a], index=0, key="models_cmp_b")
ea, eb = state.models[a], state.models[b]
p = state.data.n_genes
top_k = int(k_col.number_input("Edges per model", 1, max(1, p * (p - 1)), min(2 * p, p * (p - 1)), key="models_cmp_k"))
cmp = state.comparison
key = (state.data_key, ea.id, eb.id, top_k)
if cmp.key != key:
    with user_errors("comparison"), st.spinner("Comparing the networks…"):
        cmp.names, cmp.key = (a, b), key
        # the networks as the Network page ranks them (each model's default reading)
        cmp.network = compare_networks(grn.network_matrix(ea.model), grn.network_matrix(eb.model), state.data.gene_names,
                                       top_k=top_k, names=(a, b))
        cmp.predictions = {}
net = cmp.network
if net is not None:
    m = st.columns(4)
    m[0].metric("Shared edges (Jaccard)", f"{net.jaccard:.2f}")
    m[1].metric("Same sign among shared", "–" if pd.isna(net.sign_agreement) else f"{net.sign_agreement:.0%}")
    m[2].metric("Correlation of the edge scores", "–" if pd.isna(net.correlation) else f"{net.correlation:.2f}")
    m[3].metric("Edges in either", len(net.edges))
    left, right = st.columns(2)
    for col, entry_, name in ((left, ea, a), (right, eb, b)):
        with col:
            st.markdown(f"**{name}**")
            edges = grn.model_edges(entry_.model, top_k=min(top_k, 200))
            st.plotly_chart(plots.network_figure(edges, title=None, height=480), key=f"models_cmp_fig_{name}")
    st.dataframe(net.edges, hide_index=True, height=260,
                 column_config={c: st.column_config.NumberColumn(format="%+.3f") for c in ("weight_a", "weight_b")})
    st.download_button("Download the edge comparison (CSV)", net.edges.to_csv(index=False).encode("utf-8"),
                       "model_comparison_edges.csv", "text/csv", key="models_cmp_dl", on_click="ignore",
                       icon=":material/download:")

st.subheader("Held-out scores side by side")
both = shared_heldout(ea.settings, eb.settings, state.data)
conditions = st.multiselect("Conditions to predict", state.data.perturbations, default=both,
                            key=f"models_cmp_conds_{ea.id}_{eb.id}",
                            help="Preselected: the conditions neither model saw (the fair test of both).")
if not both:
    st.caption("No condition was held out from both models: any choice is in-sample for at least one of them "
               "(each model's row says which).")
if conditions and st.button("Score both", key="models_cmp_score"):
    with user_errors("scores"), st.spinner("Predicting with both models…"):
        for name, entry_ in ((a, ea), (b, eb)):
            cmp.predictions[name] = evaluate.score_predictions_of(entry_.model, state.data, conditions,
                                                                  settings=entry_.settings,
                                                                  max_start_cells=state.settings.max_sim_cells)
if cmp.predictions:
    rows = []
    for name, score in cmp.predictions.items():
        model_row = score.summary[score.summary["method"] == evaluate.MODEL_NAME].iloc[0]
        rows.append({"model": name, "what it is": score.title,
                     **{k: model_row[k] for k in ("w2", "energy", "pearson_delta", "mse_mean") if k in model_row}})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    for name, score in cmp.predictions.items():
        st.caption(f"**{name}**: {score.note}")
