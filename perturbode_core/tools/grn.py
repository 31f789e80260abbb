"""The gene regulatory network read off the model.

``G = A diag(alpha_eff) B``: ``G[i, j]`` is the direct effect of regulator j on target i in
standardised units (DESIGN section 2). ``alpha_eff`` is alpha (``plain``) or alpha times the mean
over cells of sigma'(B z + b) (``jacobian``: the average Jacobian of the regulatory term, which
discounts modules that sit saturated).

Edges are ranked by one of two readings (:data:`NETWORK_READINGS`):

- ``combined`` (the default): the percentile rank of |G| plus ``fit`` times the percentile rank of
  the model's own simulated response of the target to the training perturbations of the
  regulator (:mod:`perturbode_core.tools.response_evidence`; ``fit`` is how well those responses
  reproduce the measured ones, 0-1), signed by G. The model's direct and total effects agreeing,
  trusted as far as the data allow; a model with no training perturbation of a single measured
  gene (or an older checkpoint) is read as ``direct``.
- ``direct``: G itself, ranked by |G|.

Exports list edges as ``source -> target`` (j -> i) with their signed ``weight`` (the reading's
score) and, beside it, ``G``.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.io.edges import edge_table

ALPHA_EFF_MODES = ("plain", "jacobian")
#: how edges are ranked (see the module docstring); the first is the default
NETWORK_READINGS = ("combined", "direct")


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


def latent_edges(model, *, reading: str = "combined", alpha_mode: str = "plain", cells=None,
                 top_k: int | None = None) -> pd.DataFrame:
    """Edges from the latent (unmeasured) regulators to the measured genes, strongest first:
    ``source, target, weight, sign, rank, measured, G`` (``measured`` is False for every row;
    ``weight`` the score of ``reading``, on the same scale as :func:`network_matrix`'s, so that
    both kinds of edge can be ranked together; ``G`` the direct effect ``A diag(alpha) W_latent``)."""
    columns = ["source", "target", "weight", "sign", "rank", "measured", "G"]
    if model.n_latent == 0:
        return pd.DataFrame(columns=columns)
    L = latent_matrix(model, alpha_mode=alpha_mode, cells=cells)
    used = network_reading(model, reading)
    scores = L if used == "direct" else \
        _scores(model, grn_matrix(model, alpha_mode=alpha_mode, cells=cells), used, L)[1]
    tgt, src = np.meshgrid(np.arange(L.shape[0]), np.arange(L.shape[1]), indexing="ij")
    w = scores.ravel()
    order = np.argsort(-np.abs(w), kind="stable")
    if top_k is not None:
        order = order[:int(top_k)]
    genes, latent = np.asarray(model.gene_names, dtype=object), np.asarray(model.latent_names, dtype=object)
    return pd.DataFrame({"source": latent[src.ravel()[order]], "target": genes[tgt.ravel()[order]],
                         "weight": w[order], "sign": np.sign(w[order]).astype(int),
                         "rank": np.arange(1, len(order) + 1), "measured": False,
                         "G": L.ravel()[order]})[columns]


def percentile_rank(M: np.ndarray) -> np.ndarray:
    """Percentile ranks (0-1] of |M| over all its entries, ties sharing their mean rank.

    The zeros (most of a response matrix: the columns of unperturbed genes) are counted, not
    sorted: only the nonzero entries are ranked, which keeps a 10,000-gene response matrix cheap.
    """
    from scipy.stats import rankdata

    a = np.abs(np.asarray(M, dtype=np.float64)).ravel()
    n = a.size
    out = np.empty(n, dtype=np.float64)
    nz = a != 0
    n_zero = n - int(nz.sum())
    out[~nz] = (n_zero + 1) / 2.0  # the mean of ranks 1..n_zero
    out[nz] = n_zero + rankdata(a[nz])
    return (out / max(n, 1)).reshape(np.shape(M))


def network_reading(model, reading: str = "combined") -> str:
    """The reading :func:`network_matrix` uses: ``combined`` needs the model's response evidence
    (set by training); without it the network is ``direct``."""
    check_choice("reading", reading, NETWORK_READINGS)
    if reading == "combined" and getattr(model, "response_evidence", None) is None:
        return "direct"
    return reading


def describe_reading(model, reading: str = "combined") -> str:
    """One sentence for captions and reports: how the edges of ``model`` are ranked in ``reading``."""
    used = network_reading(model, reading)
    if used == "combined":
        ev = model.response_evidence
        return (f"Edges are ranked by the model's direct effects (G = A·diag(α)·B) together with its simulated "
                f"responses to the {ev.n_perturbations} training perturbations, which match the measured responses "
                f"with median correlation {ev.fit:.2f} (their weight beside G); weight is the score (0–2, signed "
                "by G), G the direct effect.")
    if reading == "combined":
        return ("Edges are ranked by |G| (G = A·diag(α)·B): this model has no simulated training responses (it was "
                "saved before they were kept, or no training perturbation targets a single measured gene).")
    return "Edges are ranked by |G|, the model's direct effects (G = A·diag(α)·B)."


def network_matrix(model, *, reading: str = "combined", alpha_mode: str = "plain", cells=None) -> np.ndarray:
    """The signed edge scores that rank the network (genes x genes, ``[i, j]``: j -> i).

    ``combined``: ``sign(G) * (pct(|G|) + fit * pct(R))`` with ``R`` the model's simulated responses
    to its training perturbations (:class:`~perturbode_core.tools.response_evidence.ResponseEvidence`)
    and ``pct`` the percentile rank over all pairs, the unmeasured regulators' edges
    (:func:`latent_edges`) included (scores in [0, 2]); ``direct``: ``G``. See the
    module docstring; ``alpha_mode`` and ``cells`` are those of :func:`grn_matrix`.
    """
    G = grn_matrix(model, alpha_mode=alpha_mode, cells=cells)
    return _gene_scores(model, G, network_reading(model, reading), alpha_mode, cells)


def _gene_scores(model, G: np.ndarray, used: str, alpha_mode: str, cells) -> np.ndarray:
    """The genes' edge scores of ``used`` from the model's ``G``."""
    if used == "direct":
        return G
    L = latent_matrix(model, alpha_mode=alpha_mode, cells=cells) if model.n_latent else None
    return _scores(model, G, used, L)[0]


def _scores(model, G: np.ndarray, used: str, L: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The scores of ``used`` (a resolved reading) of the genes' edges and of the unmeasured
    regulators' edges (``L``, genes x latent; None when the model has none). The percentile ranks
    are taken over both together, so the two kinds of edge share one scale."""
    if used == "direct":
        return G, L
    ev = model.response_evidence
    p = G.shape[0]
    D = G if L is None else np.hstack([G, L])
    R = ev.dense(p, 0 if L is None else L.shape[1])
    score = percentile_rank(D) + ev.fit * percentile_rank(R)
    score = np.where(D < 0, -score, score)
    return score[:, :p], (None if L is None else score[:, p:])


def model_edges(model, *, reading: str = "combined", alpha_mode: str = "plain", cells=None,
                **selection) -> pd.DataFrame:
    """:func:`edge_table` of a model's network in ``reading`` (selection: top_k / sparsity /
    threshold), with the direct effect ``G`` of every edge beside its ``weight`` (the score)."""
    G = grn_matrix(model, alpha_mode=alpha_mode, cells=cells)
    scores = _gene_scores(model, G, network_reading(model, reading), alpha_mode, cells)
    return ranked_edges(scores, G, model.gene_names, **selection)


def ranked_edges(scores: np.ndarray, G: np.ndarray, gene_names, **selection) -> pd.DataFrame:
    """:func:`edge_table` of ``scores`` (selection: top_k / sparsity / threshold) with each edge's
    direct effect from ``G`` in a column ``G``."""
    table = edge_table(scores, gene_names, **selection)
    index = {str(g): i for i, g in enumerate(gene_names)}
    rows = table["target"].map(index).to_numpy(dtype=np.int64)
    cols = table["source"].map(index).to_numpy(dtype=np.int64)
    table["G"] = np.asarray(G, dtype=np.float64)[rows, cols]
    return table


