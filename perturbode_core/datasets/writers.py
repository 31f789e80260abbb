"""Write a simulated dataset: the ``.h5ad`` (atomically, byte-for-byte reproducibly) and its truth CSV."""

from __future__ import annotations

from pathlib import Path


from perturbode_core.io.files import atomic_path


def edges_path_for(h5ad_path) -> Path:
    """``data/foo.h5ad`` -> ``data/foo_edges.csv``."""
    path = Path(h5ad_path)
    return path.with_name(path.stem + "_edges.csv")


def write_h5ad(adata, path, *, compression: str | None = "gzip") -> Path:
    """Write ``adata`` atomically.

    The bytes depend only on the content: HDF5 stores no modification times unless asked (h5py
    creates objects with ``track_times=False``), and anndata writes ``obs`` / ``var`` / ``uns`` in
    a fixed order, so the same data give the same file (checked by ``scripts/build_datasets.py``).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression=compression)
    return path


