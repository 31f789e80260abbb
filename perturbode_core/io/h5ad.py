"""Reading ``.h5ad`` files: every way a file can fail turned into a clear message
(:func:`read_h5ad`), and out-of-core expression matrices read straight from disk.

A dense ``X`` that anndata wrote uncompressed and unchunked sits in the file as one contiguous
block, so it can be memory-mapped: :func:`memmap_dataset` returns a read-only ``numpy.memmap``
that behaves as an ordinary array. Training then reads only the rows of each minibatch (the
operating system pages them in and may evict them again), so the resident memory of a run does
not grow with the number of cells, and the file is never copied into memory. Compressed,
chunked or sparse matrices cannot be mapped; they are read in row chunks into memory instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import check_input_file


def memmap_dataset(dset) -> np.memmap | None:
    """A read-only memory map of an h5py dataset, or None when its layout does not allow one."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with anndata
        return None
    if not isinstance(dset, h5py.Dataset) or dset.ndim != 2:
        return None
    if dset.chunks is not None or dset.compression is not None or dset.dtype.kind != "f":
        return None
    offset = dset.id.get_offset()
    if offset is None:  # not allocated on disk yet
        return None
    return np.memmap(dset.file.filename, mode="r", dtype=dset.dtype, offset=offset, shape=dset.shape, order="C")


def all_finite(X, *, chunk: int = 4096) -> bool:
    """``np.isfinite(X).all()`` in row chunks (no full-size boolean temporary, works on memmaps)."""
    for s in range(0, X.shape[0], chunk):
        if not np.isfinite(X[s:s + chunk]).all():
            return False
    return True


def read_dense_chunked(X, *, chunk: int = 4096) -> np.ndarray:
    """A backed (h5py / anndata sparse) matrix as a dense float32 array, read row chunk by chunk so
    that the peak is the result plus one chunk, not a float64 or sparse copy of everything."""
    import scipy.sparse as sp

    out = np.empty(X.shape, np.float32)
    for s in range(0, X.shape[0], chunk):
        block = X[s:s + chunk]
        if sp.issparse(block):
            block = block.toarray()
        out[s:s + chunk] = np.asarray(block, dtype=np.float32)
    return out


def read_h5ad(path: str | Path, *, backed: bool = False):
    """Read an ``.h5ad`` file, turning every way it can fail into a clear message.

    Parameters
    ----------
    path
        The file.
    backed
        Open it backed (``mode='r'``): ``X`` stays on disk until read.
    """
    import anndata as ad
    import h5py

    path = check_input_file(path, kind="File", fix="Check the path, or upload the file in the dashboard")
    if not h5py.is_hdf5(path):
        raise PerturbODEError(
            "Not an HDF5/.h5ad file", where=str(path),
            fix="Save your AnnData with adata.write_h5ad(...) (CSV, loom and zarr are not read here)")
    damaged = "Re-export the file with adata.write_h5ad(...) and try again"
    try:
        with h5py.File(path, "r") as fh:
            keys = sorted(fh.keys())
    except Exception as exc:  # truncated or damaged HDF5 structure
        raise PerturbODEError(
            f"Could not read the AnnData: the file is damaged or truncated ({type(exc).__name__}: {exc})",
            where=str(path), fix=damaged) from exc
    if not {"obs", "var"} <= set(keys):  # e.g. a 10x Genomics .h5 or another tool's HDF5 file
        raise PerturbODEError(
            f"An HDF5 file, but not an AnnData: it has no obs/var groups (top level: {', '.join(keys[:8]) or 'empty'})",
            where=str(path), fix="Convert it to .h5ad first (a 10x .h5: scanpy.read_10x_h5(...).write_h5ad(...))")
    try:
        with warnings.catch_warnings():
            # duplicated names get PerturbODE's own message (with the fix) when validated
            warnings.filterwarnings("ignore", message=".*names are not unique", category=UserWarning)
            return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # h5py/anndata raise many types for damaged files
        raise PerturbODEError(
            f"Could not read the AnnData: the file is damaged or truncated ({type(exc).__name__}: {exc})",
            where=str(path), fix=damaged) from exc
