"""Evaluate page: is the model any good, compared with simple baselines?

Answers three questions, always with the baselines beside the model: how well does the inferred
network recover a known one (built-in truth or an uploaded edge list)? how well are held-out
perturbations predicted (and which of the scored conditions did the model see)? how stable is
the network when training is repeated with other seeds?
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from perturbode_core import plots
from perturbode_core.io.edges import read_edge_list
from perturbode_core.tools import evaluate, grn
from perturbode_ui import evaluation
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

state = get_state()
st.title("Evaluate")

require_model(state)
model, data = state.model, state.data
genes = list(model.gene_names)
ev = state.evaluation  # this page's results (typed); cleared by the state when data or model change
# computing automatically is only worth it while it takes about a second
small = data.n_genes <= 300 and data.n_cells * data.n_genes <= 5_000_000


# ------------------------------------------------------------------------------------- network
st.header("Network against a known network")
with st.expander("Use your own known network (CSV: source,target[,sign])", expanded=state.truth is None):
    up = st.file_uploader("Known edges", type=["csv", "tsv", "txt"], key="ev_truth_upload")
    if up is not None and ev.truth_upload != (up.name, up.size):
        with user_errors("known network"):
            path = state.workdir / f"truth_{Path(up.name).name}"  # never a path from the client
            path.write_bytes(up.getvalue())
            # the known network belongs to the data: the Network page's overlay uses it too
            state.truth = read_edge_list(path)
            ev.truth_upload = (up.name, up.size)
            st.success(f"Loaded {len(state.truth)} known edges from {up.name}.")

if state.truth is None or len(state.truth) == 0:
    st.info("No known network for these data: upload one above to score the network. "
            "Held-out prediction and stability below do not need one.")
else:
    truth = state.truth
    c1, c2, c3 = st.columns([1.3, 1, 1])
    base_opts = list(evaluate.NETWORK_BASELINE_NAMES)
    chosen = c1.multiselect("Baselines", base_opts, default=base_opts if data.n_genes <= 300 else [b for b in base_opts if b != "genie3"],
                            key="ev_net_baselines", help="GENIE3 grows with genes × cells; it is slow on large data.")
    perturbed_only = c2.toggle("Only edges out of perturbed genes", key="ev_perturbed_only",
                               help="Score only regulators that were perturbed: the edges the data can speak to.")
    alpha_mode = c3.radio("Model network", ["plain", "jacobian"], horizontal=True, key="ev_alpha")
    regulators = sorted({iv.gene for ivs in data.interventions.values() for iv in ivs}) if perturbed_only else None
    truth_id = int(pd.util.hash_pandas_object(truth[["source", "target"]].astype(str), index=False).sum())
    key = (state.model_key, truth_id, tuple(chosen), perturbed_only, alpha_mode)
    if small or st.button("Score the network", key="ev_net_go") or ev.network_key == key:
        with user_errors("network metrics"), st.spinner("Scoring the model and the baselines…"):
            if ev.network_key != key:
                cells = data.control_cells() if alpha_mode == "jacobian" else None
                scores = grn.network_matrix(model, alpha_mode=alpha_mode, cells=cells)
                ev.network = evaluate.NetworkScore(
                    evaluate.network_comparison(scores, genes, truth, data=data, baselines=chosen, regulators=regulators,
                                                readings=evaluate.direct_reading(model, alpha_mode=alpha_mode,
                                                                                 cells=cells)),
                    truth_name=f"known network ({ev.truth_upload[0]})" if ev.truth_upload else "known network",
                    regulators_only=perturbed_only)
                ev.network_key = key
            table = ev.network.table
            st.caption(ev.network.note + " Dotted lines: a random predictor.")
            st.plotly_chart(plots.metric_bar_figure(table, metrics=evaluate.NETWORK_METRICS,
                                                    model_name=evaluate.MODEL_NAME, reference=table.attrs.get("random")),
                            key="ev_net_fig")
            st.dataframe(table, hide_index=True)
            st.download_button("Download network metrics (CSV)", table.to_csv(index=False).encode("utf-8"),
                               "network_metrics.csv", "text/csv", key="ev_net_dl", on_click="ignore",
                               icon=":material/download:")

# ---------------------------------------------------------------------------------- literature
st.header("Literature support")
st.caption("Where no network is known (real screens): the strongest edges out of TFs that CollecTRI and TRRUST "
           "(human, matched case-insensitively) know, checked against them, beside the same check when each "
           "TF's targets are shuffled keeping every gene's number of edges.")
with user_errors("literature support"):
    if ev.literature_key != state.model_key:
        ev.literature, ev.literature_key = evaluate.literature_check(model), state.model_key
    lit = ev.literature.table
    if lit.empty:
        st.info("Neither reference network has an edge between two of this model's genes (or its unmeasured "
                "regulators): there is nothing to check against.")
    else:
        st.caption(ev.literature.note)
        st.dataframe(lit, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "random_precision", "random_sd",
                                                                      "fold", "p_value", "sign_agreement")})

# ---------------------------------------------------------------------------------- prediction
st.header("Held-out prediction")
settings = state.model_settings
fitted, val = settings.seen_conditions(data) if settings is not None else (list(data.conditions), [])
unseen = settings.heldout_conditions(data) if settings is not None else []
default = unseen or val or data.perturbations[: max(1, len(data.perturbations) // 5)]
if settings is None or settings.train_conditions is None:
    st.warning(f"What {state.current_model} was trained on is not recorded: every condition counts as seen, so "
               "every score below is in-sample.")
elif unseen:
    st.info(f"**{state.current_model}** was trained without {len(unseen)} condition{'s' if len(unseen) > 1 else ''}: "
            f"**{', '.join(unseen)}** (held out). Only these test prediction; the other "
            f"{len(fitted) - 1} perturbations were fitted" + (f" and {len(val)} chose the best epoch" if val else "")
            + ".")
else:
    st.warning(f"**{state.current_model}** saw every condition of these data in training: any score below is "
               "in-sample (how well it fits), not a test. Train with held-out conditions to test prediction "
               "(command line: `perturbode train --holdout G1,G2`).")
heldout = st.multiselect("Conditions to predict", data.perturbations, default=default, key="ev_heldout",
                         help="Never-seen conditions are preselected; baselines learn from all other conditions.")
seen = [c for c in heldout if c in set(fitted)]
if seen:
    st.warning(f"The model was trained on {len(seen)} of these ({', '.join(seen[:5])}{'…' if len(seen) > 5 else ''}): "
               "their scores are in-sample, not a test.")
elif heldout and not unseen:
    st.caption("These are the model's validation conditions: not fitted, but used to pick the best epoch.")
if heldout:
    key = (state.model_key, tuple(heldout))
    if small or st.button("Score predictions", key="ev_pred_go") or ev.prediction_key == key:
        with user_errors("prediction metrics"), st.spinner("Predicting with the model and the baselines…"):
            if ev.prediction_key != key:
                ev.prediction = evaluate.score_predictions_of(model, data, heldout, settings=settings,
                                                              max_start_cells=state.settings.max_sim_cells)
                ev.prediction_key = key
            summary, per = ev.prediction.summary, ev.prediction.per_condition
            st.markdown(f"**{ev.prediction.title}**")
            st.caption(ev.prediction.note)
            st.caption("W2, energy, MMD and MSE: lower is better. Pearson Δ (correlation of predicted and observed "
                       "mean change vs control): higher is better.")
            st.plotly_chart(plots.metric_bar_figure(summary, metrics=["w2", "energy", "pearson_delta", "mse_mean"],
                                                    model_name=evaluate.MODEL_NAME), key="ev_pred_fig")
            st.dataframe(summary, hide_index=True)
            with st.expander("Per condition"):
                st.dataframe(per, hide_index=True)
            st.download_button("Download prediction metrics (CSV)", per.to_csv(index=False).encode("utf-8"),
                               "prediction_metrics.csv", "text/csv", key="ev_pred_dl", on_click="ignore",
                               icon=":material/download:")

# ----------------------------------------------------------------------------------- stability
st.header("Stability over seeds")
st.caption("Retrains the current settings with other seeds (in the background) and counts how often each edge "
           "is among every run's strongest. Edges found by every run are the ones to trust.")
c1, c2, c3 = st.columns(3)
n_seeds = c1.slider("Seeds", 2, 5, 3, key="ev_seeds")
base = settings.train_config if settings is not None and settings.train_config is not None else None
base_epochs = base.epochs if base is not None else 30
epochs = c2.number_input("Epochs per seed", 1, 10_000, min(base_epochs, 30), key="ev_seed_epochs")
top_k = c3.number_input("Edges per run", 1, max(1, len(genes) * (len(genes) - 1)),
                        min(len(genes) * 2, len(genes) * (len(genes) - 1)), key="ev_seed_topk")

runs = ev.seed_runs
running = runs is not None and any(j.running for j in runs.jobs)
b1, b2 = st.columns(2)
if b1.button("Train seeds", key="ev_seed_go", disabled=running, type="primary"):
    with user_errors("seed runs"):
        evaluation.start_seed_runs(state, n_seeds=n_seeds, epochs=int(epochs), top_k=int(top_k))
        st.rerun()
if running and b2.button("Stop seed runs", key="ev_seed_stop"):
    for j in runs.jobs:
        j.stop()


@st.fragment(run_every=2)
def _seed_progress():
    """Poll the seed runs; when all are finished, compute the stability summary once."""
    runs = ev.seed_runs
    if runs is None:
        return
    if any(j.running for j in runs.jobs):
        for j in runs.jobs:
            snap = j.snapshot()
            st.progress(snap.fraction, text=f"{j.label}: {snap.status} {snap.fraction:.0%}")
        return
    if ev.stability is None:
        with user_errors("stability"):
            evaluation.summarise_seed_runs(state)
        st.rerun(scope="app")


if running or (runs is not None and ev.stability is None):
    _seed_progress()

res = ev.stability
if res:
    for msg in res.get("failed", []):
        st.error(msg)
    if "consensus" in res:
        cons = res["consensus"]
        n = res["n_runs"]
        m1, m2 = st.columns(2)
        m1.metric("Edges in every run", int((cons["frequency"] >= 1 - 1e-9).sum()))
        m2.metric("Edges in any run", len(cons))
        counts = res["frequency_counts"]
        fig = plots.metric_bar_figure(pd.DataFrame([{"method": "edges", **{f"in {r} of {n}": e for r, e in
                                                                          zip(counts["runs"], counts["edges"])}}]),
                                      model_name="edges", title="How many runs found each edge")
        st.plotly_chart(fig, key="ev_stab_fig")
        if "spread" in res:
            st.markdown("**Network metrics over seeds** (mean ± sd)")
            st.dataframe(res["spread"])
        st.dataframe(cons, hide_index=True, column_config={
            "frequency": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")})
        st.download_button("Download consensus network (CSV)", cons.to_csv(index=False).encode("utf-8"),
                           "consensus_edges.csv", "text/csv", key="ev_stab_dl", on_click="ignore",
                           icon=":material/download:")
    elif not res.get("failed"):
        st.info("Fewer than two seed runs finished: nothing to evaluate.")
