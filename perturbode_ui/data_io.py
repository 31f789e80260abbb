"""Getting data into the dashboard: uploads, server-side paths, column choices, embeddings.

Uploads are written to a private temporary folder inside the session's folder, read fully into
memory, and the folder is deleted at once. Server-side paths are checked against
``Settings.allowed_data_dir`` before anything is read.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import streamlit as st

from perturbode_core.data import dataset as pdata
from perturbode_core.io.h5ad import read_h5ad
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.embedding import embed_cells

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def _served_locally() -> bool:
    try:
        address = st.get_option("server.address")
    except Exception:
        return True
    return (address or "") in LOCAL_ADDRESSES


def read_upload(name: str, payload: bytes, workdir: Path):
    """Read an uploaded ``.h5ad`` (bytes) into an AnnData in memory.

    The bytes go to a private temporary folder (the HDF5 library reads files), the AnnData is
    read fully (not backed), and the folder is removed before returning. Errors are the core's
    messages, naming the uploaded file rather than the temporary path.
    """
    safe = Path(name).name or "upload.h5ad"  # never let an upload name choose a folder
    tmp = Path(tempfile.mkdtemp(prefix="upload-", dir=workdir))
    try:
        path = tmp / safe
        path.write_bytes(payload)
        try:
            return read_h5ad(path)
        except PerturbODEError as exc:
            raise PerturbODEError(exc.what.replace(str(path), safe), where=f"uploaded file {safe}",
                                  fix=exc.fix) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_server_path(path_text: str, allowed_dir: str | None, *, local: bool | None = None) -> Path:
    """Resolve a user-given server path, refusing anything outside ``allowed_dir``.

    Without ``allowed_dir``, paths are accepted only while the app is served on localhost (a
    server shared on a network must name the folder users may read: ``PERTURBODE_DATA_DIR``).
    Symbolic links are resolved before the check, so they cannot lead outside the folder.
    """
    text = (path_text or "").strip()
    if not text:
        raise PerturbODEError("No path given", where="server-side path", fix="Type the path of an .h5ad file")
    path = Path(text).expanduser()
    local = _served_locally() if local is None else local
    if allowed_dir:
        root = Path(allowed_dir).expanduser().resolve()
        if not path.is_absolute():
            path = root / path
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise PerturbODEError(f"The path {text} is outside the allowed data folder", where="server-side path",
                                  fix=f"Use a file inside {root} (setting PERTURBODE_DATA_DIR)")
        return resolved
    if not local:
        raise PerturbODEError("Reading server-side paths is switched off on a shared server",
                              where="server-side path",
                              fix="Upload the file, or ask the administrator to set PERTURBODE_DATA_DIR")
    return path.resolve()


def guess_columns(adata) -> tuple[str | None, str | None]:
    """Guessed perturbation column and control label of an AnnData (either may be None)."""
    key = pdata.guess_perturbation_key(adata.obs)
    control = pdata.guess_control_label(adata.obs[key]) if key is not None else None
    return key, control


def guide_sources(adata) -> list[str]:
    """Where an AnnData may hold guides: its ``obsm`` matrices and ``obs`` columns named like guides."""
    obsm = [str(k) for k in (getattr(adata, "obsm", {}) or {}).keys() if "guide" in str(k).lower()
            or "sgrna" in str(k).lower()]
    import pandas as pd

    obs = [str(c) for c in adata.obs.columns if ("guide" in str(c).lower() or "sgrna" in str(c).lower())
           and not pd.api.types.is_numeric_dtype(adata.obs[c])]  # guide calls, not UMI totals
    return obsm + [c for c in obs if c not in obsm]


def build_data(adata, *, perturbation_key: str, control: str, source: str, normalize: bool = False,
               default_intervention: str = "knockout", **options):
    """Validate an AnnData as a dataset (``options``: more
    :func:`~perturbode_core.data.dataset.from_anndata` keywords: guides, escapees, hvg...); returns
    ``(PerturbationData, truth or None, warnings)``."""
    from perturbode_core.io.edges import truth_from_uns

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = pdata.from_anndata(adata, perturbation_key=perturbation_key, control=control, source=source,
                                  normalize=normalize, default_intervention=default_intervention, **options)
    messages = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    return data, truth_from_uns(adata), messages


@st.cache_data(show_spinner="Computing the embedding…", max_entries=16)
def embedding(_data, data_key: str, method: str = "pca", max_cells: int = 5000) -> dict:
    """:func:`perturbode_core.tools.embedding.embed_cells`, cached per ``data_key``."""
    return embed_cells(_data, method=method, max_cells=max_cells)


@st.cache_data(show_spinner=False, max_entries=16)
def on_target_table(_data, data_key: str):
    """:func:`perturbode_core.data.knockout_level.own_level_table`, cached per ``data_key`` (the Data
    page draws it on every rerun)."""
    from perturbode_core.data.knockout_level import own_level_table

    return own_level_table(_data)
