"""Knockout cells that escaped their perturbation, told apart in the spirit of Mixscape
(Papalexi et al. 2021, Nat Genet; pertpy implements it; this is our own reading of the method).

In a CRISPR knockout screen many cells that carry a guide keep a working target (in-frame edits,
one allele cut): their expression looks like control cells. Training on them dilutes every
knockout's effect. For each knockout condition:

1. **Perturbation signature** of every cell: its expression minus the mean of its ``n_neighbors``
   nearest control cells in PCA space (within the same ``split``, e.g. replicate), which removes
   the variation that controls share (cell cycle, replicate, IFN response strength).
2. **Signature genes**: genes whose signature differs between the condition's cells and the
   control cells (Welch t-test, Benjamini-Hochberg q < ``de_q``, mean difference at least
   ``de_min_change``). With fewer than ``min_de_genes`` the condition shows no detectable
   signature: its cells are ``unclassified`` (they cannot be told apart; they are kept).
3. **Projection** of each cell's signature on the condition's mean signature direction (restricted
   to those genes), scaled so that the perturbed cells sit near 1 and controls near 0.
4. **Two-component Gaussian mixture** of the projections: one component is the control cells'
   distribution (held fixed at their mean and spread), the other is fitted (EM). A cell is
   ``perturbed`` when its posterior probability of the fitted component exceeds 0.5, otherwise
   ``escaping``. Steps 3-4 repeat with the direction re-estimated from the perturbed cells until
   the classes stop changing (at most ``max_iter`` times).

The EM is written here (15 lines) because scikit-learn's ``GaussianMixture`` cannot hold one
component fixed at the control distribution, which is what anchors the "not perturbed" class.

Only knockout and knock-down conditions are classified (the loss-of-function screens Mixscape is
for); every other condition's cells are ``unclassified``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

# scipy.stats and scipy.spatial are imported where they are used: this module is imported on the
# dashboard's first page (through the dataset module), and those two cost ~0.7 s to import

from perturbode_core.errors import PerturbODEError

#: Cell classes, as in ``obs['perturbation_class']``.
CLASSES = ("control", "perturbed", "escaping", "unclassified")
#: Types whose cells are classified.
LOSS_OF_FUNCTION = ("knockout", "knockdown")


@dataclass
class EscapeResult:
    """Each cell's class and each condition's knockout efficiency.

    Attributes
    ----------
    cell_class
        One of :data:`CLASSES` per cell.
    posterior
        Probability that the cell is perturbed (NaN for control and unclassified cells).
    table
        One row per perturbed condition: ``condition, targets, cells, perturbed, escaping,
        efficiency`` (perturbed / cells; NaN when unclassified), ``signature_genes`` and ``status``
        (``classified``, ``no detectable signature``, ``not a knockout``).
    """

    cell_class: np.ndarray
    posterior: np.ndarray
    table: pd.DataFrame


def classify_escapees(X: np.ndarray, labels: np.ndarray, control: str, interventions: dict, *,
                      split: np.ndarray | None = None, n_pcs: int = 20, n_neighbors: int = 20,
                      min_de_genes: int = 5, de_q: float = 0.05, de_min_change: float = 0.1,
                      max_iter: int = 10, seed: int = 0, where: str = "AnnData") -> EscapeResult:
    """Classify every knockout condition's cells as perturbed or escaping (module docstring).

    Parameters
    ----------
    X
        Log-normalised expression, cells x genes.
    labels
        Condition of each cell.
    control
        The control label.
    interventions
        ``{condition: [Intervention]}``.
    split
        Optional group of each cell (e.g. replicate): control neighbours come from the same group.
    n_pcs, n_neighbors
        PCA dimensions and control neighbours of the signature.
    min_de_genes, de_q, de_min_change
        When a condition has a detectable signature.
    max_iter
        Re-estimations of the signature direction.
    seed
        Seed of the (randomised) PCA.
    """
    labels = np.asarray(labels).astype(str)
    ctrl = labels == control
    if ctrl.sum() < max(n_neighbors, 2):
        raise PerturbODEError(f"Escape classification needs at least {max(n_neighbors, 2)} control cells; "
                              f"there are {int(ctrl.sum())}", where=f"{where}, control {control!r}",
                              fix="Load more control cells or lower the neighbours (escape_neighbors)")
    sig = perturbation_signature(X, ctrl, split=split, n_pcs=n_pcs, n_neighbors=n_neighbors, seed=seed)
    cell_class = np.where(ctrl, "control", "unclassified").astype(object)
    posterior = np.full(len(labels), np.nan)
    rows = []
    groups = pd.Series(np.arange(len(labels))).groupby(labels).indices
    for cond in sorted(interventions):
        cells = np.asarray(groups.get(cond, []), dtype=np.int64)
        ivs = interventions[cond]
        row = {"condition": cond, "targets": "+".join(iv.gene for iv in ivs), "cells": len(cells),
               "perturbed": 0, "escaping": 0, "efficiency": np.nan, "signature_genes": 0}
        if not len(cells):
            rows.append({**row, "status": "no cells"})
            continue
        if not all(iv.kind in LOSS_OF_FUNCTION for iv in ivs):
            rows.append({**row, "status": "not a knockout"})
            continue
        de = _signature_genes(sig[cells], sig[ctrl], de_q, de_min_change)
        row["signature_genes"] = len(de)
        if len(de) < min_de_genes:
            rows.append({**row, "status": "no detectable signature"})
            continue
        post = _mixture_posterior(sig[cells][:, de], sig[ctrl][:, de], max_iter)
        posterior[cells] = post
        cell_class[cells] = np.where(post > 0.5, "perturbed", "escaping")
        n_pert = int((post > 0.5).sum())
        rows.append({**row, "perturbed": n_pert, "escaping": len(cells) - n_pert,
                     "efficiency": n_pert / len(cells), "status": "classified"})
    table = pd.DataFrame(rows, columns=["condition", "targets", "cells", "perturbed", "escaping", "efficiency",
                                        "signature_genes", "status"])
    return EscapeResult(cell_class=cell_class.astype(str), posterior=posterior, table=table)


def perturbation_signature(X: np.ndarray, ctrl: np.ndarray, *, split=None, n_pcs: int = 20,
                           n_neighbors: int = 20, seed: int = 0) -> np.ndarray:
    """Each cell's expression minus the mean of its nearest control cells in PCA space (float32).

    Genes are standardised for the PCA only (so that highly expressed genes do not dominate the
    neighbours); the signature is in the data's units. A control cell's own profile is left out
    of its neighbours.
    """
    from scipy.spatial import cKDTree
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float32)
    n, p = X.shape
    sd = X.std(0)
    Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    k_pc = int(max(1, min(n_pcs, p - 1, n - 1)))
    # "auto": the covariance eigendecomposition for tall matrices of < 1,000 genes (exact, ~20x
    # faster than randomised SVD there), randomised SVD otherwise
    emb = PCA(n_components=k_pc, svd_solver="auto", random_state=seed).fit_transform(Z)
    sig = np.empty_like(X)
    groups = np.zeros(n, dtype=np.int64) if split is None else pd.factorize(np.asarray(split))[0]
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        refs = members[ctrl[members]]
        if len(refs) < 2:  # a split without controls: use every control
            refs = np.flatnonzero(ctrl)
        k = int(min(n_neighbors, len(refs) - 1))
        _, nn = cKDTree(emb[refs]).query(emb[members], k=k + 1)
        nn = np.atleast_2d(nn)
        # drop the cell itself from a control's neighbours; others drop their farthest neighbour
        self_hit = refs[nn[:, 0]] == members
        nn = np.where(self_hit[:, None], nn[:, 1:], nn[:, :-1])
        # the neighbour means as one sparse product (a cells x k x genes gather would take GBs)
        avg = sp.csr_matrix((np.full(nn.size, 1.0 / k, np.float32), nn.ravel(), np.arange(0, nn.size + 1, k)),
                            shape=(len(members), len(refs)))
        sig[members] = X[members] - avg @ X[refs]
    return sig


def _signature_genes(cond_sig: np.ndarray, ctrl_sig: np.ndarray, de_q: float, min_change: float) -> np.ndarray:
    """Genes whose signature differs between the condition and the controls (Welch t-test, BH)."""
    from scipy import stats

    if len(cond_sig) < 2:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        _, p = stats.ttest_ind(cond_sig, ctrl_sig, axis=0, equal_var=False)
    p = np.nan_to_num(p, nan=1.0)
    q = stats.false_discovery_control(p)
    change = cond_sig.mean(0) - ctrl_sig.mean(0)
    return np.flatnonzero((q < de_q) & (np.abs(change) >= min_change))


def _mixture_posterior(cond_sig: np.ndarray, ctrl_sig: np.ndarray, max_iter: int) -> np.ndarray:
    """P(perturbed) of each condition cell: projection on the mean signature direction, then a
    two-component mixture whose control component is fixed (module docstring, steps 3-4)."""
    perturbed = np.ones(len(cond_sig), bool)
    post = np.ones(len(cond_sig))
    for _ in range(max(1, max_iter)):
        direction = cond_sig[perturbed].mean(0) - ctrl_sig.mean(0)
        norm = float(direction @ direction)
        if norm <= 0:
            break
        x, x0 = cond_sig @ direction / norm, ctrl_sig @ direction / norm
        post = _em_fixed_control(x, float(x0.mean()), float(max(x0.std(), 1e-6)))
        new = post > 0.5
        if not new.any() or (new == perturbed).all():
            break
        perturbed = new
    return post


def _em_fixed_control(x: np.ndarray, mu0: float, sd0: float, n_steps: int = 200) -> np.ndarray:
    """EM of ``w N(mu1, sd1) + (1 - w) N(mu0, sd0)`` with the control component fixed; returns each
    point's posterior of the free component."""
    def log_normal(mu, sd):  # scipy.stats.norm.logpdf costs 10x more per call on these short vectors
        return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)

    mu1, sd1, w = float(x.mean()), float(max(x.std(), 1e-6)), 0.5
    log0 = log_normal(mu0, sd0)
    r = np.full(len(x), 0.5)
    for _ in range(n_steps):
        l1 = np.log(w) + log_normal(mu1, sd1)
        l0 = np.log1p(-w) + log0
        r_new = np.exp(l1 - np.logaddexp(l0, l1))
        w = float(np.clip(r_new.mean(), 1e-6, 1 - 1e-6))
        mu1 = float((r_new * x).sum() / max(r_new.sum(), 1e-12))
        sd1 = float(max(np.sqrt((r_new * (x - mu1) ** 2).sum() / max(r_new.sum(), 1e-12)), 1e-6))
        if np.abs(r_new - r).max() < 1e-6:
            r = r_new
            break
        r = r_new
    return r
