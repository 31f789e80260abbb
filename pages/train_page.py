"""Train: options, an estimate, a background run with live progress and Stop, checkpoints in and out."""

import streamlit as st

from perturbode_core import plots
from perturbode_core.data.knockout_level import describe_knockdown_level, describe_knockout_level, knockdown_rule, measured_knockdown
from perturbode_core.data.shared_response import describe_offset
from perturbode_core.model import SOLVERS, ModelConfig
from perturbode_core.model.model_config import N_MODULES_RULE
from perturbode_core.train import TrainConfig
from perturbode_ui import training
from perturbode_ui.state import get_state
from perturbode_ui.widgets import model_notice, remember, require_data, user_errors

state = get_state()
st.title("Train")
require_data(state)
st.caption(f"Data: **{state.dataset_name}** · current model: **{state.current_model or 'none'}**. Training runs in "
           f"the background on the **{training.device_label()}**: use the other pages meanwhile. A finished run becomes "
           "the current model (the previous one is kept on the Models page); a stopped run is kept and offered.")
model_notice(state)

# the defaults are the core's (one owner: TrainConfig / ModelConfig), remembered across pages
d_model, d_train = ModelConfig(), TrainConfig()
remember(state, {"train_epochs": d_train.epochs, "train_lr": d_train.learning_rate, "train_modules": 0,
                 "train_l1": d_train.l1, "train_loss": d_train.loss, "train_cells": d_train.cells_per_condition,
                 "train_batch": d_train.batch_conditions, "train_val": float(d_train.val_fraction),
                 "train_seed": d_train.seed, "train_horizon": float(d_model.horizon), "train_solver": d_model.solver,
                 "train_step": float(d_model.step_size)})
c1, c2, c3, c4 = st.columns(4)
epochs = c1.number_input("Epochs", 1, 100000, key="train_epochs",
                         help="Passes over the training conditions in the cell phase, which follows the means phase "
                              f"({d_train.warmup_steps:,} steps fitting every condition's mean shift)")
lr = c1.number_input("Learning rate", 1e-5, 1.0, format="%.4f", key="train_lr",
                     help="Adam step size of the cell phase (the means phase uses "
                          f"{d_train.warmup_learning_rate:g}); long horizons want a smaller one")
modules = c1.number_input("Modules (0 = automatic)", 0, 4096, key="train_modules",
                          help=f"Hidden units K; {N_MODULES_RULE}")
l1 = c2.number_input("L1 weight", 0.0, 10.0, format="%.4f", key="train_l1",
                     help="Sparsity of the network; a few-fold too strong drives all weights to zero")
loss = c2.selectbox("Loss", ["w2", "sinkhorn"], key="train_loss",
                    help="Exact W2 (POT) or debiased Sinkhorn (large batches)")
cells = c2.number_input("Cells per condition", 2, 4096, key="train_cells", help="Cells sampled per condition and step")
batch = c3.number_input("Conditions per step", 1, 4096, key="train_batch",
                        help="Perturbed conditions per optimisation step (the control joins every step)")
val = c3.number_input("Validation fraction", 0.0, 0.9, step=0.05, key="train_val",
                      help="Share of perturbations held out to pick the best epoch (0: pick on training loss)")
seed = c3.number_input("Seed", 0, 2**31 - 1, key="train_seed", help="Seed of every random draw")
horizon = c4.number_input("Horizon T", 0.1, 1000.0, key="train_horizon",
                          help="Integration time in decay times 1/γ (10-20 reaches steady state)")
solver = c4.selectbox("Solver", SOLVERS, key="train_solver", help="Fixed-step rk4 is fast and accurate enough")
step = c4.number_input("Step size", 0.01, 10.0, key="train_step", help="Fixed-step size; keep it below 1/γ")
b1, b2, _ = st.columns([1.3, 1, 2.5])
do_estimate = b1.button("Estimate time & memory", key="train_estimate", use_container_width=True)
do_start = b2.button("Start training", type="primary", disabled=state.training, key="train_start",
                     use_container_width=True)
st.caption("A run first fits every condition's mean shift, then the cells. Runs differ by seed: for a consensus of "
           "several seeds with each edge's confidence, use Evaluate → Stability over seeds (command line: "
           "`perturbode train --seeds 3 --jobs 2`).")

with user_errors("training options"):
    model_config = ModelConfig(n_modules=int(modules) or None, horizon=float(horizon), solver=solver,
                               step_size=float(step))
    train_config = TrainConfig(epochs=int(epochs), learning_rate=float(lr), l1=float(l1), loss=loss,
                               cells_per_condition=int(cells), batch_conditions=int(batch), val_fraction=float(val),
                               seed=int(seed))
if do_estimate:
    with user_errors("estimate"), st.spinner("Timing a few training steps…"):
        state.train_estimate = training.estimate(state, model_config, train_config)
if state.train_estimate:
    e = state.train_estimate
    mem = f"**{e['memory']['total'] / 2**20:,.0f} MB** of memory for {e['n_modules']} modules"
    if e.get("seconds") is not None:
        secs = f"{e['seconds']:.1f}" if e["seconds"] < 10 else f"{e['seconds']:,.0f}"
        means = f"the condition means ({e['means_seconds']:.0f} s), then " if e.get("means_seconds") else ""
        st.info(f"Estimate: about **{secs} s**: {means}{e['steps']} cell steps of "
                f"{e['step_seconds'] * 1000:.0f} ms; {mem}.")
    else:
        st.info(f"Estimate: {mem}.")
if do_start:
    with user_errors("start"):
        training.start_training(state, model_config=model_config, train_config=train_config)
        st.rerun()  # a full rerun, so the sidebar shows the running job too


@st.fragment(run_every=1 if state.training else None)
def live():
    """Progress of the latest job (reruns itself every second while it runs)."""
    job = state.job
    if job is None:
        return
    snap = job.snapshot()
    p = snap.progress
    text = f"{job.label}: {snap.status}"
    if p is not None and p.phase == "means":  # phase one (epoch 0): the mean shift of every condition
        text += f" · fitting the condition means, step {p.step}/{p.steps_per_epoch} · mean error {p.loss:.4g}"
        if snap.status == "running" and p.eta is not None:
            text += f" · about {p.eta:.0f} s left in this phase, then {p.epochs} epochs on the cells"
    elif p is not None:
        text += f" · epoch {p.epoch}/{p.epochs} · loss {p.loss:.4g}"
        if snap.status == "running" and p.eta is not None:
            text += f" · about {p.eta:.0f} s left"
    st.progress(snap.fraction, text=text)
    if snap.status == "running":
        if st.button("Stop", key="train_stop", disabled=job.stop_requested,
                     help="Ends after the current step; the run's best model so far is kept and offered"):
            job.stop()
            st.caption("Stopping after the current step…")
    elif state.sync_job():
        st.rerun(scope="app")  # the run is kept: refresh the whole page and sidebar
    # the loss of the run while it runs (or when it failed); once it is a kept model, its history
    # is drawn once, below, when it is current
    if snap.history and snap.status in ("running", "failed"):
        st.plotly_chart(plots.loss_figure(snap.history, title="Loss during training"), key="live_loss")
    for event in snap.events[-3:]:
        st.warning(event)
    if snap.status == "failed":
        st.error(snap.error)
        if snap.checkpoint_path:
            a, b = st.columns(2)
            if a.button("Resume from the last checkpoint", key="train_resume_failed"):
                with user_errors("resume"):
                    training.start_training(state, resume=snap.checkpoint_path)
                    st.rerun()
            if b.button("Use its best model", key="train_recover"):
                with user_errors("recover"):
                    training.recover_failed(state)
                    st.rerun()


live()

st.subheader("Current model")
if state.model is None:
    st.info("No model yet: start a training run above, upload a checkpoint below, or pick a kept one on the "
            "Models page.")
else:
    st.caption(f"**{state.current_model}** · {state.model_source} · {state.model.n_genes} genes · "
               f"{state.model.n_modules} modules"
               + (f" · best epoch {state.model_settings.best_epoch}"
                  if state.model_settings and state.model_settings.best_epoch else "")
               + (f" · reproduces its training perturbations with median correlation "
                  f"{state.model.response_evidence.fit:.2f}"
                  if getattr(state.model, "response_evidence", None) is not None else "")
               + f" · {describe_offset(state.model.config.perturbation_offset)}"
               + (f" · {describe_knockout_level(state.model.config.knockout_level)}"
                  if state.model.config.knockout_level > 0 else "")
               + (f" · {describe_knockdown_level(knockdown_rule(state.model.config))}"
                  if measured_knockdown(state.model.config) else ""))
    if state.history is not None and len(state.history):
        st.plotly_chart(plots.loss_figure(state.history, title=f"Training history of {state.current_model}"),
                        key="history_loss")
    col1, col2 = st.columns(2)
    if state.checkpoint_path:
        # a callable: the file (tens of MB for big models) is read only when the button is clicked
        col1.download_button("Download checkpoint (model.pt)", state.checkpoint_bytes, file_name="model.pt",
                             mime="application/octet-stream", on_click="ignore", key="train_download")
    source = training.resumable_checkpoint(state)
    if source is not None and not state.training:
        more = col2.number_input("Resume: train up to epoch", 1, 100000, int(epochs), key="train_more_epochs",
                                 help="Continues the latest checkpoint exactly where it stopped, with its own options")
        if col2.button("Resume training", key="train_resume"):
            with user_errors("resume"):
                training.start_training(state, train_config=TrainConfig(epochs=int(more)), resume=source)
                st.rerun()

st.subheader("Load a checkpoint")
up = st.file_uploader("A model.pt from the command line or another session (must fit these data's genes)",
                      type=["pt"], key="train_upload")
if up is not None and st.button("Use this checkpoint", key="train_use_upload"):
    with user_errors("checkpoint"):
        training.load_uploaded_checkpoint(state, up.name, up.getvalue())
        st.success(f"Loaded {up.name}.")
        st.rerun()
