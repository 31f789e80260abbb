"""Evaluate page: is the model any good, compared with simple baselines?

Answers three questions, always with the baselines beside the model: how well does the inferred
network recover a known one (built-in truth or an uploaded edge list)? how well are held-out
perturbations predicted? how stable is the network when training is repeated with other seeds?
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from perturbode_core import plots
from perturbode_core.tools import grn
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

state = get_state()
st.title("Evaluate")

try:  # metrics and baselines are separate core parts; explain instead of failing if one is missing
    from perturbode_core.tools import evaluate as compare
    from perturbode_core.tools.metrics import read_edge_list
except Exception as exc:  # noqa: BLE001
    st.info(f"Evaluation is not available in this installation ({type(exc).__name__}: {exc}).")
    st.stop()

require_model(state)
model, data = state.model, state.data
genes = list(model.gene_names)
ev = state.evaluation  # this page's results; cleared by the state when data or model change
# computing automatically is only worth it while it takes about a second
small = data.n_genes <= 300 and data.n_cells * data.n_genes <= 5_000_000


def _run_once(name: str, key, fn):
    """Run ``fn`` when ``key`` differs from the stored result's key (reruns reuse the result)."""
    if ev.get(name, {}).get("key") != key:
        ev[name] = {"key": key, "value": fn()}
    return ev[name]["value"]


# ------------------------------------------------------------------------------------- network
st.header("Network against a known network")
with st.expander("Use your own known network (CSV: source,target[,sign])", expanded=state.truth is None):
    up = st.file_uploader("Known edges", type=["csv", "tsv", "txt"], key="ev_truth_upload")
    if up is not None and ev.get("truth_upload") != (up.name, up.size):
        with user_errors("known network"):
            path = state.workdir / f"truth_{Path(up.name).name}"  # never a path from the client
            path.write_bytes(up.getvalue())
            # the known network belongs to the data: the Network page's overlay uses it too
            state.truth = read_edge_list(path)
            ev["truth_upload"] = (up.name, up.size)
            ev["truth_name"] = up.name
            st.success(f"Loaded {len(state.truth)} known edges from {up.name}.")

if state.truth is None or len(state.truth) == 0:
    st.info("No known network for these data: upload one above to score the network. "
            "Held-out prediction and stability below do not need one.")
else:
    truth = state.truth
    c1, c2, c3 = st.columns([1.3, 1, 1])
    base_opts = ["correlation", "knockout_zscore", "genie3"]
    chosen = c1.multiselect("Baselines", base_opts, default=base_opts if data.n_genes <= 300 else base_opts[:2],
                            key="ev_net_baselines", help="GENIE3 grows with genes × cells; it is slow on large data.")
    perturbed_only = c2.toggle("Only edges out of perturbed genes", key="ev_perturbed_only",
                               help="Score only regulators that were perturbed: the edges the data can speak to.")
    alpha_mode = c3.radio("Model network", ["plain", "jacobian"], horizontal=True, key="ev_alpha")
    regulators = sorted({iv.gene for ivs in data.interventions.values() for iv in ivs}) if perturbed_only else None
    truth_id = int(pd.util.hash_pandas_object(truth[["source", "target"]].astype(str), index=False).sum())
    key = (state.model_key, truth_id, tuple(chosen), perturbed_only, alpha_mode)
    if small or st.button("Score the network", key="ev_net_go") or ev.get("network", {}).get("key") == key:
        with user_errors("network metrics"), st.spinner("Scoring the model and the baselines…"):
            table = _run_once("network", key, lambda: compare.network_comparison(
                grn.grn_matrix(model, alpha_mode=alpha_mode, cells=data.control_cells() if alpha_mode == "jacobian" else None),
                genes, truth, data=data, baselines=chosen, regulators=regulators))
            st.caption(f"{int(table['n_true_edges'].iloc[0])} known edges among {int(table['n_candidates'].iloc[0])} "
                       f"candidate pairs (random AUPR = edge density = {table['edge_density'].iloc[0]:.3f}). "
                       "Dotted lines: a random predictor.")
            st.plotly_chart(plots.metric_bar_figure(table, metrics=compare.NETWORK_METRICS,
                                                    model_name=compare.MODEL_NAME, reference=table.attrs.get("random")),
                            key="ev_net_fig")
            st.dataframe(table, hide_index=True)
            st.download_button("Download network metrics (CSV)", table.to_csv(index=False).encode("utf-8"),
                               "network_metrics.csv", "text/csv", key="ev_net_dl", on_click="ignore",
                               icon=":material/download:")

# ---------------------------------------------------------------------------------- prediction
st.header("Held-out prediction")
bundle_info = ev.get("trained_conditions")
if bundle_info is None or bundle_info[0] != state.model_key:
    info = {}
    try:  # the checkpoint says which conditions the model was fitted on and validated with
        if state.checkpoint_path:
            from perturbode_core.io import checkpoint

            info = checkpoint.load_checkpoint(state.checkpoint_path)
    except Exception:  # noqa: BLE001 - fall back to the settings kept in the session
        info = {}
    if not info.get("train_state"):
        info = {"train_state": {"train_conditions": state.train_settings.get("train_conditions"),
                                "val_conditions": state.train_settings.get("val_conditions")}}
    bundle_info = (state.model_key, compare.trained_conditions(info, data))
    ev["trained_conditions"] = bundle_info
trained, val = bundle_info[1]
unseen = [c for c in data.perturbations if c not in set(trained)]
default = unseen or val or data.perturbations[: max(1, len(data.perturbations) // 5)]
heldout = st.multiselect("Conditions to predict", data.perturbations, default=default, key="ev_heldout",
                         help="Never-seen conditions are preselected; baselines learn from all other conditions.")
seen = [c for c in heldout if c in set(trained) and c not in set(val)]
if seen:
    st.warning(f"The model was trained on {len(seen)} of these ({', '.join(seen[:5])}{'…' if len(seen) > 5 else ''}): "
               "their scores are in-sample, not a test.")
elif heldout and not unseen:
    st.caption("These are the model's validation conditions: not fitted, but used to pick the best epoch.")
if heldout:
    key = (state.model_key, tuple(heldout))
    if small or st.button("Score predictions", key="ev_pred_go") or ev.get("prediction", {}).get("key") == key:
        with user_errors("prediction metrics"), st.spinner("Predicting with the model and the baselines…"):
            summary, per = _run_once("prediction", key, lambda: compare.prediction_comparison(
                model, data, heldout, max_start_cells=state.settings.max_sim_cells))
            st.caption("W2, energy, MMD and MSE: lower is better. Pearson Δ (correlation of predicted and observed "
                       "mean change vs control): higher is better.")
            st.plotly_chart(plots.metric_bar_figure(summary, metrics=["w2", "energy", "pearson_delta", "mse_mean"],
                                                    model_name=compare.MODEL_NAME), key="ev_pred_fig")
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
base_epochs = int((state.train_settings.get("train") or {}).get("epochs") or 30)
epochs = c2.number_input("Epochs per seed", 1, 10_000, min(base_epochs, 30), key="ev_seed_epochs")
top_k = c3.number_input("Edges per run", 1, max(1, len(genes) * (len(genes) - 1)), min(len(genes) * 2, len(genes) * (len(genes) - 1)),
                        key="ev_seed_topk")


def _start_seed_jobs():
    from perturbode_core.model.field import ModelConfig
    from perturbode_core.train.loop import TrainConfig
    from perturbode_ui.jobs import TrainingJob

    mc = ModelConfig.from_dict(state.train_settings["model"]) if state.train_settings.get("model") else model.config
    tc = dict(state.train_settings.get("train") or {})
    jobs = []
    for s in range(n_seeds):
        cfg = TrainConfig.from_dict({**tc, "epochs": int(epochs), "seed": 1000 + s})
        job = TrainingJob(data, checkpoint_path=state.new_run_dir(f"seed{s}") / "model.pt", model_config=mc,
                          train_config=cfg, label=f"seed {1000 + s}")
        jobs.append(job.start())
    ev["stability_jobs"] = {"key": state.model_key, "jobs": jobs, "top_k": int(top_k)}
    ev.pop("stability", None)


jobs_info = ev.get("stability_jobs")
running = bool(jobs_info) and any(j.running for j in jobs_info["jobs"])
b1, b2 = st.columns(2)
if b1.button("Train seeds", key="ev_seed_go", disabled=running, type="primary"):
    with user_errors("seed runs"):
        _start_seed_jobs()
        st.rerun()
if running and b2.button("Stop seed runs", key="ev_seed_stop"):
    for j in jobs_info["jobs"]:
        j.stop()


@st.fragment(run_every=2)
def _seed_progress():
    """Poll the seed runs; when all are finished, compute the stability summary once."""
    info = ev.get("stability_jobs")
    if not info:
        return
    snaps = [j.snapshot() for j in info["jobs"]]
    if any(s.status == "running" for s in snaps):
        for j, s in zip(info["jobs"], snaps):
            st.progress(s.fraction, text=f"{j.label}: {s.status} {s.fraction:.0%}")
        return
    if "stability" not in ev:
        ok = [j for j in info["jobs"] if j.result is not None]
        failed = [f"{j.label}: {j.error}" for j in info["jobs"] if j.status == "failed"]
        ev["stability"] = {"failed": failed}
        if len(ok) >= 2:
            with user_errors("stability"):
                ev["stability"].update(compare.stability_summary([grn.grn_matrix(j.result.model) for j in ok], genes,
                                                                 truth=state.truth, top_k=info["top_k"]))
        st.rerun(scope="app")


if running:
    _seed_progress()
elif jobs_info and "stability" not in ev:
    _seed_progress()  # finished between reruns: summarise now

res = ev.get("stability")
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
        st.info("Fewer than two seed runs finished: nothing to compare.")
