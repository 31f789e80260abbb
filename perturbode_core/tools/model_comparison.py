"""Two models side by side: how much their networks agree, and their scores on the same conditions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.edges import edge_table


@dataclass
class NetworkComparison:
    """The strongest edges of two networks matched.

    ``edges`` has one row per edge in either top-k: ``source, target, weight_a, weight_b`` and
    ``agreement`` (``both`` with the same sign, ``opposite sign``, ``only <a>``, ``only <b>``).
    """

    edges: pd.DataFrame
    names: tuple[str, str]
    top_k: int
    jaccard: float          # shared edges / edges in either top-k (sign ignored)
    sign_agreement: float   # share of shared edges with the same sign (NaN when none is shared)
    correlation: float      # Pearson correlation of the two matrices' off-diagonal entries

    def counts(self) -> dict:
        """How many edges fall in each agreement class."""
        return self.edges["agreement"].value_counts().to_dict()


def compare_networks(G_a, G_b, gene_names, *, top_k: int, names=("A", "B")) -> NetworkComparison:
    """Match the ``top_k`` strongest edges of two networks over the same genes.

    Parameters
    ----------
    G_a, G_b
        Network matrices (``G[i, j]`` = effect of j on i) of the same genes.
    gene_names
        The genes.
    top_k
        Edges taken from each network.
    names
        Labels of the two models (used in the ``only ...`` classes).
    """
    A, B = np.asarray(G_a, float), np.asarray(G_b, float)
    if A.shape != B.shape:
        raise PerturbODEError(f"Networks of shapes {A.shape} and {B.shape} cannot be compared",
                              where="model comparison", fix="Compare models trained on the same genes")
    ea = edge_table(A, gene_names, top_k=top_k, nonzero=True)
    eb = edge_table(B, gene_names, top_k=top_k, nonzero=True)
    merged = ea[["source", "target", "weight"]].merge(eb[["source", "target", "weight"]], on=["source", "target"],
                                                       how="outer", suffixes=("_a", "_b"))
    idx = {g: i for i, g in enumerate(map(str, gene_names))}
    rows, cols = merged["target"].map(idx).to_numpy(), merged["source"].map(idx).to_numpy()
    merged["weight_a"] = A[rows, cols]  # the weight in each network, also where it is outside the top-k
    merged["weight_b"] = B[rows, cols]
    in_a = merged.set_index(["source", "target"]).index.isin(ea.set_index(["source", "target"]).index)
    in_b = merged.set_index(["source", "target"]).index.isin(eb.set_index(["source", "target"]).index)
    same = np.sign(merged["weight_a"]) == np.sign(merged["weight_b"])
    merged["agreement"] = np.select([in_a & in_b & same, in_a & in_b, in_a], ["both", "opposite sign",
                                    f"only {names[0]}"], f"only {names[1]}")
    order = np.argsort(-np.maximum(merged["weight_a"].abs(), merged["weight_b"].abs()).to_numpy(), kind="stable")
    merged = merged.iloc[order].reset_index(drop=True)
    shared = int((in_a & in_b).sum())
    off = ~np.eye(A.shape[0], dtype=bool)
    a, b = A[off], B[off]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return NetworkComparison(edges=merged, names=tuple(names), top_k=int(top_k),
                             jaccard=shared / max(len(merged), 1),
                             sign_agreement=float(same[in_a & in_b].mean()) if shared else float("nan"),
                             correlation=corr)


def shared_heldout(settings_a, settings_b, data) -> list[str]:
    """Conditions neither model saw (the fair test of both); empty when there is none."""
    held_a = set(settings_a.heldout_conditions(data)) if settings_a is not None else set()
    held_b = set(settings_b.heldout_conditions(data)) if settings_b is not None else set()
    return [c for c in data.perturbations if c in held_a and c in held_b]
