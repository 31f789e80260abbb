"""The one typed session state of the dashboard.

Every page reads and writes the same :class:`AppState`, stored in ``st.session_state`` under
:data:`STATE_KEY` and fetched with :func:`get_state`. Nothing a page computes lives in loose
session keys, so a rerun never recomputes what is already here, and two browser sessions never
share an object they could modify (built-in datasets are shared read only; each session builds
its own model).

Invalidation: :meth:`AppState.set_data` and :meth:`AppState.set_model` bump ``data_version`` /
``model_version`` and clear the results derived from them (simulations, enrichment, evaluation,
network caches). Pages that cache derived results key them on :attr:`AppState.model_key`.

Each session has a private temporary folder (``workdir``) for checkpoints and uploads; it is
deleted, and a running training job is stopped, when the session's state is garbage collected.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

#: Key of the AppState in st.session_state.
STATE_KEY = "perturbode_app_state"


@dataclass
class Settings:
    """Server-side settings of a session (defaults from the environment).

    Attributes
    ----------
    allowed_data_dir
        Server-side paths outside this folder are refused (``PERTURBODE_DATA_DIR``). When unset,
        any path is allowed only while the app is served on localhost.
    max_plot_cells
        Cells drawn in embeddings (a seeded subsample above this).
    max_sim_cells
        Start cells of a simulation (a seeded subsample above this).
    embedding
        ``pca`` (fast, default) or ``umap`` for the data page.
    """

    allowed_data_dir: str | None = field(default_factory=lambda: os.environ.get("PERTURBODE_DATA_DIR") or None)
    max_plot_cells: int = 5000
    max_sim_cells: int = 300
    embedding: str = "pca"


@dataclass
class Scenario:
    """A saved simulation (what the Simulate page ran, and its results)."""

    name: str
    spec: str                          # perturbation spec, e.g. "GATA1:knockout+SPI1:overexpression=2"
    start: str                         # description of the start cells ("all control cells", "cell_type = B")
    horizon: float
    n_cells: int
    effects: pd.DataFrame              # simulate.effect_table output
    times: object = None               # (T,) model times
    mean: object = None                # (T, 2, p): control and perturbed mean over cells
    sd: object = None                  # (T, 2, p)
    coords: object = None              # (T, 2, n, 2): PCA coordinates of the simulated cells
    measured: str | None = None        # the measured condition matching the spec, if any
    seconds: float = 0.0


@dataclass
class ModuleResults:
    """What the Modules page computed for the current model (the Report includes it)."""

    summary: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    network_figure: object = None
    enrichment: pd.DataFrame | None = None   # tools.enrichment.enrich_modules output
    library: str = ""
    match: str = ""                          # how many model genes the library knows, in words
    dotplot: object = None


@dataclass
class NetworkView:
    """What the Network page shows (the Report reuses the same cut), and its G cache."""

    edges: pd.DataFrame | None = None
    figure: object = None
    alpha_mode: str = "plain"
    focus: str | None = None
    matrices: dict = field(default_factory=dict)  # (model_key, alpha_mode) -> G


@dataclass
class SeedRuns:
    """Background reruns of the current settings with other seeds (Evaluate page)."""

    key: str
    jobs: list
    top_k: int


@dataclass
class EvaluationResults:
    """What the Evaluate page scored for the current model: typed core results, so the Report
    page reads the same objects (with their held-out / in-sample labels) and never a page's dict."""

    network: object | None = None        # tools.evaluate.NetworkScore
    network_key: tuple | None = None
    prediction: object | None = None     # tools.evaluate.PredictionScore
    prediction_key: tuple | None = None
    seed_runs: SeedRuns | None = None
    stability: dict | None = None        # tools.evaluate.stability_summary (+ "failed")
    literature: object | None = None     # tools.evaluate.LiteratureScore
    literature_key: str | None = None
    truth_upload: tuple | None = None    # (file name, size) of the uploaded known network


_counter = itertools.count(1)


class _Resources:
    """What a session owns outside Python objects: its temp folder and its jobs (for cleanup)."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="perturbode-session-")
        self.jobs: list = []

    def close(self):
        for job in self.jobs:
            try:
                job.stop()
            except Exception:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class AppState:
    """Everything one browser session works on.

    Attributes
    ----------
    data
        The current :class:`~perturbode_core.data.dataset.PerturbationData` (None before any is loaded).
    dataset_name, dataset_source
        Its name and where it came from (``builtin``, ``upload``, ``path``).
    truth
        Known network of the data (DataFrame ``source, target[, sign]``) or None.
    data_messages
        Warnings raised while loading the data (shown on the Data page).
    model
        The current :class:`~perturbode_core.model.field.PerturbODE` (None when none fits the data).
    model_source
        Where it came from ("demo checkpoint", "trained (run 2)", "uploaded model.pt", ...).
    checkpoint_path
        A checkpoint file of the current model in the session's private folder (for download,
        resume and the report), or None.
    history
        Per-epoch training history (DataFrame) of the current model, or None.
    model_settings
        What the current model was trained with
        (:class:`~perturbode_core.io.checkpoint.TrainedSettings`), or None when unknown.
    job
        The latest :class:`~perturbode_ui.jobs.TrainingJob` (running or finished), or None.
    job_adopted
        Whether the latest job's result has become the current model.
    simulations
        Saved scenarios by name (:class:`Scenario`): what the Report includes.
    last_simulation
        The latest run of the Simulate page (saved into ``simulations`` on request).
    modules, evaluation, network
        Results of the Modules (:class:`ModuleResults`), Evaluate (:class:`EvaluationResults`) and
        Network (:class:`NetworkView`) pages; the Report reads them.
    report
        Built report (bytes) and its options (owned by the Report page).
    settings
        :class:`Settings`.
    data_version, model_version
        Counters bumped on every change of data / model.
    pending
        An uploaded or path-read AnnData waiting for the user to confirm its columns.
    upload
        The last uploaded data file seen (``id``) and its error, so a file is read once, not at
        every rerun.
    run_count
        Training runs started in this session (names the run folders and labels).
    train_estimate
        The last time / memory estimate of the Train page.
    """

    data: object | None = None
    dataset_name: str = ""
    dataset_source: str = ""
    truth: pd.DataFrame | None = None
    data_messages: list[str] = field(default_factory=list)
    model: object | None = None
    model_source: str = ""
    checkpoint_path: str | None = None
    history: pd.DataFrame | None = None
    model_settings: object | None = None
    job: object | None = None
    job_adopted: bool = False
    simulations: dict = field(default_factory=dict)
    last_simulation: Scenario | None = None
    modules: ModuleResults = field(default_factory=ModuleResults)
    evaluation: EvaluationResults = field(default_factory=EvaluationResults)
    network: NetworkView = field(default_factory=NetworkView)
    report: dict = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    data_version: int = 0
    model_version: int = 0
    pending: dict | None = None
    upload: dict = field(default_factory=dict)
    run_count: int = 0
    train_estimate: dict | None = None
    session_id: int = field(default_factory=lambda: next(_counter))
    startup_error: str | None = None

    def __post_init__(self):
        self._resources = _Resources()
        # when the session ends and its state is collected: stop its job, delete its files
        self._finalizer = weakref.finalize(self, _Resources.close, self._resources)

    # ------------------------------------------------------------------ keys and folders
    @property
    def workdir(self) -> Path:
        """The session's private temporary folder (created on demand; deleted with the session)."""
        path = Path(self._resources.workdir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def data_key(self) -> str:
        """Changes whenever the data change (use it to key caches of data-derived results)."""
        return f"s{self.session_id}-d{self.data_version}"

    @property
    def model_key(self) -> str:
        """Changes whenever the data or the model change."""
        return f"s{self.session_id}-d{self.data_version}-m{self.model_version}"

    @property
    def has_data(self) -> bool:
        return self.data is not None

    @property
    def has_model(self) -> bool:
        return self.model is not None

    @property
    def training(self) -> bool:
        return self.job is not None and self.job.running

    # ------------------------------------------------------------------ changes
    def set_data(self, data, *, name: str, source: str, truth: pd.DataFrame | None = None,
                 messages: list[str] | None = None) -> None:
        """Make ``data`` current; the model stays only if it was trained on the same genes."""
        self.data = data
        self.dataset_name = name
        self.dataset_source = source
        self.truth = truth
        self.data_messages = list(messages or [])
        self.data_version += 1
        self.pending = None
        self._clear_derived()
        if self.model is not None and list(self.model.gene_names) != list(data.gene_names):
            self.model = None
            self.model_source = ""
            self.checkpoint_path = None
            self.history = None
            self.model_settings = None
            self.model_version += 1

    def set_model(self, model, *, source: str, checkpoint_path: str | Path | None = None,
                  history: pd.DataFrame | None = None, settings=None) -> None:
        """Make ``model`` current (the caller has checked that its genes fit the data)."""
        self.model = model
        self.model_source = source
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.history = history if history is None or len(history) else None
        self.model_settings = settings
        self.model_version += 1
        self._clear_derived()

    def set_checkpoint(self, ckpt, *, source: str) -> None:
        """Make a loaded :class:`~perturbode_core.io.checkpoint.Checkpoint` the current model."""
        self.set_model(ckpt.model, source=source, checkpoint_path=ckpt.path, history=ckpt.history,
                       settings=ckpt.settings)

    def _clear_derived(self) -> None:
        self.simulations = {}
        self.last_simulation = None
        self.modules = ModuleResults()
        self.evaluation = EvaluationResults()
        self.network = NetworkView()
        self.report = {}

    def new_run_dir(self, prefix: str = "run") -> Path:
        """A fresh folder for a training run inside the session's private folder."""
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.workdir))

    def start_job(self, job) -> None:
        """Start a :class:`~perturbode_ui.jobs.TrainingJob` as the session's current job."""
        if self.training:
            raise RuntimeError("A training job is already running; stop it first")
        self.job = job
        self.job_adopted = False
        self._resources.jobs = [j for j in self._resources.jobs if j.running] + [job]
        job.start()

    def sync_job(self) -> bool:
        """Adopt a finished (done or stopped) job's model as the current model, once.

        Returns True when the model changed. A failed job is not adopted: its last checkpoint
        stays in :attr:`job` for resume or download (see the Train page).
        """
        job = self.job
        if job is None or self.job_adopted or job.status not in ("done", "stopped"):
            return False
        result = job.result
        self.job_adopted = True
        if result is None or self.data is None or list(result.model.gene_names) != list(self.data.gene_names):
            return False
        label = f"trained ({job.label}{', stopped early' if job.status == 'stopped' else ''})"
        ckpt = job.checkpoint_path if Path(job.checkpoint_path).exists() else None
        self.set_model(result.model, source=label, checkpoint_path=ckpt, history=result.history,
                       settings=result.settings)
        return True

    def checkpoint_bytes(self) -> bytes | None:
        """The current model's checkpoint file as bytes (for download), or None."""
        if self.checkpoint_path and Path(self.checkpoint_path).exists():
            return Path(self.checkpoint_path).read_bytes()
        return None

    def close(self) -> None:
        """Stop the job and delete the session's files now (also done automatically on collection)."""
        self._finalizer()


def load_demo(state: AppState, name: str | None = None) -> None:
    """Load a built-in dataset and its trained demo checkpoint into ``state`` (default: the demo
    shown on first start)."""
    from perturbode_core.io.checkpoint import load_checkpoint

    from perturbode_ui import loaders

    name = name or loaders.demo_dataset()
    data, truth, messages = loaders.load_builtin(name)
    state.set_data(data, name=name, source="builtin", truth=truth, messages=messages)
    path = state.workdir / f"{name}_demo_model.pt"
    path.write_bytes(loaders.demo_checkpoint_bytes(name))
    state.set_checkpoint(load_checkpoint(path, genes=data.gene_names, where="demo checkpoint"),
                         source="demo checkpoint")


def get_state() -> AppState:
    """The session's :class:`AppState`, created (with the demo loaded) on first use."""
    import streamlit as st

    state = st.session_state.get(STATE_KEY)
    if state is None:
        state = AppState()
        try:
            load_demo(state)
        except Exception as exc:  # the app must open even if the demo cannot be prepared
            log.exception("demo could not be loaded")
            state.startup_error = f"The demo could not be loaded ({type(exc).__name__}: {exc}). Load a dataset below."
        st.session_state[STATE_KEY] = state
    return state
