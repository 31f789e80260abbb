"""Write a simulated dataset: the ``.h5ad`` (atomically, byte-for-byte reproducibly) and its truth CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from perturbode_core.io.files import atomic_path, write_text_atomic


def edges_path_for(h5ad_path) -> Path:
    """``data/foo.h5ad`` -> ``data/foo_edges.csv``."""
    path = Path(h5ad_path)
    return path.with_name(path.stem + "_edges.csv")


def truth_from_uns(adata) -> pd.DataFrame:
    """The ground truth stored by the simulator in ``uns["true_edges"]``, as ``source, target, sign``."""
    t = adata.uns["true_edges"]
    return pd.DataFrame({"source": [str(s) for s in t["source"]], "target": [str(s) for s in t["target"]],
                         "sign": [int(s) for s in t["sign"]]})


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


def write_edges_csv(edges: pd.DataFrame, path) -> Path:
    """Write ``source,target,sign`` as CSV (atomically)."""
    write_text_atomic(path, edges[["source", "target", "sign"]].to_csv(index=False, lineterminator="\n"))
    return Path(path)
