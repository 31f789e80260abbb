"""2-D embeddings of cells (PCA, UMAP) shared by the Data and Simulate pages and the report."""

from __future__ import annotations

import numpy as np


# ------------------------------------------------------------------------------------ embeddings
def pca_fit(X, *, n_components: int = 2, max_cells: int = 20000, seed: int = 0) -> dict:
    """A PCA of cells (centred, not scaled), fitted on at most ``max_cells`` cells.

    Returns ``{"mean", "components" (k, p), "explained" (k,)}``; project with :func:`pca_project`.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) > max_cells:
        X = X[np.random.default_rng(seed).choice(len(X), max_cells, replace=False)]
    mean = X.mean(0)
    k = int(min(n_components, X.shape[1], max(len(X) - 1, 1)))
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s ** 2
    # fix the sign of each axis (largest loading positive) so plots do not flip between runs
    signs = np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(1)])
    signs[signs == 0] = 1
    comps = vt[:k] * signs[:, None]
    if k < n_components:  # one-gene data: pad with a zero axis
        comps = np.vstack([comps, np.zeros((n_components - k, X.shape[1]))])
        var = np.concatenate([var, np.zeros(n_components)])
    return {"mean": mean, "components": comps, "explained": var[:n_components] / max(var.sum(), 1e-12)}


def pca_project(X, fit: dict) -> np.ndarray:
    """Coordinates of cells ``X`` (..., p) on a :func:`pca_fit` (..., k)."""
    return (np.asarray(X, dtype=np.float64) - fit["mean"]) @ fit["components"].T


def subsample(n: int, max_n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_n`` of ``n`` items (seeded)."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_n, replace=False))


#: Embedding methods of :func:`embed_cells`.
EMBEDDINGS = ("pca", "umap")
#: UMAP optimisation epochs: umap-learn's own choice for large data; its 500 for small data took
#: 6 s on the 3,450-cell demo for a picture that 200 already settles (2.6 s).
UMAP_EPOCHS = 200


def umap_coords(X, *, seed: int = 0) -> np.ndarray:
    """UMAP coordinates (n, 2) of cells X (scanpy: PCA, neighbours, UMAP)."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(X=np.asarray(X, dtype=np.float32))
    sc.pp.pca(a, n_comps=int(max(1, min(30, a.n_vars - 1, a.n_obs - 1))))
    sc.pp.neighbors(a, n_neighbors=int(min(15, max(2, a.n_obs - 1))), random_state=seed)
    sc.tl.umap(a, random_state=seed, maxiter=UMAP_EPOCHS)
    return np.asarray(a.obsm["X_umap"])


def warm_up_umap() -> None:
    """Compile UMAP's numba kernels (8 s the first time in a process) on a few random cells."""
    umap_coords(np.random.default_rng(0).normal(size=(60, 8)))


def embed_cells(data, *, method: str = "pca", max_cells: int = 5000, seed: int = 0) -> dict:
    """A 2-D embedding of (a seeded subsample of) the cells of a dataset.

    Parameters
    ----------
    data
        A :class:`~perturbode_core.data.dataset.PerturbationData`.
    method
        ``pca`` (fast; the default) or ``umap`` (scanpy: PCA, neighbours, UMAP on the subsample).
    max_cells
        Cells embedded (a seeded subsample above this).

    Returns
    -------
    dict
        ``index`` (rows of the data embedded), ``coords`` (n, 2), ``labels`` (their conditions),
        ``axes`` (axis titles) and ``pca`` (a :func:`pca_fit` of all cells, so simulated cells can
        be projected on the same axes whatever the method).
    """
    from perturbode_core.errors import check_choice

    check_choice("embedding", method, EMBEDDINGS)
    idx = subsample(data.n_cells, max_cells, seed=seed)
    X = np.asarray(data.X[idx], dtype=np.float32)
    fit = pca_fit(data.X, n_components=2, seed=seed)
    if method == "umap":
        coords, axes = umap_coords(X, seed=seed), ("UMAP1", "UMAP2")
    else:
        coords = pca_project(X, fit)
        ev = fit["explained"]
        axes = (f"PC1 ({ev[0]:.0%})", f"PC2 ({ev[1]:.0%})")
    return {"index": idx, "coords": np.asarray(coords), "labels": data.labels[idx], "axes": axes, "pca": fit}
