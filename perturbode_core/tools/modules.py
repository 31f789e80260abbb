"""Gene modules: the hidden units of the PerturbODE vector field.

The vector field is ``dz/dt = A (alpha * sigma(B z + b)) + c - gamma * z`` (in standardised gene
units ``z = (x - mean) / scale``). Module ``k`` reads its input from its **regulators** (row
``B[k, :]``) and writes to its **targets** (column ``alpha_k * A[:, k]``). This module turns those
weights into tables, graphs and rankings a biologist can read.

Every function takes plain numpy arrays (``A`` p x K, ``B`` K x p, ``alpha`` (K,), ``b`` (K,),
``gene_names`` (p,)), so it works on any model, a saved checkpoint or hand-made weights.
:func:`weights_from_model` pulls those arrays out of a trained model. Module ids are the integer
column index ``k`` of ``A`` (the same ``k`` as row ``k`` of ``B``); figures label them ``M{k}``.

Units: ``B`` multiplies standardised expression, so ``|B[k, g]|`` compares regulators on a common
scale; ``alpha_k * A[g, k]`` is the rate (z units per unit time) at which a fully active module
pushes gene ``g``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Sequence

import networkx as nx
import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.model.activations import get_activation

__all__ = [
    "ModuleWeights",
    "weights_from_model",
    "SELECTION_METHODS",
    "ROLES",
    "module_strength",
    "strongest_modules",
    "module_members",
    "module_summary",
    "module_gene_lists",
    "module_activity",
    "condition_activity",
    "rank_modules_by_condition",
    "module_network",
    "gene_view",
    "module_label",
]

SELECTION_METHODS = ("top_n", "share", "threshold")
ROLES = ("both", "regulators", "targets")

def module_label(k) -> str:
    """The display name of module ``k`` (``M{k}``, 0-based like the weight matrices)."""
    return f"M{int(k)}"


# ---------------------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class ModuleWeights:
    """The module-related weights of a model, as numpy arrays.

    Attributes
    ----------
    A
        (p, K) modules -> genes.
    B
        (K, p) genes -> modules.
    alpha
        (K,) module gains, >= 0.
    b
        (K,) module biases.
    gene_names
        (p,) gene names, in the order of the model's genes.
    mean, scale
        (p,) standardisation: ``z = (x - mean) / scale``; ``None`` when unknown.
    activation
        Name of the module non-linearity (default ``"sigmoid"``).
    """

    A: np.ndarray
    B: np.ndarray
    alpha: np.ndarray
    b: np.ndarray
    gene_names: list = field(default_factory=list)
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    activation: str = "sigmoid"

    def __post_init__(self):
        A, B, alpha, b, genes = _check_weights(self.A, self.B, self.alpha, self.b, self.gene_names)
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", B)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "gene_names", genes)
        p = len(genes)
        for name in ("mean", "scale"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=float).reshape(-1)
                if v.shape != (p,):
                    raise PerturbODEError(f"{name} has {v.size} values for {p} genes", where="module weights",
                                          fix=f"Give one {name} per gene")
                object.__setattr__(self, name, v)
        get_activation(self.activation)

    @property
    def n_genes(self) -> int:
        """Number of genes p."""
        return self.A.shape[0]

    @property
    def n_modules(self) -> int:
        """Number of modules K."""
        return self.A.shape[1]

    def standardize(self, X) -> np.ndarray:
        """Expression in data units -> the standardised units the weights act on."""
        X = np.asarray(X, dtype=float)
        if self.mean is None or self.scale is None:
            return X
        return (X - self.mean) / self.scale


def weights_from_model(model) -> ModuleWeights:
    """The :class:`ModuleWeights` of a trained model (anything with ``module_weights()``).

    ``model.module_weights()`` must return a dict with keys ``A, B, alpha, b, gene_names`` and
    optionally ``mean, scale, activation``; torch tensors are converted to numpy.

    Parameters
    ----------
    model
        A :class:`~perturbode_core.model.field.PerturbODE` (or a dict of the same keys).
    """
    if isinstance(model, ModuleWeights):
        return model
    if isinstance(model, dict):
        raw = model
    else:
        getter = getattr(model, "module_weights", None)
        if getter is None:
            raise PerturbODEError(f"{type(model).__name__} has no module weights",
                                  fix="Pass a trained PerturbODE model or a checkpoint loaded with load_model()")
        raw = getter()
    missing = [k for k in ("A", "B", "alpha", "b", "gene_names") if k not in raw]
    if missing:
        raise PerturbODEError(f"The model's module weights lack {', '.join(missing)}", where="module_weights()",
                              fix="Update perturbode_core or re-save the checkpoint")

    def arr(v):
        if v is None:
            return None
        if hasattr(v, "detach"):  # torch tensor
            v = v.detach().cpu().numpy()
        return np.asarray(v, dtype=float)

    return ModuleWeights(A=arr(raw["A"]), B=arr(raw["B"]), alpha=arr(raw["alpha"]), b=arr(raw["b"]),
                         gene_names=[str(g) for g in raw["gene_names"]], mean=arr(raw.get("mean")),
                         scale=arr(raw.get("scale")), activation=str(raw.get("activation") or "sigmoid"))


def _check_weights(A, B, alpha, b=None, gene_names=None):
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    if A.ndim != 2 or B.ndim != 2:
        raise PerturbODEError(f"A and B must be matrices, got shapes {A.shape} and {B.shape}",
                              where="module weights", fix="Give A as genes x modules and B as modules x genes")
    p, K = A.shape
    if B.shape != (K, p):
        raise PerturbODEError(f"B has shape {B.shape} but A has shape {A.shape}; B must be {(K, p)}",
                              where="module weights", fix="Give A as genes x modules and B as modules x genes")
    alpha = np.ones(K) if alpha is None else np.asarray(alpha, dtype=float).reshape(-1)
    if alpha.shape != (K,):
        raise PerturbODEError(f"alpha has {alpha.size} values for {K} modules", where="module weights",
                              fix="Give one alpha per module")
    if (alpha < 0).any():
        raise PerturbODEError("alpha must be >= 0", where="module weights", fix="Pass the model's effective alpha")
    b = np.zeros(K) if b is None else np.asarray(b, dtype=float).reshape(-1)
    if b.shape != (K,):
        raise PerturbODEError(f"b has {b.size} values for {K} modules", where="module weights",
                              fix="Give one bias per module")
    genes = [f"g{i}" for i in range(p)] if gene_names is None else [str(g) for g in gene_names]
    if len(genes) != p:
        raise PerturbODEError(f"{len(genes)} gene names for {p} genes in A", where="module weights",
                              fix="Give one name per row of A")
    for name, m in (("A", A), ("B", B), ("alpha", alpha), ("b", b)):
        if not np.isfinite(m).all():
            raise PerturbODEError(f"{name} contains NaN or infinite values", where="module weights",
                                  fix="Use a model whose training did not diverge")
    return A, B, alpha, b, genes


# ---------------------------------------------------------------------------------------- strength
def module_strength(A, B, alpha) -> np.ndarray:
    """How much each module can move the system: ``alpha_k * ||A[:, k]|| * ||B[k, :]||``.

    It is the spectral norm of the rank-one term ``alpha_k A[:, k] B[k, :]`` that module ``k``
    adds to the network ``G = A diag(alpha) B`` (Euclidean norms), so a module that reads from or
    writes to nothing scores zero however large its other side.

    Returns
    -------
    numpy.ndarray
        (K,) non-negative strengths.
    """
    A, B, alpha, _, _ = _check_weights(A, B, alpha)
    return alpha * np.linalg.norm(A, axis=0) * np.linalg.norm(B, axis=1)


def strongest_modules(A, B, alpha, n: int = 5) -> np.ndarray:
    """The ids of the ``n`` strongest modules (by :func:`module_strength`), strongest first."""
    s = module_strength(A, B, alpha)
    # stable sort on -s keeps the lower id first among ties, so the order is reproducible
    return np.argsort(-s, kind="stable")[: max(int(n), 0)]


# ---------------------------------------------------------------------------------------- membership
def _select(W: np.ndarray, method: str, top_n: int, share: float, threshold: float | None):
    """Members of each row of ``W`` (K x p absolute weights) by one rule.

    Returns
    -------
    rows, cols, ranks
        Selected (row, gene) pairs and the gene's rank in its row (1 = largest |weight|).
    """
    check_choice("method", method, SELECTION_METHODS)
    K, p = W.shape
    if method == "top_n":
        if not (isinstance(top_n, (int, np.integer)) and top_n >= 1):
            raise PerturbODEError(f"top_n must be a positive integer, got {top_n!r}", where="option 'top_n'",
                                  fix="Give e.g. 20")
        n = min(int(top_n), p)
        # argpartition then sort only the n kept: O(p) per module instead of a full sort
        part = np.argpartition(-W, n - 1, axis=1)[:, :n] if n < p else np.tile(np.arange(p), (K, 1))
        vals = np.take_along_axis(W, part, axis=1)
        within = np.lexsort((part, -vals), axis=1)  # by |w| descending, ties by gene order
        order = np.take_along_axis(part, within, axis=1)
        ranks = np.broadcast_to(np.arange(1, n + 1), (K, n))
        keep = np.take_along_axis(W, order, axis=1) > 0  # a zero weight is never a member
        rows = np.broadcast_to(np.arange(K)[:, None], (K, n))
        return rows[keep], order[keep], ranks[keep]
    order = np.argsort(-W, axis=1, kind="stable")
    sorted_w = np.take_along_axis(W, order, axis=1)
    if method == "share":
        if not (0 < float(share) <= 1):
            raise PerturbODEError(f"share must be in (0, 1], got {share!r}", where="option 'share'",
                                  fix="Give e.g. 0.5 for the genes carrying half the module's weight")
        total = sorted_w.sum(axis=1, keepdims=True)
        before = np.cumsum(sorted_w, axis=1) - sorted_w  # weight carried by the genes ranked above
        # keep a gene while the genes above it carry less than the share: the smallest set reaching it
        keep = before < share * total * (1 - 1e-12)
    else:
        if threshold is None or not np.isfinite(threshold) or threshold < 0:
            raise PerturbODEError(f"threshold must be a non-negative number, got {threshold!r}",
                                  where="option 'threshold'",
                                  fix="Give the smallest absolute weight to keep, e.g. 0.1")
        keep = sorted_w >= threshold
    keep &= sorted_w > 0
    r, j = np.nonzero(keep)
    return r, order[r, j], j + 1


def module_members(A, B, alpha, gene_names=None, *, role: str = "both", method: str = "top_n",
                   top_n: int = 20, share: float = 0.5, threshold: float | None = None,
                   modules: Sequence[int] | None = None) -> pd.DataFrame:
    """The membership table: each module's regulators and targets, with signed weights.

    Regulators of module ``k`` are ranked by ``|B[k, g]|``; its targets by ``|alpha_k A[g, k]|``.

    Parameters
    ----------
    A, B, alpha, gene_names
        The module weights (see the module docstring).
    role
        ``"both"``, ``"regulators"`` or ``"targets"``.
    method
        How to choose members in each module and role:

        - ``"top_n"``: the ``top_n`` genes with the largest absolute weight;
        - ``"share"``: the fewest genes whose absolute weights add up to ``share`` of the module's
          total absolute weight on that side (a concentrated module has few members, a diffuse one
          many);
        - ``"threshold"``: every gene with absolute weight >= ``threshold``.

        Genes with zero weight are never members.
    modules
        Restrict to these module ids (default: all).

    Returns
    -------
    pandas.DataFrame
        One row per (module, role, gene): ``module`` (int id), ``role`` (``regulator`` or
        ``target``), ``gene``, ``weight`` (signed: ``B[k, g]`` or ``alpha_k A[g, k]``),
        ``abs_weight``, ``sign`` (+1 activates, -1 represses), ``rank`` (1 = largest in its module
        and role). Sorted by module, role, rank.
    """
    A, B, alpha, _, genes = _check_weights(A, B, alpha, None, gene_names)
    check_choice("role", role, ROLES)
    K = A.shape[1]
    ids = np.arange(K) if modules is None else _check_modules(modules, K)
    genes_arr = np.asarray(genes, dtype=object)
    parts = []
    sides = []
    if role in ("both", "regulators"):
        sides.append(("regulator", B[ids]))
    if role in ("both", "targets"):
        sides.append(("target", (A * alpha).T[ids]))
    for role_name, W in sides:
        r, g, rank = _select(np.abs(W), method, top_n, share, threshold)
        w = W[r, g]
        parts.append(pd.DataFrame({
            "module": ids[r].astype(int), "role": role_name, "gene": genes_arr[g], "weight": w,
            "abs_weight": np.abs(w), "sign": np.sign(w).astype(int), "rank": np.asarray(rank, dtype=int),
        }))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["module", "role", "gene", "weight", "abs_weight", "sign", "rank"])
    return out.sort_values(["module", "role", "rank"], kind="stable").reset_index(drop=True)


def module_gene_lists(members: pd.DataFrame, *, role: str = "target") -> dict[int, list[str]]:
    """``{module: [genes]}`` of one role from a :func:`module_members` table (for enrichment)."""
    check_choice("role", role, ("target", "regulator", "both"))
    rows = members if role == "both" else members[members["role"] == role]
    return {int(k): list(dict.fromkeys(g)) for k, g in rows.groupby("module", sort=True)["gene"]}


def _check_modules(modules, K) -> np.ndarray:
    ids = np.asarray(list(modules), dtype=int).reshape(-1)
    bad = ids[(ids < 0) | (ids >= K)]
    if bad.size:
        raise PerturbODEError(f"Module id {int(bad[0])} does not exist; the model has modules 0..{K - 1}",
                              where="option 'modules'", fix=f"Give ids between 0 and {K - 1}")
    return ids


def module_summary(A, B, alpha, gene_names=None, *, n_genes: int = 5) -> pd.DataFrame:
    """One row per module, strongest first: strength, alpha and its top regulators and targets.

    Returns
    -------
    pandas.DataFrame
        ``module, strength, strength_rank, alpha, top_regulators, top_targets``; gene lists are
        ``;``-joined with a ``+``/``-`` sign suffix (``GATA1+;SPI1-``).
    """
    A, B, alpha, _, genes = _check_weights(A, B, alpha, None, gene_names)
    s = module_strength(A, B, alpha)
    m = module_members(A, B, alpha, genes, method="top_n", top_n=n_genes)
    tag = m["gene"] + np.where(m["sign"] >= 0, "+", "-")
    joined = tag.groupby([m["module"], m["role"]]).agg(";".join)
    K = A.shape[1]
    out = pd.DataFrame({"module": np.arange(K), "strength": s, "alpha": alpha})
    out["top_regulators"] = [joined.get((k, "regulator"), "") for k in range(K)]
    out["top_targets"] = [joined.get((k, "target"), "") for k in range(K)]
    out = out.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(2, "strength_rank", np.arange(1, K + 1))
    return out


# ---------------------------------------------------------------------------------------- activity
def module_activity(Z, B, b, *, activation: str = "sigmoid") -> np.ndarray:
    """Module activity per cell, ``sigma(B z + b)``.

    Parameters
    ----------
    Z
        (n_cells, p) expression in the model's **standardised** units, ``z = (x - mean) / scale``
        (use :meth:`ModuleWeights.standardize` on data-unit expression).
    B, b
        (K, p) and (K,) module input weights and biases.
    activation
        The model's module non-linearity.

    Returns
    -------
    numpy.ndarray
        (n_cells, K) activities (in (0, 1) for the sigmoid).
    """
    B = np.asarray(B, dtype=float)
    b = np.zeros(B.shape[0]) if b is None else np.asarray(b, dtype=float).reshape(-1)
    Z = np.asarray(Z, dtype=float)
    if Z.ndim == 1:
        Z = Z[None, :]
    if Z.ndim != 2 or Z.shape[1] != B.shape[1]:
        raise PerturbODEError(f"Expression has {Z.shape[-1]} genes but the model has {B.shape[1]}",
                              where="module activity", fix="Pass cells x genes in the model's gene order")
    return get_activation(activation).numpy_fn(Z @ B.T + b)


def condition_activity(Z, labels, B, b, *, activation: str = "sigmoid") -> pd.DataFrame:
    """Mean module activity per condition.

    Parameters
    ----------
    Z
        (n_cells, p) standardised expression (see :func:`module_activity`).
    labels
        (n_cells,) condition label of each cell (e.g. ``obs["perturbation"]``).

    Returns
    -------
    pandas.DataFrame
        conditions x modules (columns are module ids), plus an ``n_cells`` column.
    """
    H = module_activity(Z, B, b, activation=activation)
    labels = np.asarray(labels).astype(str).reshape(-1)
    if labels.shape[0] != H.shape[0]:
        raise PerturbODEError(f"{labels.shape[0]} labels for {H.shape[0]} cells", where="module activity",
                              fix="Give one condition label per cell")
    df = pd.DataFrame(H, columns=pd.RangeIndex(H.shape[1], name="module"))
    grouped = df.groupby(labels, sort=True)
    out = grouped.mean()
    out.index.name = "condition"
    out["n_cells"] = grouped.size()
    return out


def rank_modules_by_condition(activity: pd.DataFrame, *, control: str = "control") -> pd.DataFrame:
    """How much each condition moves each module: ``|mean activity(condition) - mean activity(control)|``.

    Parameters
    ----------
    activity
        The output of :func:`condition_activity`.
    control
        The control condition's label.

    Returns
    -------
    pandas.DataFrame
        One row per (condition, module), control excluded: ``condition, module, activity,
        control_activity, delta`` (signed), ``abs_delta`` and ``rank`` (1 = the module this
        condition moves most), sorted by condition then rank.
    """
    if control not in activity.index:
        raise PerturbODEError(f"No control condition {control!r} among the conditions",
                              where="module activity", fix=f"Use one of: {', '.join(map(str, activity.index[:10]))}")
    H = activity.drop(columns=["n_cells"], errors="ignore")
    base = H.loc[control]
    delta = H.drop(index=control) - base
    long = delta.stack().rename("delta").reset_index()
    long.columns = ["condition", "module", "delta"]
    long["module"] = long["module"].astype(int)
    long["activity"] = H.drop(index=control).stack().to_numpy()
    long["control_activity"] = base.to_numpy()[long["module"].to_numpy()]
    long["abs_delta"] = long["delta"].abs()
    long = long.sort_values(["condition", "abs_delta"], ascending=[True, False], kind="stable")
    long["rank"] = long.groupby("condition").cumcount() + 1
    return long[["condition", "module", "activity", "control_activity", "delta", "abs_delta", "rank"]].reset_index(
        drop=True)


# ---------------------------------------------------------------------------------------- network
def module_network(A, B, alpha, gene_names=None, *, members: pd.DataFrame | None = None, top_n: int = 20,
                   top_edges: int | None = 100, min_weight: float = 0.0, self_loops: bool = False) -> nx.DiGraph:
    """The module -> module network: module ``k`` feeds module ``l`` when ``k``'s targets regulate ``l``.

    Edge weight (through the member genes, i.e. ``k``'s selected targets that are also ``l``'s
    selected regulators)::

        weight[k, l] = sum_g |alpha_k A[g, k]| * |B[l, g]|

    It is the strength of the two-step path module k -> gene g -> module l summed over the shared
    genes. ``signed_weight = sum_g alpha_k A[g, k] B[l, g]`` over the same genes is the linear
    effect of k's activity on l's input (positive: k switches l on).

    Parameters
    ----------
    A, B, alpha, gene_names
        The module weights.
    members
        A :func:`module_members` table choosing the regulators and targets; default: top ``top_n``
        of each.
    top_edges
        Keep the strongest edges only (``None``: all with weight > ``min_weight``).
    self_loops
        Keep ``k -> k`` (a module whose targets feed back into it).

    Returns
    -------
    networkx.DiGraph
        Nodes are module ids with attributes ``label`` (``M{k}``), ``strength``,
        ``n_regulators``, ``n_targets``; edges carry ``weight``, ``signed_weight``, ``sign`` and
        ``genes`` (the shared genes, strongest first, as a list).
    """
    A, B, alpha, _, genes = _check_weights(A, B, alpha, None, gene_names)
    p, K = A.shape
    if members is None:
        members = module_members(A, B, alpha, genes, top_n=top_n)
    gidx = {g: i for i, g in enumerate(genes)}
    T = np.zeros((p, K), bool)
    R = np.zeros((K, p), bool)
    for role_name, M in (("target", T), ("regulator", R)):
        rows = members[members["role"] == role_name]
        gi = rows["gene"].map(gidx)
        if gi.isna().any():
            raise PerturbODEError(f"Gene {rows['gene'][gi.isna()].iloc[0]!r} of the membership table is not in the model",
                                  where="module network", fix="Build the table from the same model")
        mi = rows["module"].to_numpy(int)
        gi = gi.to_numpy(int)
        if role_name == "target":
            M[gi, mi] = True
        else:
            M[mi, gi] = True
    tgt = A * alpha * T  # (p, K) selected target weights
    reg = B * R  # (K, p) selected regulator weights
    W = np.abs(tgt).T @ np.abs(reg).T  # W[k, l] = sum_g |tgt[g, k]| |reg[l, g]|
    S = tgt.T @ reg.T
    if not self_loops:
        np.fill_diagonal(W, 0.0)
    k_idx, l_idx = np.nonzero(W > min_weight)
    w = W[k_idx, l_idx]
    order = np.argsort(-w, kind="stable")
    if top_edges is not None:
        order = order[: int(top_edges)]
    strength = module_strength(A, B, alpha)
    G = nx.DiGraph(kind="module_network")
    for k in range(K):
        G.add_node(k, label=module_label(k), strength=float(strength[k]), n_regulators=int(R[k].sum()),
                   n_targets=int(T[:, k].sum()))
    genes_arr = np.asarray(genes, dtype=object)
    for i in order:  # loop over kept edges only (at most top_edges)
        k, l = int(k_idx[i]), int(l_idx[i])
        contrib = np.abs(tgt[:, k]) * np.abs(reg[l, :])
        shared = np.nonzero(contrib > 0)[0]
        shared = shared[np.argsort(-contrib[shared], kind="stable")]
        G.add_edge(k, l, weight=float(W[k, l]), signed_weight=float(S[k, l]), sign=int(np.sign(S[k, l]) or 1),
                   genes=list(genes_arr[shared]))
    return G


def _find_gene(gene: str, genes: list[str]) -> int:
    try:
        return genes.index(gene)
    except ValueError:
        pass
    folded = [g.casefold() for g in genes]
    if gene.casefold() in folded:
        return folded.index(gene.casefold())
    close = difflib.get_close_matches(gene, genes, n=3)
    raise PerturbODEError(f"Gene {gene!r} is not among the model's {len(genes)} genes", where="gene view",
                          fix=f"Did you mean {', '.join(close)}?" if close else "Pick one of the model's genes")


def gene_view(gene: str, A, B, alpha, gene_names, *, members: pd.DataFrame | None = None, top_n: int = 20,
              n_partners: int = 10) -> pd.DataFrame:
    """The gene -> module -> gene view of one gene.

    Upstream: the modules that have ``gene`` among their targets, with those modules' regulators
    (who controls this gene, through which module). Downstream: the modules that have ``gene``
    among their regulators, with those modules' targets (what this gene controls).

    Parameters
    ----------
    gene
        A gene name (matched exactly, then case-insensitively).
    members
        A :func:`module_members` table; default: top ``top_n`` regulators and targets.
    n_partners
        How many genes on the other side to list per module.

    Returns
    -------
    pandas.DataFrame
        ``direction`` (``upstream``: gene is the module's target; ``downstream``: gene is the
        module's regulator), ``module``, ``weight`` (the gene's signed weight in that module),
        ``sign``, ``module_strength``, ``partners`` (``;``-joined genes on the other side, with
        ``+``/``-`` sign suffix), sorted by direction then ``|weight|``.
    """
    A, B, alpha, _, genes = _check_weights(A, B, alpha, None, gene_names)
    gi = _find_gene(str(gene), genes)
    name = genes[gi]
    if members is None:
        members = module_members(A, B, alpha, genes, top_n=top_n)
    strength = module_strength(A, B, alpha)
    tagged = members.assign(tag=members["gene"] + np.where(members["sign"] >= 0, "+", "-"))
    tagged = tagged[tagged["gene"] != name].sort_values(["module", "role", "rank"])
    partners = tagged.groupby(["module", "role"])["tag"].agg(lambda s: ";".join(s.iloc[:n_partners]))
    rows = []
    mine = members[members["gene"] == name]
    for _, r in mine.iterrows():  # one row per module the gene belongs to (few)
        k = int(r["module"])
        upstream = r["role"] == "target"
        rows.append({"direction": "upstream" if upstream else "downstream", "module": k,
                     "weight": float(r["weight"]), "sign": int(r["sign"]), "module_strength": float(strength[k]),
                     "partners": partners.get((k, "regulator" if upstream else "target"), "")})
    out = pd.DataFrame(rows, columns=["direction", "module", "weight", "sign", "module_strength", "partners"])
    out["_abs"] = out["weight"].abs()
    out = out.sort_values(["direction", "_abs"], ascending=[False, False], kind="stable").drop(columns="_abs")
    out.attrs["gene"] = name
    return out.reset_index(drop=True)


def dominant_module(A, alpha, gene_names, *, min_share: float = 0.0) -> dict:
    """Each gene's main module: the one that writes to it most strongly (``argmax_k |alpha_k A[g, k]|``).

    Used to colour genes by module in the network view. Genes whose strongest module carries less than
    ``min_share`` of their total incoming module weight are labelled ``"mixed"``.

    Returns
    -------
    dict
        ``{gene: "M{k}" or "mixed"}``.
    """
    W = np.abs(np.asarray(A, float) * np.asarray(alpha, float)[None, :])
    total = W.sum(1)
    k = W.argmax(1)
    share = np.divide(W[np.arange(len(k)), k], total, out=np.zeros(len(k)), where=total > 0)
    return {str(g): (f"M{int(kk)}" if s >= min_share and t > 0 else "mixed")
            for g, kk, s, t in zip(gene_names, k, share, total)}
