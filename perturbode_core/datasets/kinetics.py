"""Production laws of a :class:`~.network.GeneNetwork`, compiled for fast vectorised evaluation.

Additive (SERGIO) edges are grouped by (regulator, half-response, Hill coefficient), so each step
computes one Hill curve per group instead of one per edge, and the sum over edges becomes one
matrix product: activation adds ``K a``, repression adds ``K (1 - a) = K - K a``, hence

    production = basal + sum_repression K + a @ W,   W[g, i] = +K (activation) or -K (repression).

Boolean-rule genes use the multilinear interpolation of their truth table over Hill-transformed
regulator levels.
"""

from __future__ import annotations

import numpy as np

from perturbode_core.errors import PerturbODEError
from perturbode_core.datasets.gene_network import GeneNetwork


def hill_activation(x: np.ndarray, half: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``x^n / (h^n + x^n)`` for non-negative ``x`` (broadcasting)."""
    r = np.maximum(x, 0.0) / half
    r = r * r if np.all(n == 2) else r ** n  # n = 2 is by far the most common; x*x is ~10x faster
    return r / (1.0 + r)


def multilinear(table: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of a Boolean truth table at soft inputs ``a`` (cells x k).

    Row ``r`` of ``table`` sets input ``i`` to bit ``(r >> (k-1-i)) & 1``; each step contracts the
    least significant remaining input, so cost is cells x 2^k.
    """
    n_cells, k = a.shape
    out = np.broadcast_to(table.astype(float), (n_cells, table.size))
    for i in range(k - 1, -1, -1):
        out = out.reshape(n_cells, -1, 2)
        ai = a[:, i:i + 1]
        out = out[:, :, 0] * (1.0 - ai) + out[:, :, 1] * ai
    return out[:, 0]


class Kinetics:
    """The network's production function, ready to be called on many cells at once."""

    def __init__(self, network: GeneNetwork):
        self.network = network
        genes = network.genes
        idx = {g: i for i, g in enumerate(genes)}
        p = len(genes)
        edges = network.resolved_edges()
        additive = edges[~edges["target"].isin(network.rules)]
        if (additive["sign"] == 0).any():
            bad = additive[additive["sign"] == 0].iloc[0]
            raise PerturbODEError(f"Edge {bad['source']} -> {bad['target']} has sign 0 but its target has no Boolean rule",
                                  where=network.name, fix="Give additive edges sign +1 or -1")
        keys = list(zip(additive["source"].map(idx), additive["half"], additive["hill"]))
        groups = {key: g for g, key in enumerate(dict.fromkeys(keys))}
        self.group_src = np.array([k[0] for k in groups], dtype=int)
        self.group_half = np.array([k[1] for k in groups], dtype=float)
        self.group_hill = np.array([k[2] for k in groups], dtype=float)
        self.W = np.zeros((len(groups), p))
        self.rep_const = np.zeros(p)
        for key, tgt, k, sign in zip(keys, additive["target"].map(idx), additive["strength"], additive["sign"]):
            self.W[groups[key], tgt] += k if sign > 0 else -k
            if sign < 0:
                self.rep_const[tgt] += k
        self.decay = network.decay.copy()
        self.rules = []
        for gene, rule in network.rules.items():
            rows = edges[edges["target"] == gene].set_index("source")
            regs = list(rule.regulators)
            missing = [r for r in regs if r not in idx]
            if missing:
                raise PerturbODEError(f"Rule of {gene} names unknown gene(s) {', '.join(missing)}",
                                      where=network.name, fix="Add them to the genes")
            # regulators whose edge was dropped (no influence) still need a Hill curve to index
            half = np.array([rows["half"].get(r, np.nan) for r in regs], dtype=float)
            fallback = 0.5 * network.max_production()[[idx[r] for r in regs]] / network.decay[[idx[r] for r in regs]]
            half = np.where(np.isnan(half), np.maximum(fallback, 1e-3), half)
            hill = np.array([rows["hill"].get(r, 2.0) for r in regs], dtype=float)
            hill = np.where(np.isnan(hill), 2.0, hill)
            self.rules.append((idx[gene], np.array([idx[r] for r in regs], dtype=int), half, hill,
                               rule.table.astype(float), float(network.vmax[idx[gene]])))

    def production(self, x: np.ndarray, basal: np.ndarray, activity: np.ndarray | None = None) -> np.ndarray:
        """Production rates of all genes in each cell.

        Parameters
        ----------
        x
            Levels, cells x genes.
        basal
            Basal rates, cells x genes (the row of each cell's type).
        activity
            Optional factor on each gene's *effect on others* (drug-like activity interventions).
        """
        xin = x if activity is None else x * activity
        prod = basal + self.rep_const
        if self.W.shape[0]:
            a = hill_activation(xin[:, self.group_src], self.group_half, self.group_hill)
            prod = prod + a @ self.W
        else:
            prod = np.array(prod, dtype=float, copy=True)
        for gi, regs, half, hill, table, vmax in self.rules:
            if regs.size:
                prod[:, gi] = vmax * multilinear(table, hill_activation(xin[:, regs], half, hill))
            else:
                prod[:, gi] = vmax * table[0]
        return prod
