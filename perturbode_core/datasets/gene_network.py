"""The :class:`GeneNetwork`: genes, signed Hill-kinetics edges, basal rates and decay.

Every network reader returns one, and the simulator runs one. Two kinds of production law share
the class (DESIGN section 2 uses neither; this is the ground-truth world the model is judged in):

* additive (SERGIO, Dibaeinia & Sinha 2020): production of gene i is its basal rate (master
  regulators, per cell type) plus, for every edge j -> i, ``K * x^n / (h^n + x^n)`` (activation)
  or ``K * h^n / (h^n + x^n)`` (repression), with K = |strength|, n the Hill coefficient and h the
  half-response;
* Boolean (``rules``): production is ``vmax_i`` times the multilinear interpolation of the gene's
  Boolean rule over Hill-transformed regulator levels (the "Hill cube"), which keeps the AND / OR
  logic of curated models such as Krumsiek et al. 2011.

Decay is linear (``gamma_i * x_i``) in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.datasets.boolean_rules import BooleanRule

EDGE_COLUMNS = ["source", "target", "sign", "strength", "hill", "half"]


@dataclass
class GeneNetwork:
    """A gene regulatory network with the kinetics to simulate it.

    Attributes
    ----------
    name
        Short name (used in messages and ``uns``).
    genes
        Gene names, unique; the order of the simulated matrix columns.
    edges
        One row per regulator -> target edge: ``source``, ``target``, ``sign`` (+1 activation,
        -1 repression, 0 non-monotone Boolean influence), ``strength`` (K > 0, the maximal
        contribution of an additive edge), ``hill`` (n) and ``half`` (h; NaN = chosen
        automatically, see :meth:`resolved_edges`).
    basal
        Basal production rate, cell types x genes (non-zero for master regulators).
    decay
        Linear decay rate of each gene.
    cell_types
        Names of the rows of ``basal``.
    rules
        Boolean rules of the genes that use the Hill-cube law (target name -> rule).
    vmax
        Maximal production of each Boolean-rule gene (ignored for additive genes).
    initial
        Progenitor state (one level per gene) that cells start from, or None to start from the
        control steady state.
    source
        Where the network came from (file, publication).
    """

    name: str
    genes: list[str]
    edges: pd.DataFrame
    basal: np.ndarray
    decay: np.ndarray
    cell_types: list[str] = field(default_factory=lambda: ["default"])
    rules: dict[str, BooleanRule] = field(default_factory=dict)
    vmax: np.ndarray | None = None
    initial: np.ndarray | None = None
    source: str = ""

    def __post_init__(self):
        self.genes = [str(g) for g in self.genes]
        p = len(self.genes)
        if len(set(self.genes)) != p:
            dup = pd.Index(self.genes)[pd.Index(self.genes).duplicated()].tolist()
            raise PerturbODEError(f"Duplicated gene names in network {self.name!r}: {', '.join(dup[:5])}",
                                  where=self.source or self.name, fix="Give every gene a unique name")
        edges = self.edges.copy() if self.edges is not None else pd.DataFrame(columns=EDGE_COLUMNS)
        for col, default in (("sign", 1), ("strength", 1.0), ("hill", 2.0), ("half", np.nan)):
            if col not in edges.columns:
                edges[col] = default
        edges = edges[EDGE_COLUMNS].reset_index(drop=True)
        edges["source"] = edges["source"].astype(str)
        edges["target"] = edges["target"].astype(str)
        edges["sign"] = edges["sign"].astype(int)
        for col in ("strength", "hill", "half"):
            edges[col] = edges[col].astype(float)
        unknown = sorted((set(edges["source"]) | set(edges["target"])) - set(self.genes))
        if unknown:
            raise PerturbODEError(f"Edges name genes that are not in network {self.name!r}: {', '.join(unknown[:5])}",
                                  where=self.source or self.name, fix="List every regulator and target among the genes")
        if edges.duplicated(["source", "target"]).any():
            raise PerturbODEError(f"Network {self.name!r} lists an edge twice", where=self.source or self.name,
                                  fix="Merge duplicated regulator -> target rows")
        self.edges = edges
        self.basal = np.atleast_2d(np.asarray(self.basal, dtype=float))
        if self.basal.shape[1] != p:
            raise PerturbODEError(f"Basal rates have {self.basal.shape[1]} columns for {p} genes",
                                  where=self.name, fix="Give one basal rate per gene and cell type")
        if len(self.cell_types) != self.basal.shape[0]:
            self.cell_types = [f"type{i}" for i in range(self.basal.shape[0])]
        self.decay = np.broadcast_to(np.asarray(self.decay, dtype=float), (p,)).copy()
        if (self.decay <= 0).any():
            raise PerturbODEError("Decay rates must be positive", where=self.name, fix="Use decay > 0")
        self.vmax = np.ones(p) if self.vmax is None else np.broadcast_to(np.asarray(self.vmax, float), (p,)).copy()
        if self.initial is not None:
            self.initial = np.asarray(self.initial, dtype=float).reshape(p)
        missing = sorted(set(self.rules) - set(self.genes))
        if missing:
            raise PerturbODEError(f"Rules for unknown genes: {', '.join(missing[:5])}", where=self.name,
                                  fix="Name rule targets among the genes")

    # ------------------------------------------------------------------ views
    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def regulators(self) -> list[str]:
        """Genes with at least one outgoing edge, in gene order."""
        src = set(self.edges["source"])
        return [g for g in self.genes if g in src]

    def index(self, gene: str) -> int:
        """Column of ``gene``; a clear error when it is not in the network."""
        try:
            return self.genes.index(gene)
        except ValueError:
            raise PerturbODEError(f"Gene {gene!r} is not in network {self.name!r}", where=self.name,
                                  fix=f"Use one of: {', '.join(self.genes[:10])}...") from None

    def truth_edges(self) -> pd.DataFrame:
        """The ground truth: ``source, target, sign`` (one row per edge, network order)."""
        return self.edges[["source", "target", "sign"]].copy()

    def max_production(self) -> np.ndarray:
        """Largest production rate each gene can reach (for overexpression doses)."""
        out = self.basal.max(axis=0).copy()
        additive = self.edges[~self.edges["target"].isin(self.rules)]
        idx = {g: i for i, g in enumerate(self.genes)}
        np.add.at(out, additive["target"].map(idx).to_numpy(int), additive["strength"].to_numpy())
        for g in self.rules:
            out[idx[g]] = self.vmax[idx[g]]
        return out

    # ------------------------------------------------------- half-responses
    def resolved_edges(self) -> pd.DataFrame:
        """Edges with every missing half-response filled in.

        SERGIO's choice: an edge's half-response is the regulator's mean steady-state level over
        cell types, so that every regulator sits in the responsive middle of its Hill curves.
        For acyclic networks the levels are computed layer by layer exactly as SERGIO does; in
        networks with feedback, a regulator's level is taken with its own inputs at their
        half-responses (Hill terms at 1/2), which needs no ordering.
        """
        edges = self.edges.copy()
        missing = edges["half"].isna()
        if missing.any():
            levels = self._typical_levels()
            edges.loc[missing, "half"] = edges.loc[missing, "source"].map(dict(zip(self.genes, levels)))
        edges["half"] = edges["half"].clip(lower=1e-3)  # a zero half-response makes the Hill curve a step
        return edges

    def _typical_levels(self) -> np.ndarray:
        import networkx as nx

        p = len(self.genes)
        idx = {g: i for i, g in enumerate(self.genes)}
        graph = nx.DiGraph()
        graph.add_nodes_from(range(p))
        graph.add_edges_from((idx[s], idx[t]) for s, t in zip(self.edges["source"], self.edges["target"]) if s != t)
        has_self = bool((self.edges["source"] == self.edges["target"]).any())
        if self.rules or has_self or not nx.is_directed_acyclic_graph(graph):
            prod = self.basal.mean(axis=0).copy()
            np.add.at(prod, self.edges["target"].map(idx).to_numpy(int), 0.5 * self.edges["strength"].to_numpy())
            for g, rule in self.rules.items():
                prod[idx[g]] = self.vmax[idx[g]] * float(rule.table.mean()) if rule.regulators else self.vmax[idx[g]]
            return prod / self.decay
        # SERGIO layering: per cell type levels, half-responses from the mean over cell types
        level = self.basal / self.decay  # (types, p)
        half = level.mean(axis=0)
        by_target = {t: grp for t, grp in self.edges.groupby("target", sort=False)}
        for node in nx.topological_sort(graph):
            gene = self.genes[node]
            if gene not in by_target:
                continue
            grp = by_target[gene]
            src = grp["source"].map(idx).to_numpy(int)
            h = np.where(np.isnan(grp["half"].to_numpy()), np.maximum(half[src], 1e-3), grp["half"].to_numpy())
            x = level[:, src]
            r = (x / h) ** grp["hill"].to_numpy()
            act = r / (1 + r)
            hill = np.where(grp["sign"].to_numpy() >= 0, act, 1 - act)
            prod = self.basal[:, node] + (grp["strength"].to_numpy() * hill).sum(axis=1)
            level[:, node] = prod / self.decay[node]
            half[node] = level[:, node].mean()
        return half

    def subnetwork(self, genes: list[str], *, name: str | None = None) -> "GeneNetwork":
        """The network restricted to ``genes`` (edges among them; rules are dropped)."""
        keep = [g for g in self.genes if g in set(genes)]
        cols = [self.genes.index(g) for g in keep]
        e = self.edges[self.edges["source"].isin(keep) & self.edges["target"].isin(keep)]
        return GeneNetwork(name=name or self.name, genes=keep, edges=e, basal=self.basal[:, cols],
                           decay=self.decay[cols], cell_types=list(self.cell_types), source=self.source,
                           initial=None if self.initial is None else self.initial[cols])

    def __repr__(self) -> str:
        kind = "Boolean/Hill-cube" if self.rules else "additive Hill"
        return (f"GeneNetwork({self.name!r}: {self.n_genes} genes, {len(self.edges)} edges, "
                f"{len(self.cell_types)} cell type(s), {kind})")
