"""Expression on load: raw counts normalised (scanpy ``normalize_total`` + ``log1p``) and the genes
to model chosen (scanpy highly variable genes, always keeping the measured targets).

Real screens measure thousands of genes and people model a few thousand variable ones. A gene that
a condition perturbs is kept whether or not it is variable: dropping it would turn a measured
target into an unmeasured one and lose the direct read-out of its knockout.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from perturbode_core.errors import PerturbODEError, check_choice

#: scanpy ``highly_variable_genes`` flavours offered (``seurat_v3`` ranks raw counts and needs
#: the scikit-misc package; the others rank log-normalised data).
HVG_FLAVORS = ("seurat", "cell_ranger", "seurat_v3")
#: Library size after normalisation (counts per 10,000).
TARGET_SUM = 1e4


def normalize_log1p(counts: np.ndarray, *, where: str = "AnnData") -> np.ndarray:
    """``log1p`` of counts per 10,000 (scanpy ``normalize_total(target_sum=1e4)`` then ``log1p``),
    dense float32."""
    import anndata as ad
    import scanpy as sc

    if counts.size and counts.min() < 0:
        raise PerturbODEError("Normalisation was asked for, but the matrix has negative values "
                              "(it is not raw counts)", where=where,
                              fix="Load it without normalisation, or give the raw counts layer")
    tmp = ad.AnnData(X=np.array(counts, dtype=np.float32, copy=True))
    sc.pp.normalize_total(tmp, target_sum=TARGET_SUM)
    sc.pp.log1p(tmp)
    return np.asarray(tmp.X, dtype=np.float32)


def select_genes(X: np.ndarray, gene_names: list[str], n_top: int, *, keep=(), flavor: str = "seurat",
                 counts: np.ndarray | sp.spmatrix | None = None, where: str = "AnnData") -> np.ndarray:
    """Indices (in the original gene order) of the ``n_top`` most variable genes plus every gene
    in ``keep`` (the measured targets).

    Parameters
    ----------
    X
        Log-normalised expression, cells x genes.
    gene_names
        Gene names (columns of ``X``).
    n_top
        Highly variable genes to select (scanpy ``n_top_genes``); at least 1. The result holds
        more genes when targets outside them are added.
    keep
        Genes always kept (unknown names are ignored).
    flavor
        One of :data:`HVG_FLAVORS`.
    counts
        Raw counts (needed by ``seurat_v3``).
    """
    import anndata as ad
    import scanpy as sc

    check_choice("hvg_flavor", flavor, HVG_FLAVORS)
    if not (isinstance(n_top, (int, np.integer)) and n_top >= 1):
        raise PerturbODEError(f"The number of highly variable genes must be a positive integer, got {n_top!r}",
                              where="option 'hvg'", fix="Give e.g. --hvg 2000")
    p = len(gene_names)
    if n_top >= p:
        return np.arange(p)
    if flavor == "seurat_v3":
        if counts is None:
            raise PerturbODEError("The seurat_v3 flavour ranks raw counts, and none are loaded", where="option 'hvg_flavor'",
                                  fix="Load raw counts with normalisation (--normalize), or use flavour seurat")
        tmp = ad.AnnData(X=counts.copy() if sp.issparse(counts) else np.asarray(counts, np.float32))
    else:
        tmp = ad.AnnData(X=X)
    try:
        hv = sc.pp.highly_variable_genes(tmp, n_top_genes=int(n_top), flavor=flavor, inplace=False)
    except ImportError as exc:
        raise PerturbODEError(f"Highly variable genes of flavour {flavor!r} need a package that is not installed "
                              f"({exc})", where="option 'hvg_flavor'",
                              fix="Install scikit-misc, or use flavour seurat or cell_ranger") from None
    except ValueError as exc:  # e.g. too few distinct dispersions to bin
        raise PerturbODEError(f"Highly variable genes could not be computed ({exc})", where=where,
                              fix="Give a larger --hvg, another flavour, or skip gene selection") from None
    chosen = np.asarray(hv["highly_variable"], dtype=bool)
    index = {g: i for i, g in enumerate(gene_names)}
    for g in keep:
        if g in index:
            chosen[index[g]] = True
    return np.flatnonzero(chosen)
