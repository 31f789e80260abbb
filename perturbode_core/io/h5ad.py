"""Out-of-core expression matrices: backed ``.h5ad`` files read straight from disk.

A dense ``X`` that anndata wrote uncompressed and unchunked sits in the file as one contiguous
block, so it can be memory-mapped: :func:`memmap_dataset` returns a read-only ``numpy.memmap``
that behaves as an ordinary array. Training then reads only the rows of each minibatch (the
operating system pages them in and may evict them again), so the resident memory of a run does
not grow with the number of cells, and the file is never copied into memory. Compressed,
chunked or sparse matrices cannot be mapped; they are read in row chunks into memory instead.
"""

from __future__ import annotations

import numpy as np


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
