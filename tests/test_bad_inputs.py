"""Every bad input of the corpus (tests/bad_inputs/, made by scripts/make_bad_inputs.py) through every
entry point: the library, the command line (a real subprocess) and the dashboard's upload (AppTest).

Each must end in the clear message (one ``error:`` line and exit status 2 on the command line, an
``st.error`` on the page), never a traceback, and nothing half-written. A one-cell condition and
raw counts are warnings; a sparse matrix loads. The 2 GB input is a sparse file made here.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

from perturbode_core.io import checkpoint
from perturbode_core.tools import enrichment
from perturbode_core.data import dataset as pdata
from perturbode_core.errors import PerturbODEError, PerturbODEWarning
from perturbode_core.io.edges import read_edge_list

CORPUS = ROOT / "tests" / "bad_inputs"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
ITEMS = MANIFEST["items"]
IDS = [i["name"] for i in ITEMS]
MARKER_ENV = MANIFEST["marker_env"]
BASE = CORPUS / MANIFEST["base_data"]
BASE_MODEL = CORPUS / MANIFEST["base_model"]
ENTRY_POINTS = ("library", "cli", "dashboard")
TWO_GB = 2 * 1024 ** 3 + 1


def _expected(item, entry):
    """(expect, message) of an item at an entry point (CLI / dashboard may differ from the library)."""
    override = item.get(entry if entry != "dashboard" else "dashboard")
    if override:
        return override["expect"], override["message"]
    return item["expect"], item["message"]


# ------------------------------------------------------------------------------------ the corpus
def test_corpus_is_generated_and_covers_issue_8(tmp_path):
    """The committed corpus is what the script writes, and it holds every case issue 8 names."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bad_inputs", ROOT / "scripts" / "make_bad_inputs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["make_bad_inputs.py", str(tmp_path / "c")]) == 0
    regenerated = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert regenerated == MANIFEST, "tests/bad_inputs is stale: run python scripts/make_bad_inputs.py"
    for item in ITEMS:
        assert (CORPUS / item["file"]).exists(), item["file"]
        assert (tmp_path / "c" / item["file"]).stat().st_size == (CORPUS / item["file"]).stat().st_size \
            or item["file"].endswith(".pt"), item["file"]  # torch zips carry a temp name; sizes may differ
    required = {"truncated_h5ad", "not_hdf5", "empty_anndata", "nan_values", "inf_values",
                "negative_counts_normalize", "sparse_matrix", "duplicated_genes", "no_perturbation_column",
                "control_absent", "one_cell_condition", "targets_not_genes", "combination_unknown_gene",
                "gmt_not_utf8", "edges_missing_columns", "ckpt_runs_code", "ckpt_truncated", "ckpt_corrupted",
                "ckpt_other_genes", "ckpt_future_version"}
    assert required <= set(IDS), required - set(IDS)
    assert sum((CORPUS / i["file"]).stat().st_size for i in ITEMS) < 1_000_000  # small committed files
    n_tried = len(ITEMS) * len(ENTRY_POINTS) + len(ENTRY_POINTS)  # + the 2 GB input at each entry point
    print(f"\nbad inputs: {len(ITEMS)} items + 2 GB file, x {len(ENTRY_POINTS)} entry points = {n_tried} cases")


@pytest.fixture()
def marker(tmp_path, monkeypatch):
    """Where the code-running checkpoint would write if it ever ran."""
    path = tmp_path / "PWNED"
    monkeypatch.setenv(MARKER_ENV, str(path))
    return path


def test_the_code_running_checkpoint_really_runs_code_when_unpickled(marker):
    """Proof that the corpus item is live: an unsafe torch.load runs its payload (so the tests can fail)."""
    import torch

    torch.load(CORPUS / "evil_pickle.pt", weights_only=False)
    assert marker.exists()


# ------------------------------------------------------------------------------------ library
def _library_call(item):
    path = CORPUS / item["file"]
    if item["kind"] == "h5ad":
        return pdata.load(path, **item["options"])
    if item["kind"] == "gmt":
        return enrichment.read_gmt(path)
    if item["kind"] == "edges":
        return read_edge_list(path)
    return checkpoint.load_checkpoint(path, genes=MANIFEST["genes"], where=item["file"]).model


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_library(item, marker):
    expect, message = _expected(item, "library")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if expect == "error":
            with pytest.raises(PerturbODEError) as info:
                _library_call(item)
            text = str(info.value)
            assert re.search(message, text), text
            assert info.value.fix, "every message says how to fix it"
            assert Path(item["file"]).name in text or item["kind"] == "checkpoint" and "genes" in text, \
                f"the message names the file: {text}"
        else:
            result = _library_call(item)
    ours = [str(w.message) for w in caught if issubclass(w.category, PerturbODEWarning)]
    if expect == "warning":
        assert any(re.search(message, m) for m in ours), ours
    elif expect == "ok":
        assert ours == [], ours
    if expect != "error" and item["kind"] == "h5ad":
        assert np.isfinite(result.X).all() and result.n_cells > 0
    if item["name"] == "sparse_matrix":  # accepted, and the same numbers as the dense file
        np.testing.assert_allclose(result.X, pdata.load(BASE).X, rtol=1e-6)
    assert not marker.exists(), "a checkpoint ran code"


# ------------------------------------------------------------------------------------ command line
def _cli_args(item, out: Path) -> list[str]:
    path = str(CORPUS / item["file"])
    if item["kind"] == "h5ad":
        from perturbode_core.cli.common import data_flags

        return ["train", "--data", path, "--out", str(out / "run"), "--epochs", "1", "--quiet",
                *data_flags(item["options"])]
    if item["kind"] == "gmt":
        return ["enrich", "--checkpoint", str(BASE_MODEL), "--library", path, "--out", str(out / "enrich.csv")]
    if item["kind"] == "edges":
        return ["benchmark", "--data", str(BASE), "--truth", path, "--no-genie3", "--epochs", "1",
                "--out", str(out / "bench")]
    return ["simulate", "--checkpoint", path, "--data", str(BASE), "--perturb", "GATA1",
            "--out", str(out / "pred.h5ad")]


def _run_cli(args, out: Path, marker_path: Path):
    """``python -m perturbode_core ARGS`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **{MARKER_ENV: str(marker_path)})
    return subprocess.run([sys.executable, "-m", "perturbode_core", *args], capture_output=True, text=True,
                          timeout=300, cwd=out, env=env)


# Runs many command lines in one interpreter, exactly as ``python -m perturbode_core`` does
# (``sys.exit(cli.main(argv))``), capturing each one's stdout, stderr, exit status and any escaped
# exception. A fresh interpreter per item costs ~2 s of CPU just for imports; this keeps the whole
# corpus x CLI under a few seconds, and CLI_PROCESS_ITEMS below still run as separate processes.
_DRIVER = r"""
import contextlib, io, json, os, sys, traceback
from perturbode_core.cli import main as cli
results = {}
for job in json.load(sys.stdin):
    os.environ[job["marker_env"]] = job["marker"]
    os.chdir(job["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(job["argv"])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 1
    results[job["name"]] = {"returncode": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}
sys.__stdout__.write(json.dumps(results))
"""

#: items that also run as their own ``python -m perturbode_core`` process (one of each kind, and more)
CLI_PROCESS_ITEMS = ("truncated_h5ad", "gmt_not_utf8", "edges_missing_columns", "ckpt_runs_code")


class _Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every item through the CLI: all in one driver process, some also as their own process."""
    base = tmp_path_factory.mktemp("cli")
    jobs, outs = [], {}
    for item in ITEMS:
        out = base / item["name"]
        out.mkdir()
        outs[item["name"]] = out
        jobs.append({"name": item["name"], "argv": _cli_args(item, out), "cwd": str(out),
                     "marker": str(out / "PWNED"), "marker_env": MARKER_ENV})
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        singles = {}
        for name in CLI_PROCESS_ITEMS:
            item = next(i for i in ITEMS if i["name"] == name)
            out = base / f"{name}-process"
            out.mkdir()
            singles[name] = (out, pool.submit(_run_cli, _cli_args(item, out), out, out / "PWNED"))
        driver = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(jobs), capture_output=True,
                                text=True, timeout=600, cwd=base, env=env)
        assert driver.returncode == 0, driver.stderr[-3000:]
        found = json.loads(driver.stdout)
        results = {name: (outs[name], _Proc(**found[name])) for name in outs}
        results.update({f"{name}-process": (out, fut.result()) for name, (out, fut) in singles.items()})
    return results


CLI_CASES = [(i, i["name"]) for i in ITEMS] + [(i, i["name"] + "-process") for i in ITEMS
                                                 if i["name"] in CLI_PROCESS_ITEMS]


@pytest.mark.parametrize("item, run", CLI_CASES, ids=[c[1] for c in CLI_CASES])
def test_cli(item, run, cli_results):
    out, proc = cli_results[run]
    expect, message = _expected(item, "cli")
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both[-3000:]
    assert not (out / "PWNED").exists(), "a checkpoint ran code"
    assert not [p for p in out.rglob("*.tmp")], "a temporary file was left behind"
    if expect == "error":
        assert proc.returncode == 2, both[-2000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, proc.stderr
        assert re.search(message, errors[0]), errors[0]
        # nothing half-written: no output file exists
        assert not any(p.is_file() for p in out.rglob("*") if p.name != "PWNED"), list(out.rglob("*"))
    else:
        assert proc.returncode == 0, both[-2000:]
        assert "error:" not in proc.stderr
        if expect == "warning":
            assert re.search(message, proc.stderr), proc.stderr[-2000:]
        assert (out / "run" / "model.pt").exists() and (out / "run" / "grn.csv").exists()


# ------------------------------------------------------------------------------------ dashboard
def _app(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _state(at):
    from perturbode_ui.state import STATE_KEY

    return at.session_state[STATE_KEY]


def _clean(at):
    """No exception and no 'Unexpected error' (a non-PerturbODE exception caught by the page)."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e.value for e in at.error if "Unexpected error" in e.value]
    assert not unexpected, unexpected


def _upload(at, key, name, payload):
    at.file_uploader(key=key).set_value((name, payload, "application/octet-stream"))
    at.run()


def _select(at, label, value) -> bool:
    box = next(b for b in at.selectbox if b.label == label)
    if value not in box.options:
        return False
    box.set_value(value)
    return True


@pytest.fixture(scope="module")
def data_page():
    return _app("data_page.py")


@pytest.fixture(scope="module")
def modules_page():
    return _app("modules_page.py")


@pytest.fixture(scope="module")
def evaluate_page():
    return _app("evaluate_page.py")


@pytest.fixture(scope="module")
def train_page():
    return _app("train_page.py")


def _dashboard_h5ad(at, item):
    expect, message = _expected(item, "dashboard")
    name = item["file"]
    _upload(at, "data_upload", name, (CORPUS / name).read_bytes())
    _clean(at)
    errors = [e.value for e in at.error]
    if errors:  # refused while reading: the message, and the previous data stay current
        assert expect == "error" and any(re.search(message, e) for e in errors), errors
        assert all("upload-" not in e for e in errors), "the message names the upload, not a temp path"
        return
    assert f"Columns of {name}" in [s.value for s in at.subheader]
    options = item["options"]
    offered = _select(at, "Perturbation column", options.get("perturbation_key", "perturbation"))
    control_ok = _select(at, "Control label", options.get("control", "control"))
    if expect == "not_offered":  # the page cannot produce this error: it offers only what the file has
        assert not control_ok
        return
    assert offered or item["name"] == "no_perturbation_column"
    next(c for c in at.checkbox if c.label == "Normalise raw counts").set_value(bool(options.get("normalize")))
    at.button(key="data_use").click()
    at.run()
    _clean(at)
    errors = [e.value for e in at.error]
    state = _state(at)
    if expect == "error":
        assert any(re.search(message, e) for e in errors), errors
        assert state.dataset_name != name
    else:
        assert errors == [], errors
        assert state.dataset_name == name and state.data.n_genes == len(MANIFEST["genes"])
        shown = [w.value for w in at.warning]
        if expect == "warning":
            assert any(re.search(message, w) for w in shown), shown


def _dashboard_gmt(at, item):
    # a form: choose, attach and submit in one go (form values are sent on submit)
    assert _select(at, "Gene-set library", "upload a GMT file")
    at.file_uploader(key="enr_gmt").set_value((item["file"], (CORPUS / item["file"]).read_bytes(), "text/plain"))
    next(b for b in at.button if b.label == "Run enrichment").click()
    at.run()
    _clean(at)
    errors = [e.value for e in at.error]
    assert any(re.search(item["message"], e) for e in errors), errors


def _dashboard_edges(at, item):
    before = _state(at).truth
    _upload(at, "ev_truth_upload", item["file"], (CORPUS / item["file"]).read_bytes())
    _clean(at)
    errors = [e.value for e in at.error]
    assert any(re.search(item["message"], e) for e in errors), errors
    assert _state(at).truth is before  # the known network was not replaced


def _dashboard_checkpoint(at, item, marker):
    state = _state(at)
    source, model = state.model_source, state.model
    _upload(at, "train_upload", item["file"], (CORPUS / item["file"]).read_bytes())
    at.button(key="train_use_upload").click()
    at.run()
    _clean(at)
    errors = [e.value for e in at.error]
    # the page's data are the demo's, so every corpus model is for other genes: the file's own
    # defect must be named first; only intact, safe files reach the gene check
    message = item["message"] if item["name"] != "ckpt_future_version" else r"newer"
    assert any(re.search(message, e) for e in errors), errors
    assert state.model is model and state.model_source == source  # nothing replaced
    assert not (state.workdir / "uploaded" / item["file"]).exists()  # the refused file is not kept
    assert not marker.exists(), "a checkpoint ran code"


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_dashboard(item, request, marker):
    if item["kind"] == "h5ad":
        _dashboard_h5ad(request.getfixturevalue("data_page"), item)
    elif item["kind"] == "gmt":
        _dashboard_gmt(request.getfixturevalue("modules_page"), item)
    elif item["kind"] == "edges":
        _dashboard_edges(request.getfixturevalue("evaluate_page"), item)
    else:
        _dashboard_checkpoint(request.getfixturevalue("train_page"), item, marker)


def test_dashboard_refuses_a_checkpoint_for_other_genes_by_name(train_page):
    """An intact checkpoint for other genes than the loaded data gets the gene message on the page."""
    _upload(train_page, "train_upload", "base_model.pt", BASE_MODEL.read_bytes())
    train_page.button(key="train_use_upload").click()
    train_page.run()
    _clean(train_page)
    assert any("trained on other genes" in e.value for e in train_page.error), [e.value for e in train_page.error]


# ------------------------------------------------------------------------------------ 2 GB input
@pytest.fixture()
def two_gb_file(tmp_path):
    """A 2 GB file that takes no disk space (sparse): an upload far over the limit."""
    path = tmp_path / "huge.h5ad"
    with open(path, "wb") as fh:
        fh.write(b"not an hdf5 file, only big\n")
        fh.truncate(TWO_GB)
    assert path.stat().st_size == TWO_GB
    return path


def test_upload_limit_is_below_2_gb():
    """The server refuses uploads over server.maxUploadSize (MB): it must be set, and under 2 GB."""
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    limit_mb = cfg["server"]["maxUploadSize"]
    assert isinstance(limit_mb, int) and 1 <= limit_mb < TWO_GB / 1024 ** 2


def test_data_page_uploader_carries_the_limit(data_page):
    """The upload widget tells the browser the limit it enforces (from the project config)."""
    import tomllib

    limit_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    widget = data_page.file_uploader(key="data_upload")
    assert widget.proto.max_upload_size_mb in (limit_mb, 0)  # 0: the server's option applies
    from streamlit import config

    assert config.get_option("server.maxUploadSize") * 1024 ** 2 < TWO_GB


def test_2gb_file_library_and_cli(two_gb_file, tmp_path):
    with pytest.raises(PerturbODEError, match="Not an HDF5"):
        pdata.load(two_gb_file)
    proc = _run_cli(["train", "--data", str(two_gb_file), "--out", str(tmp_path / "run"), "--quiet"], tmp_path,
                    tmp_path / "PWNED")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Not an HDF5")


def test_2gb_file_through_the_server_path(two_gb_file, monkeypatch):
    """A 2 GB server-side file is refused at once (nothing is read into memory)."""
    monkeypatch.setenv("PERTURBODE_DATA_DIR", str(two_gb_file.parent))
    at = _app("data_page.py")
    at.text_input(key="data_path").input(two_gb_file.name)
    at.button(key="data_path_read").click()
    at.run()
    _clean(at)
    assert any("Not an HDF5" in e.value for e in at.error), [e.value for e in at.error]


# ------------------------------------------------------------------------------------ numerical robustness
def _finite_or_told(result_or_error, caught):
    """Training either ended with finite weights and losses, or the user was told (warning / error)."""
    told = [str(w.message) for w in caught if issubclass(w.category, PerturbODEWarning)]
    if isinstance(result_or_error, PerturbODEError):
        assert "diverged" in str(result_or_error) and result_or_error.fix
        assert told, "steps were skipped with a warning before giving up"
        return "error"
    result = result_or_error
    weights_finite = all(bool(np.isfinite(v.detach().numpy()).all()) for v in result.model.state_dict().values())
    losses = result.history["train_loss"].to_numpy(dtype=float)
    assert weights_finite, "NaN weights were returned silently"
    if not np.isfinite(losses).all() or result.history["skipped_steps"].sum():
        assert told and result.events, "a non-finite step went unreported"
        return "told"
    return "finite"


@pytest.mark.parametrize("case", ["all_huge", "outliers"])
def test_extreme_values_never_give_silent_nan(case, teacher_data):
    """Expression in the millions (wrong units) or a few 1e6 outliers: finite, or the user is told."""
    import dataclasses

    from perturbode_core.train import TrainConfig, fit

    X = teacher_data.X.copy()
    if case == "all_huge":
        X = X * 1e6 + 1e6
    else:
        rng = np.random.default_rng(0)
        X[rng.integers(0, X.shape[0], 15), rng.integers(0, X.shape[1], 15)] = 1e6
    data = dataclasses.replace(teacher_data, X=X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = fit(data, train_config=TrainConfig(epochs=3, cells_per_condition=16, batch_conditions=6))
        except PerturbODEError as exc:
            outcome = exc
    _finite_or_told(outcome, caught)


def test_stiff_dynamics_are_reported_to_the_dashboard(teacher_data, tmp_path):
    """A stiff, unstable configuration in the dashboard's worker: skipped steps reach the page's
    events, and the failure a one-line message; the job ends 'failed', not with NaN weights."""
    from perturbode_core.model import ModelConfig
    from perturbode_core.train import TrainConfig
    from perturbode_ui.jobs import TrainingJob

    job = TrainingJob(teacher_data, checkpoint_path=tmp_path / "model.pt",
                      model_config=ModelConfig(step_size=8.0, horizon=80.0, init_scale=400.0, solver="euler"),
                      train_config=TrainConfig(epochs=6, cells_per_condition=8, batch_conditions=6)).start()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "failed" and "diverged" in snap.error and "\n" not in snap.error
    assert any("non-finite" in e and "learning rate lowered" in e for e in snap.events), snap.events
    assert job.result is None  # no NaN model is handed to the pages
