"""The one typed session state of the dashboard.

Every page reads and writes the same :class:`AppState`, stored in ``st.session_state`` under
:data:`STATE_KEY` and fetched with :func:`get_state`. Nothing a page computes lives in loose
session keys, so a rerun never recomputes what is already here, and two browser sessions never
share an object they could modify (built-in datasets are shared read only; each session builds
its own model).

Models are first-class: every model trained, stopped, recovered, uploaded or shipped as a demo is
kept in :attr:`AppState.models` (a :class:`ModelEntry` under a name) until the user deletes it;
one is current (:attr:`AppState.current_model`, read through :attr:`AppState.model`). A finished
run becomes current with a way back (:attr:`AppState.notice`); a stopped run is kept and offered,
never imposed. Models for other genes stay in the list while other data are loaded.

Invalidation: :meth:`AppState.set_data` and a change of the current model bump ``data_version`` /
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
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # annotations only: the first page draws before pandas is imported
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
    reference: str = "control"         # what the effects are measured against (a kept start perturbation)


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
    reading: str = "combined"
    matrices: dict = field(default_factory=dict)  # (model_key, alpha_mode, reading) -> (scores, G)


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


@dataclass
class ScreenRuns:
    """What the Screen page ran for the current model (the Report includes the saved ones)."""

    last: object | None = None                   # tools.insilico_screen.ScreenResult
    saved: dict = field(default_factory=dict)    # name -> ScreenResult


@dataclass
class ModelComparison:
    """Two models side by side (Models page): their names, the key they were computed for, results."""

    names: tuple[str, str] | None = None
    key: tuple | None = None
    network: object | None = None        # tools.model_comparison.NetworkComparison
    predictions: dict = field(default_factory=dict)  # model name -> tools.evaluate.PredictionScore


@dataclass
class Notice:
    """A message about the current model that stays until dismissed, with an optional way back."""

    text: str
    undo_model: str | None = None        # switch back to this model
    offer_model: str | None = None       # a model offered (a stopped run), not made current


_model_ids = itertools.count(1)


@dataclass
class ModelEntry:
    """A model kept in the session under a name until the user deletes it.

    The model, its history and settings may be loaded on first use (``loader``): the demo's
    checkpoint is read only when a page needs the model, so the first page never waits for torch.

    Attributes
    ----------
    name
        Unique within the session; the user may rename it.
    source
        Where it came from ("demo checkpoint", "trained (run 2)", "trained (run 3, stopped early)",
        "uploaded model.pt").
    dataset
        The dataset it was trained on or loaded with.
    checkpoint_path
        Its checkpoint file in the session's folder (download, resume, report), or None.
    created
        When it entered the session (seconds since the epoch).
    status
        ``demo``, ``done``, ``stopped``, ``recovered``, ``uploaded`` or ``added``.
    """

    name: str
    source: str
    dataset: str = ""
    checkpoint_path: str | None = None
    created: float = field(default_factory=time.time)
    status: str = "added"
    loader: Callable | None = None       # () -> Checkpoint, for a lazily loaded entry
    id: int = field(default_factory=lambda: next(_model_ids))
    _model: object | None = None
    _history: pd.DataFrame | None = None
    _settings: object | None = None

    @classmethod
    def of(cls, model, *, name: str, source: str, dataset: str = "", checkpoint_path=None, history=None,
           settings=None, status: str = "added") -> "ModelEntry":
        """An entry for a model already in memory."""
        return cls(name=name, source=source, dataset=dataset,
                   checkpoint_path=None if checkpoint_path is None else str(checkpoint_path), status=status,
                   _model=model, _history=history if history is None or len(history) else None, _settings=settings)

    def _ensure(self) -> None:
        if self._model is None and self.loader is not None:
            ckpt = self.loader()
            self.loader = None
            self._model, self._settings = ckpt.model, ckpt.settings
            self._history = ckpt.history if ckpt.history is not None and len(ckpt.history) else None
            self.checkpoint_path = str(ckpt.path)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (False for a lazy entry not used yet)."""
        return self._model is not None

    @property
    def model(self):
        """The :class:`~perturbode_core.model.field.PerturbODE` (loaded on first use)."""
        self._ensure()
        return self._model

    @property
    def history(self) -> pd.DataFrame | None:
        """Per-epoch training history, or None."""
        self._ensure()
        return self._history

    @property
    def settings(self):
        """What it was trained with (:class:`~perturbode_core.io.checkpoint.TrainedSettings`), or None."""
        self._ensure()
        return self._settings

    @property
    def gene_names(self) -> list[str]:
        return list(self.model.gene_names)

    def fits(self, data) -> bool:
        """Whether the model was trained on exactly these data's genes."""
        return data is not None and list(self.model.gene_names) == list(data.gene_names)

    @property
    def epochs(self) -> int | None:
        """Epochs trained (the history's last), or None."""
        h = self.history
        return int(h["epoch"].max()) if h is not None and "epoch" in h and len(h) else None

    def summary(self) -> dict:
        """One row of the Models page's table."""
        s = self.settings
        tc = s.train_config if s is not None else None
        return {"name": self.name, "dataset": self.dataset, "source": self.source, "genes": self.model.n_genes,
                "modules": self.model.n_modules, "epochs": self.epochs,
                "best epoch": s.best_epoch if s is not None else None,
                "learning rate": tc.learning_rate if tc is not None else None, "l1": tc.l1 if tc is not None else None,
                "seed": tc.seed if tc is not None else None,
                "added": time.strftime("%H:%M:%S", time.localtime(self.created))}

    def checkpoint_bytes(self) -> bytes | None:
        """The checkpoint file as bytes (for download), or None."""
        self._ensure()
        if self.checkpoint_path and Path(self.checkpoint_path).exists():
            return Path(self.checkpoint_path).read_bytes()
        return None


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
    models
        Every model of the session by name (:class:`ModelEntry`), in the order they came.
    current_model
        The name of the current model (None when none fits the data). :attr:`model`,
        :attr:`model_source`, :attr:`checkpoint_path`, :attr:`history` and :attr:`model_settings`
        read the current entry.
    notice
        A message about the current model (a finished run made current, a stopped run offered).
    job
        The latest :class:`~perturbode_ui.jobs.TrainingJob` (running or finished), or None.
    job_adopted
        Whether the latest job's result has been added to :attr:`models`.
    simulations
        Saved scenarios by name (:class:`Scenario`): what the Report includes.
    last_simulation
        The latest run of the Simulate page (saved into ``simulations`` on request).
    modules, evaluation, network, screens, comparison
        Results of the Modules (:class:`ModuleResults`), Evaluate (:class:`EvaluationResults`),
        Network (:class:`NetworkView`), Screen (:class:`ScreenRuns`) and Models
        (:class:`ModelComparison`) pages; the Report reads them.
    report
        Built report (bytes) and its options (owned by the Report page).
    settings
        :class:`Settings`.
    inputs
        Remembered widget values by widget key (training options, ...), so a page shows the
        user's last choice after a visit to another page (Streamlit forgets widgets not drawn).
    data_version, model_version
        Counters bumped on every change of data / current model.
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
    models: dict = field(default_factory=dict)
    current_model: str | None = None
    notice: Notice | None = None
    job: object | None = None
    job_adopted: bool = False
    simulations: dict = field(default_factory=dict)
    last_simulation: Scenario | None = None
    modules: ModuleResults = field(default_factory=ModuleResults)
    evaluation: EvaluationResults = field(default_factory=EvaluationResults)
    network: NetworkView = field(default_factory=NetworkView)
    screens: ScreenRuns = field(default_factory=ScreenRuns)
    comparison: ModelComparison = field(default_factory=ModelComparison)
    report: dict = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    inputs: dict = field(default_factory=dict)
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
        """Changes whenever the data or the current model change."""
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

    # ------------------------------------------------------------------ the current model
    @property
    def entry(self) -> ModelEntry | None:
        """The current :class:`ModelEntry`, or None."""
        return self.models.get(self.current_model) if self.current_model else None

    @property
    def model(self):
        """The current model (None when none fits the data)."""
        return self.entry.model if self.entry is not None else None

    @property
    def model_source(self) -> str:
        return self.entry.source if self.entry is not None else ""

    @property
    def checkpoint_path(self) -> str | None:
        if self.entry is None:
            return None
        self.entry._ensure()
        return self.entry.checkpoint_path

    @property
    def history(self) -> pd.DataFrame | None:
        return self.entry.history if self.entry is not None else None

    @property
    def model_settings(self):
        return self.entry.settings if self.entry is not None else None

    def fitting_models(self) -> list[str]:
        """Names of the models that fit the current data (any of them can be made current)."""
        return [n for n, e in self.models.items() if e.fits(self.data)]

    # ------------------------------------------------------------------ changes
    def set_data(self, data, *, name: str, source: str, truth: pd.DataFrame | None = None,
                 messages: list[str] | None = None) -> None:
        """Make ``data`` current. The current model stays if it fits the new genes; otherwise the
        latest model that does becomes current (none: no current model). Every model is kept."""
        self.data = data
        self.dataset_name = name
        self.dataset_source = source
        self.truth = truth
        self.data_messages = list(messages or [])
        self.data_version += 1
        self.pending = None
        self._clear_derived()
        if self.entry is not None and self.entry.fits(data):
            return
        fitting = self.fitting_models()
        self._make_current(fitting[-1] if fitting else None)

    def unique_name(self, base: str) -> str:
        """``base``, or ``base (2)``, ``base (3)``... when that name is taken."""
        name, i = base, 2
        while name in self.models:
            name, i = f"{base} ({i})", i + 1
        return name

    def add_model(self, entry: ModelEntry, *, make_current: bool = True) -> ModelEntry:
        """Keep ``entry`` (renamed if its name is taken); make it current unless told not to."""
        entry.name = self.unique_name(entry.name)
        if not entry.dataset:
            entry.dataset = self.dataset_name
        self.models[entry.name] = entry
        if make_current:
            self._make_current(entry.name)
        return entry

    def set_model(self, model, *, source: str, checkpoint_path: str | Path | None = None,
                  history: pd.DataFrame | None = None, settings=None, name: str | None = None,
                  status: str = "added") -> ModelEntry:
        """Keep ``model`` under a name and make it current (the caller has checked its genes)."""
        return self.add_model(ModelEntry.of(model, name=name or source, source=source, checkpoint_path=checkpoint_path,
                                            history=history, settings=settings, status=status))

    def set_checkpoint(self, ckpt, *, source: str, name: str | None = None, status: str = "added") -> ModelEntry:
        """Keep a loaded :class:`~perturbode_core.io.checkpoint.Checkpoint` and make it current."""
        return self.set_model(ckpt.model, source=source, checkpoint_path=ckpt.path, history=ckpt.history,
                              settings=ckpt.settings, name=name, status=status)

    def switch_model(self, name: str) -> None:
        """Make the kept model ``name`` current (it must fit the current data)."""
        from perturbode_core.errors import PerturbODEError

        if name not in self.models:
            raise PerturbODEError(f"No model named {name!r}", where="models", fix="Pick one from the list")
        if not self.models[name].fits(self.data):
            raise PerturbODEError(f"{name} was trained on other genes than {self.dataset_name}",
                                  where="models", fix=f"Load {self.models[name].dataset or 'its data'} first")
        if name != self.current_model:
            self._make_current(name)
        if self.notice is not None and name in (self.notice.undo_model, self.notice.offer_model):
            self.notice = None

    def rename_model(self, old: str, new: str) -> str:
        """Rename a kept model; returns the new name (refused when empty or taken)."""
        from perturbode_core.errors import PerturbODEError

        new = (new or "").strip()
        if old not in self.models:
            raise PerturbODEError(f"No model named {old!r}", where="models", fix="Pick one from the list")
        if not new:
            raise PerturbODEError("A model needs a name", where="rename", fix="Type a name")
        if new == old:
            return old
        if new in self.models:
            raise PerturbODEError(f"There is already a model named {new!r}", where="rename", fix="Choose another name")
        self.models = {(new if n == old else n): e for n, e in self.models.items()}
        self.models[new].name = new
        if self.current_model == old:
            self.current_model = new
        if self.notice is not None:
            self.notice.undo_model = new if self.notice.undo_model == old else self.notice.undo_model
            self.notice.offer_model = new if self.notice.offer_model == old else self.notice.offer_model
        return new

    def delete_model(self, name: str) -> None:
        """Forget a kept model (and its checkpoint file); deleting the current one leaves none current."""
        entry = self.models.pop(name, None)
        if entry is None:
            return
        if entry.checkpoint_path and Path(entry.checkpoint_path).is_relative_to(self.workdir) and \
                not (self.job is not None and str(self.job.checkpoint_path) == entry.checkpoint_path):
            Path(entry.checkpoint_path).unlink(missing_ok=True)
        if self.current_model == name:
            self._make_current(None)
        if self.notice is not None and name in (self.notice.undo_model, self.notice.offer_model):
            self.notice = None

    def _make_current(self, name: str | None) -> None:
        self.current_model = name
        self.model_version += 1
        self._clear_derived()

    def _clear_derived(self) -> None:
        self.simulations = {}
        self.last_simulation = None
        self.modules = ModuleResults()
        self.evaluation = EvaluationResults()
        self.network = NetworkView()
        self.screens = ScreenRuns()
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
        """Keep a finished (done or stopped) job's model, once.

        A finished run becomes the current model, with a notice that offers the previous one back;
        a stopped run is kept and offered, the current model stays. Returns True when a model was
        kept (the pages must be redrawn). A failed job is not kept: its last checkpoint stays in
        :attr:`job` for resume or download (see the Train page).
        """
        job = self.job
        if job is None or self.job_adopted or job.status not in ("done", "stopped"):
            return False
        result = job.result
        self.job_adopted = True
        if result is None or self.data is None or list(result.model.gene_names) != list(self.data.gene_names):
            return False
        stopped = job.status == "stopped"
        label = f"trained ({job.label}{', stopped early' if stopped else ''})"
        ckpt = job.checkpoint_path if Path(job.checkpoint_path).exists() else None
        epochs = len(result.history) if result.history is not None else 0
        name = f"{job.label} · {'stopped at epoch ' + str(epochs) if stopped else str(epochs) + ' epochs'}"
        previous = self.current_model
        entry = self.add_model(ModelEntry.of(result.model, name=name, source=label, checkpoint_path=ckpt,
                                             history=result.history, settings=result.settings,
                                             status="stopped" if stopped else "done"),
                               make_current=not stopped or previous is None)
        if stopped and self.current_model != entry.name:
            loss = _last_loss(result.history)
            self.notice = Notice(f"{job.label} was stopped at epoch {epochs}{loss}. It is kept as **{entry.name}**; "
                                 f"the current model is still **{previous}**.", offer_model=entry.name)
            return True
        self.notice = Notice(f"**{entry.name}** is now the current model"
                             + (f"; **{previous}** is kept." if previous else "."), undo_model=previous)
        return True

    def checkpoint_bytes(self) -> bytes | None:
        """The current model's checkpoint file as bytes (for download), or None."""
        return self.entry.checkpoint_bytes() if self.entry is not None else None

    def close(self) -> None:
        """Stop the job and delete the session's files now (also done automatically on collection)."""
        self._finalizer()


def _last_loss(history) -> str:
    if history is None or not len(history) or "train_loss" not in history:
        return ""
    import pandas as pd

    value = pd.to_numeric(history["train_loss"], errors="coerce").dropna()
    return f" (loss {value.iloc[-1]:.3g})" if len(value) else ""


#: The demo model's name in the session.
DEMO_MODEL = "demo"


def load_demo(state: AppState, name: str | None = None) -> None:
    """Load a built-in dataset and its trained demo checkpoint into ``state`` (default: the demo
    shown on first start; the real screen's demo is the other).

    The checkpoint is read when a page first needs the model (a lazy :class:`ModelEntry`), so the
    first page shows the data without waiting for torch.
    """
    from perturbode_ui import loaders

    name = name or loaders.demo_dataset()
    data, truth, messages = loaders.load_builtin(name)
    state.set_data(data, name=name, source="builtin", truth=truth, messages=messages)
    path = state.workdir / f"demo_model_{name}.pt"
    genes = list(data.gene_names)

    def load():
        from perturbode_core.io.checkpoint import load_checkpoint

        if not path.exists():
            path.write_bytes(loaders.demo_checkpoint_bytes(name))
        return load_checkpoint(path, genes=genes, where="demo checkpoint")

    shipped = loaders.shipped_demo_checkpoint(name)
    if shipped is not None:  # copied now (a file copy), read on first use
        shutil.copyfile(shipped, path)
    existing = [n for n, e in state.models.items() if e.status == "demo" and e.dataset == name]
    if existing:  # reloading the demo makes the kept demo model current again
        state.switch_model(existing[-1])
        return
    state.add_model(ModelEntry(name=DEMO_MODEL if DEMO_MODEL not in state.models else f"{DEMO_MODEL} ({name})",
                               source="demo checkpoint", dataset=name, checkpoint_path=str(path), status="demo",
                               loader=load))


def has_state() -> bool:
    """Whether this browser session already has its :class:`AppState` (False on its first run, before
    :func:`get_state` reads the demo)."""
    import streamlit as st

    return STATE_KEY in st.session_state


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
