"""Data page: built-in datasets, uploads and server paths; bad inputs get a message, never a traceback."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest


from perturbode_core.errors import PerturbODEError
from perturbode_ui import data_io, loaders
from perturbode_ui.state import STATE_KEY


@pytest.fixture()
def app(start_app):
    return start_app()


def _errors(at):
    return " ".join(e.value for e in at.error)


def _upload(at, name, payload):
    at.file_uploader(key="data_upload").upload(name, payload).run()
    assert not at.exception, at.exception
    return at


def test_not_hdf5_upload_shows_the_core_message(app):
    _upload(app, "cells.h5ad", b"cell,gene\n1,2\n")
    assert "Not an HDF5/.h5ad file" in _errors(app) and "cells.h5ad" in _errors(app)
    assert "/tmp" not in _errors(app)  # the private temp path is not leaked
    assert app.session_state[STATE_KEY].pending is None
    app.run()  # the error stays while the bad file is there; the file is not read again
    assert "Not an HDF5/.h5ad file" in _errors(app)


def test_truncated_upload(app, teacher_h5ad):
    payload = Path(teacher_h5ad).read_bytes()
    _upload(app, "teacher.h5ad", payload[: len(payload) // 3])
    assert "damaged or truncated" in _errors(app) or "Not an HDF5" in _errors(app)


def test_good_upload_then_columns(app, teacher_h5ad):
    state = app.session_state[STATE_KEY]
    _upload(app, "teacher.h5ad", Path(teacher_h5ad).read_bytes())
    assert state.pending is not None and not app.error
    assert app.selectbox[1].value == "perturbation" and app.selectbox[2].value == "control"  # guessed
    app.button(key="data_use").click().run()
    assert not app.exception and not app.error
    assert state.dataset_name == "teacher.h5ad" and state.data.n_genes == 12
    assert state.model is None  # the demo model has other genes
    assert state.truth is not None and len(state.truth) > 0  # read from uns['true_edges']
    assert not list(state.workdir.glob("upload-*"))  # the upload's temp folder is gone
    assert state.pending is None  # the same upload is not offered again
    app.run()
    assert state.pending is None and not app.error


def test_upload_with_wrong_column_gets_a_message(app, tmp_path):
    a = ad.AnnData(X=np.ones((6, 3), np.float32), obs=pd.DataFrame({"batch": ["b1", "b2"] * 3},
                                                                     index=[f"c{i}" for i in range(6)]),
                   var=pd.DataFrame(index=["A", "B", "C"]))
    path = tmp_path / "nopert.h5ad"
    a.write_h5ad(path)
    _upload(app, "nopert.h5ad", path.read_bytes())
    app.button(key="data_use").click().run()
    assert not app.exception
    # 'batch' is the only column: its values become targets that no gene matches, which is said
    warnings = " ".join(w.value for w in app.warning)
    assert "none of the 1 target(s) (b2) is among the measured genes" in warnings and "'batch'" in warnings


def test_server_path_outside_allowed_dir_is_refused(app, tmp_path, teacher_h5ad):
    state = app.session_state[STATE_KEY]
    state.settings.allowed_data_dir = str(tmp_path)
    app.text_input(key="data_path").set_value("/etc/passwd").run()
    app.button(key="data_path_read").click().run()
    assert not app.exception and "outside the allowed data folder" in _errors(app)
    app.text_input(key="data_path").set_value("../../etc/passwd").run()
    app.button(key="data_path_read").click().run()
    assert "outside the allowed data folder" in _errors(app)
    app.text_input(key="data_path").set_value(str(tmp_path / "missing.h5ad")).run()
    app.button(key="data_path_read").click().run()
    assert "File not found" in _errors(app)
    (tmp_path / "t.h5ad").write_bytes(Path(teacher_h5ad).read_bytes())
    app.text_input(key="data_path").set_value("t.h5ad").run()  # relative to the allowed folder
    app.button(key="data_path_read").click().run()
    assert not app.error and state.pending["name"] == "t.h5ad"


def test_server_paths_off_on_a_shared_server_without_allowed_dir(tmp_path):
    with pytest.raises(PerturbODEError, match="switched off"):
        data_io.check_server_path(str(tmp_path / "x.h5ad"), None, local=False)
    link = tmp_path / "inside" / "link.h5ad"
    link.parent.mkdir()
    link.symlink_to("/etc/hostname")
    with pytest.raises(PerturbODEError, match="outside"):  # a symlink cannot lead out
        data_io.check_server_path(str(link), str(tmp_path / "inside"), local=False)


def test_pick_builtin_dataset(app):
    state = app.session_state[STATE_KEY]
    assert loaders.SYNTHETIC_DATASET in app.selectbox(key="data_builtin_name").options
    app.selectbox(key="data_builtin_name").set_value(loaders.SYNTHETIC_DATASET).run()
    app.button(key="data_builtin_load").click().run()
    assert not app.exception and not app.error
    assert state.dataset_name == loaders.SYNTHETIC_DATASET and state.data.n_genes == 12 and state.model is None
    assert state.truth is not None
    # back to the demo: its trained model comes back too
    app.selectbox(key="data_builtin_name").set_value(loaders.demo_dataset()).run()
    app.button(key="data_builtin_load").click().run()
    assert state.dataset_name == loaders.demo_dataset() and state.model is not None
