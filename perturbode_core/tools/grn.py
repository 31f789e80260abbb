"""The gene regulatory network read off the model: G = A diag(alpha_eff) B.

``G[i, j]`` is the effect of regulator j on target i in standardised units (DESIGN section 2);
exports list edges as ``source -> target`` (j -> i) with their signed weight. ``alpha_eff`` is
alpha (``plain``) or alpha times the mean over cells of sigma'(B z + b) (``jacobian``: the average
Jacobian of the regulatory term, which discounts modules that sit saturated).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.io.edges import edge_table

ALPHA_EFF_MODES = ("plain", "jacobian")


def grn_matrix(model, *, alpha_mode: str = "plain", cells=None) -> np.ndarray:
    """The signed network G (genes x genes), ``G[i, j]`` = effect of gene j on gene i.

    Parameters
    ----------
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE`.
    alpha_mode
        ``plain`` (alpha) or ``jacobian`` (alpha times the mean sigma'(B z + b) over ``cells``).
    cells
        Cells (data units) for the Jacobian mode; required there.
    """
    check_choice("alpha_mode", alpha_mode, ALPHA_EFF_MODES)
    with torch.no_grad():
        G = (model.A * _alpha_eff(model, alpha_mode, cells)) @ model.B
    return G.numpy().astype(np.float64)


def _alpha_eff(model, alpha_mode: str, cells) -> torch.Tensor:
    """alpha (``plain``) or alpha times the mean sigma'(B z + b) over ``cells`` (``jacobian``)."""
    alpha = model.alpha
    if alpha_mode == "jacobian":
        if cells is None:
            raise PerturbODEError("The average-Jacobian network needs cells", where="alpha_mode='jacobian'",
                                  fix="Pass cells (e.g. the control cells) or use alpha_mode='plain'")
        z = model.standardize(np.asarray(cells, dtype=np.float32))
        alpha = alpha * model.activation_derivative(z @ model.B.T + model.b).mean(0)
    return alpha


def latent_matrix(model, *, alpha_mode: str = "plain", cells=None) -> np.ndarray:
    """Effects of the latent (unmeasured) regulators on the measured genes, genes x latent:
    ``A diag(alpha_eff) W_latent`` (the same reading as :func:`grn_matrix`)."""
    check_choice("alpha_mode", alpha_mode, ALPHA_EFF_MODES)
    with torch.no_grad():
        alpha = _alpha_eff(model, alpha_mode, cells)
        L = (model.A * alpha) @ model.W_latent
    return L.numpy().astype(np.float64)


def latent_edges(model, *, alpha_mode: str = "plain", cells=None, top_k: int | None = None) -> pd.DataFrame:
    """Edges from the latent (unmeasured) regulators to the measured genes, strongest first:
    ``source, target, weight, sign, rank, measured`` (``measured`` is False for every row)."""
    columns = ["source", "target", "weight", "sign", "rank", "measured"]
    if model.n_latent == 0:
        return pd.DataFrame(columns=columns)
    L = latent_matrix(model, alpha_mode=alpha_mode, cells=cells)
    tgt, src = np.meshgrid(np.arange(L.shape[0]), np.arange(L.shape[1]), indexing="ij")
    w = L.ravel()
    order = np.argsort(-np.abs(w), kind="stable")
    if top_k is not None:
        order = order[:int(top_k)]
    genes, latent = np.asarray(model.gene_names, dtype=object), np.asarray(model.latent_names, dtype=object)
    return pd.DataFrame({"source": latent[src.ravel()[order]], "target": genes[tgt.ravel()[order]],
                         "weight": w[order], "sign": np.sign(w[order]).astype(int),
                         "rank": np.arange(1, len(order) + 1), "measured": False})[columns]


def model_edges(model, *, alpha_mode: str = "plain", cells=None, **selection) -> pd.DataFrame:
    """:func:`edge_table` of a model's network (selection: top_k / sparsity / threshold)."""
    return edge_table(grn_matrix(model, alpha_mode=alpha_mode, cells=cells), model.gene_names, **selection)


