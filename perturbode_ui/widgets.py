"""Small helpers shared by the pages: error display, guards, the sidebar status."""

from __future__ import annotations

import contextlib
import logging
import warnings

import streamlit as st

from perturbode_core.errors import PerturbODEError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def user_errors(context: str = ""):
    """Show a PerturbODEError as ``st.error`` (its one-line message; never a traceback).

    Unexpected exceptions are shown as a short error too (the traceback goes to the server log),
    so a page never ends in a traceback. Streamlit's own control flow (rerun / stop) passes
    through: it derives from BaseException.
    """
    try:
        yield
    except PerturbODEError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:
        log.exception("unexpected error%s", f" ({context})" if context else "")
        st.error(f"{context + ': ' if context else ''}Unexpected error: {type(exc).__name__}: {exc}",
                 icon=":material/error:")


@contextlib.contextmanager
def shown_warnings():
    """Collect Python warnings raised inside the block and show each with ``st.warning``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            st.warning(msg, icon=":material/warning:")


def require_data(state) -> None:
    """Stop the page with a pointer to the Data page when no dataset is loaded."""
    if state.data is None:
        st.info("No dataset is loaded. Pick a built-in dataset or upload one on the **Data** page.")
        st.page_link("pages/data_page.py", label="Go to Data", icon=":material/dataset:")
        st.stop()


def require_model(state) -> None:
    """Stop the page with a pointer to the Train page when no model fits the current data."""
    require_data(state)
    if state.model is None:
        st.info("No model for these data yet. Train one (or upload a checkpoint) on the **Train** page.")
        st.page_link("pages/train_page.py", label="Go to Train", icon=":material/model_training:")
        st.stop()


def remember(state, defaults: dict) -> None:
    """Widgets that keep the user's last value across pages.

    Streamlit forgets the value of a widget that a run does not draw (leave the Train page and
    its epochs are back to the default). Before the widgets are drawn, each key of ``defaults``
    gets its last value (kept in ``state.inputs``) or the default; the app saves the values at
    the end of every run (:func:`save_inputs`). Draw these widgets without ``value=`` / ``index=``:
    the value comes from here.
    """
    for key, default in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = state.inputs.get(key, default)
        state.inputs.setdefault(key, default)


def save_inputs(state) -> None:
    """Keep the current values of every remembered widget (called at the end of each run)."""
    for key in list(state.inputs):
        if key in st.session_state:
            state.inputs[key] = st.session_state[key]


def model_notice(state, where: str = "page") -> None:
    """The notice about the current model, with its way back (or the offered model) as a button."""
    notice = state.notice
    if notice is None:
        return
    with st.container(border=True):
        st.markdown(notice.text)
        cols = st.columns([1.4, 1.4, 1, 3])
        if notice.offer_model and notice.offer_model in state.models:
            if cols[0].button(f"Use {notice.offer_model}", key=f"{where}_notice_use", type="primary"):
                with user_errors("switch model"):
                    state.switch_model(notice.offer_model)
                    st.rerun()
        if notice.undo_model and notice.undo_model in state.models:
            if cols[1].button(f"Switch back to {notice.undo_model}", key=f"{where}_notice_undo"):
                with user_errors("switch model"):
                    state.switch_model(notice.undo_model)
                    st.rerun()
        if cols[2].button("Dismiss", key=f"{where}_notice_dismiss"):
            state.notice = None
            st.rerun()


def sidebar_status(state) -> None:
    """The shared sidebar: current dataset, model (with a quick switch) and training job."""
    with st.sidebar:
        st.markdown("**Dataset**")
        if state.data is not None:
            d = state.data
            st.caption(f"{state.dataset_name} · {d.n_cells:,} cells × {d.n_genes:,} genes · "
                       f"{len(d.perturbations)} perturbations")
        else:
            st.caption("none loaded")
        st.markdown("**Model**")
        entry = state.entry
        if entry is not None:
            # the number of modules only once the model is in memory: the first page never loads it
            detail = f" · {entry.model.n_modules} modules" if entry.loaded else ""
            st.caption(f"{entry.name} ({entry.source}){detail} · {len(state.models)} kept "
                       f"model{'s' if len(state.models) != 1 else ''}")
        else:
            st.caption("none for these data (train one, upload a checkpoint, or pick one on the Models page)")
        if state.notice is not None:
            st.caption(state.notice.text)
        _job_status(state)
        if state.startup_error:
            st.error(state.startup_error)


def _job_status(state) -> None:
    job = state.job
    if job is None:
        return
    if job.running:
        _job_progress_fragment(state)
    else:
        snap = job.snapshot()
        st.caption(f"Last training: {job.label} — {snap.status}")


@st.fragment(run_every=2)
def _job_progress_fragment(state) -> None:
    """Live progress of a running job in the sidebar (reruns only itself every 2 s)."""
    job = state.job
    if job is None:
        return
    snap = job.snapshot()
    if snap.status == "running":
        means = snap.progress is not None and snap.progress.phase == "means"
        what = "fitting the condition means" if means else "training"
        st.progress(snap.fraction, text=f"{job.label}: {what}, {snap.fraction:.0%}")
    else:
        # the job ended: rerun the whole app once so every page sees the new model
        if state.sync_job():
            st.rerun()
        st.caption(f"Last training: {job.label} — {snap.status}")
