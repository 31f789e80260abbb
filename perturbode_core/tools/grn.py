"""The gene regulatory network read off the model: G = A diag(alpha_eff) B.

``G[i, j]`` is the effect of regulator j on target i in standardised units (DESIGN section 2);
exports list edges as ``source -> target`` (j -> i) with their signed weight. ``alpha_eff`` is
alpha (``plain``) or alpha times the mean over cells of sigma'(B z + b) (``jacobian``: the average
Jacobian of the regulatory term, which discounts modules that sit saturated).
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch

from perturbode_core.io.files import atomic_path, write_text_atomic
from perturbode_core.errors import PerturbODEError, check_choice

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
        alpha = model.alpha
        if alpha_mode == "jacobian":
            if cells is None:
                raise PerturbODEError("The average-Jacobian network needs cells", where="alpha_mode='jacobian'",
                                      fix="Pass cells (e.g. the control cells) or use alpha_mode='plain'")
            z = model.standardize(np.asarray(cells, dtype=np.float32))
            alpha = alpha * model.activation_derivative(z @ model.B.T + model.b).mean(0)
        G = (model.A * alpha) @ model.B
    return G.numpy().astype(np.float64)


def edge_table(G: np.ndarray, gene_names, *, top_k: int | None = None, sparsity: float | None = None,
               threshold: float | None = None, self_loops: bool = False) -> pd.DataFrame:
    """Edges ranked by |weight| (sign kept), optionally binarised.

    Parameters
    ----------
    G
        Network matrix, ``G[i, j]`` = effect of j on i.
    top_k
        Keep the k strongest edges.
    sparsity
        Keep this share of all possible edges (0-1), e.g. 0.05.
    threshold
        Keep edges with |weight| >= threshold.
    self_loops
        Include i -> i edges (excluded by default: decay is modelled apart).

    Returns
    -------
    DataFrame with columns source, target, weight, sign, rank (1 = strongest).
    """
    genes = np.asarray(list(gene_names))
    p = len(genes)
    if G.shape != (p, p):
        raise PerturbODEError(f"Network matrix of shape {G.shape} does not fit {p} genes", fix="Pass the model's genes")
    chosen = [x for x in (top_k, sparsity, threshold) if x is not None]
    if len(chosen) > 1:
        raise PerturbODEError("Choose one of top_k, sparsity or threshold", where="edge selection",
                              fix="Give only one of them")
    tgt, src = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = np.ones((p, p), bool) if self_loops else ~np.eye(p, dtype=bool)
    w = G[keep]
    s, t = src[keep], tgt[keep]
    order = np.argsort(-np.abs(w), kind="stable")
    n = len(order)
    if top_k is not None:
        if top_k < 0:
            raise PerturbODEError(f"top_k must be >= 0, got {top_k}", fix="Give a number of edges")
        n = min(int(top_k), n)
    elif sparsity is not None:
        if not 0 <= sparsity <= 1:
            raise PerturbODEError(f"sparsity must be in [0, 1], got {sparsity}", fix="Give e.g. 0.05")
        n = int(round(sparsity * len(order)))
    elif threshold is not None:
        n = int((np.abs(w) >= threshold).sum())
    order = order[:n]
    return pd.DataFrame({
        "source": genes[s[order]], "target": genes[t[order]], "weight": w[order],
        "sign": np.sign(w[order]).astype(int), "rank": np.arange(1, n + 1),
    })


def model_edges(model, *, alpha_mode: str = "plain", cells=None, **selection) -> pd.DataFrame:
    """:func:`edge_table` of a model's network (selection: top_k / sparsity / threshold)."""
    return edge_table(grn_matrix(model, alpha_mode=alpha_mode, cells=cells), model.gene_names, **selection)


def to_networkx(edges: pd.DataFrame, *, genes=None) -> nx.DiGraph:
    """A directed graph with ``weight``, ``abs_weight`` and ``sign`` on each edge."""
    g = nx.DiGraph()
    if genes is not None:
        g.add_nodes_from(map(str, genes))
    for row in edges.itertuples(index=False):
        g.add_edge(str(row.source), str(row.target), weight=float(row.weight), abs_weight=abs(float(row.weight)),
                   sign=int(row.sign))
    return g


def write_edges_csv(edges: pd.DataFrame, path) -> Path:
    """Write ``source,target,weight,sign`` (plus rank) atomically."""
    write_text_atomic(path, edges.to_csv(index=False))
    return Path(path)


def graphml_bytes(edges: pd.DataFrame, *, genes=None, node_attributes: dict | None = None) -> bytes:
    """GraphML of the edges (opens in Cytoscape and Gephi); node attributes optional."""
    g = to_networkx(edges, genes=genes)
    for name, values in (node_attributes or {}).items():
        nx.set_node_attributes(g, {str(k): v for k, v in values.items() if str(k) in g}, name)
    return "\n".join(nx.generate_graphml(g)).encode("utf-8")


def write_graphml(edges: pd.DataFrame, path, *, genes=None, node_attributes: dict | None = None) -> Path:
    """Write the edges as GraphML atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(graphml_bytes(edges, genes=genes, node_attributes=node_attributes))
    return Path(path)
