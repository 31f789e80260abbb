"""Serving safely and several users at once.

* The dashboard binds to 127.0.0.1 unless told otherwise (config, and a real server checked with ss).
* Uploads are read into memory through a private temporary folder that is removed at once.
* With ``PERTURBODE_DATA_DIR`` set, no server path outside it is read (symlinks and ``..`` included);
  on a shared server without it, server paths are refused altogether.
* Two sessions load different data and train different models without seeing each other's state,
  and a finished session's state, jobs, data, models and files are released.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from perturbode_core.errors import PerturbODEError

CORPUS = ROOT / "tests" / "bad_inputs"
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ binding
def test_config_binds_localhost_by_default():
    assert CONFIG["server"]["address"] == "127.0.0.1"
    assert CONFIG["server"].get("headless", True)
    assert CONFIG.get("browser", {}).get("gatherUsageStats") is False
    assert 1 <= CONFIG["server"]["maxUploadSize"] < 2048  # MB: a 2 GB upload is refused by the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_local_address() -> str | None:
    """A non-loopback address of this machine (None when it has none)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_real_server_listens_on_loopback_only(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        t0 = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.perf_counter() - t0 < 90, "server did not start"
            time.sleep(0.3)
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.strip().splitlines()}
        assert addresses == {"127.0.0.1"}, listening
        other = _other_local_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ------------------------------------------------------------------------------ uploads
def test_uploads_are_read_in_memory_and_the_temp_folder_removed(tmp_path):
    from perturbode_ui import data_io

    work = tmp_path / "session"
    work.mkdir()
    adata = data_io.read_upload("base.h5ad", (CORPUS / "base.h5ad").read_bytes(), work)
    assert adata.isbacked is False and adata.n_obs > 0
    adata.X.sum()  # usable after the file is gone
    with pytest.raises(PerturbODEError, match="uploaded file truncated.h5ad"):
        data_io.read_upload("truncated.h5ad", (CORPUS / "truncated.h5ad").read_bytes(), work)
    # an upload name cannot choose a folder
    data_io.read_upload("../../escape.h5ad", (CORPUS / "base.h5ad").read_bytes(), work)
    assert list(work.iterdir()) == [] and not (tmp_path / "escape.h5ad").exists()


# ------------------------------------------------------------------------------ allowed data dir
@pytest.fixture()
def folders(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    shutil.copy(CORPUS / "base.h5ad", allowed / "ok.h5ad")
    shutil.copy(CORPUS / "base.h5ad", outside / "secret.h5ad")
    (allowed / "link.h5ad").symlink_to(outside / "secret.h5ad")
    return allowed, outside


def test_check_server_path_keeps_to_the_data_dir(folders):
    from perturbode_ui.data_io import check_server_path

    allowed, outside = folders
    assert check_server_path(str(allowed / "ok.h5ad"), str(allowed), local=False) == allowed / "ok.h5ad"
    assert check_server_path("ok.h5ad", str(allowed), local=False) == allowed / "ok.h5ad"  # relative: inside
    for bad in (str(outside / "secret.h5ad"), "../outside/secret.h5ad", "link.h5ad", "/etc/passwd",
                str(allowed / ".." / "outside" / "secret.h5ad")):
        with pytest.raises(PerturbODEError, match="outside the allowed data folder"):
            check_server_path(bad, str(allowed), local=False)
    # a shared server without PERTURBODE_DATA_DIR reads no server path at all; local use may
    with pytest.raises(PerturbODEError, match="switched off on a shared server"):
        check_server_path(str(allowed / "ok.h5ad"), None, local=False)
    assert check_server_path(str(allowed / "ok.h5ad"), None, local=True) == allowed / "ok.h5ad"


def _data_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "data_page.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _read_path(at, text):
    at.text_input(key="data_path").input(text)
    at.button(key="data_path_read").click()
    at.run()
    assert not at.exception, at.exception
    return [e.value for e in at.error]


def test_data_page_reads_only_inside_the_data_dir(folders, monkeypatch):
    allowed, outside = folders
    monkeypatch.setenv("PERTURBODE_DATA_DIR", str(allowed))
    at = _data_page()
    state = at.session_state["perturbode_app_state"]
    for bad in (str(outside / "secret.h5ad"), "../outside/secret.h5ad", "link.h5ad"):
        errors = _read_path(at, bad)
        assert any("outside the allowed data folder" in e for e in errors), errors
        assert state.pending is None  # nothing was read
    assert _read_path(at, "ok.h5ad") == []
    assert state.pending is not None and state.pending["name"] == "ok.h5ad"


def test_data_page_on_a_shared_server_without_data_dir(folders, monkeypatch):
    from streamlit import config

    monkeypatch.delenv("PERTURBODE_DATA_DIR", raising=False)
    allowed, _ = folders
    old = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = _data_page()
        errors = _read_path(at, str(allowed / "ok.h5ad"))
    finally:
        config.set_option("server.address", old)
    assert any("switched off on a shared server" in e for e in errors), errors
    assert at.session_state["perturbode_app_state"].pending is None


# ------------------------------------------------------------------------------ several users
def _session():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _load_upload(at, path: Path):
    at.switch_page("pages/data_page.py").run()
    at.file_uploader(key="data_upload").set_value((path.name, path.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="data_use").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def _train(at, epochs: int):
    at.switch_page("pages/train_page.py").run()
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_cells").set_value(8)
    at.number_input(key="train_val").set_value(0.0)
    at.button(key="train_start").click()
    at.run()
    assert not at.exception, at.exception


def test_two_sessions_are_isolated_and_released(teacher_h5ad):
    from perturbode_ui.state import STATE_KEY

    a, b = _session(), _session()
    sa, sb = a.session_state[STATE_KEY], b.session_state[STATE_KEY]
    assert sa is not sb and sa.workdir != sb.workdir
    _load_upload(a, CORPUS / "base.h5ad")
    _load_upload(b, teacher_h5ad)
    assert sa.dataset_name == "base.h5ad" and sb.dataset_name == teacher_h5ad.name
    assert sa.data.gene_names != sb.data.gene_names
    _train(a, 3)
    _train(b, 4)
    ja, jb = sa.job, sb.job
    assert ja is not None and jb is not None and ja is not jb
    assert ja.join(120) and jb.join(120)
    assert ja.snapshot().status == jb.snapshot().status == "done"
    a.run()
    b.run()
    assert sa.model is not None and sb.model is not None and sa.model is not sb.model
    assert sa.model.gene_names == sa.data.gene_names and sb.model.gene_names == sb.data.gene_names
    assert len(sa.history) == 3 and len(sb.history) == 4
    assert Path(sa.checkpoint_path).is_relative_to(sa.workdir) and Path(sb.checkpoint_path).is_relative_to(sb.workdir)
    # each session's pages show its own data
    a.switch_page("pages/data_page.py").run()
    b.switch_page("pages/data_page.py").run()
    assert "base.h5ad" in [s.value for s in a.subheader] and teacher_h5ad.name not in [s.value for s in a.subheader]
    assert teacher_h5ad.name in [s.value for s in b.subheader]

    # session A ends: its state, job, data, model and files are released; B is untouched
    refs = [weakref.ref(x) for x in (sa, ja, sa.data, sa.model)]
    workdir_a = sa.workdir
    del sa, ja, a
    for _ in range(3):
        gc.collect()
    alive = [r() for r in refs]
    assert all(x is None for x in alive), [type(x).__name__ for x in alive if x is not None]
    assert not workdir_a.exists()
    assert sb.model is not None and Path(sb.checkpoint_path).exists()
    workdir_b = Path(sb._resources.workdir)
    sb.close()  # what the finalizer does when B's session ends
    assert not workdir_b.exists()
