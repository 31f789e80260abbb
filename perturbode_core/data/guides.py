"""Guide assignment: which guide (and so which target) each cell of a pooled CRISPR screen carries.

The input is either per-cell guide UMI counts (an ``obsm`` matrix, cells x guides, as ECCITE-seq,
10x feature barcoding or direct-capture Perturb-seq give) or a guide identity per cell (an ``obs``
column, already called upstream).

The rule (low-MOI screens, one guide per cell intended): a cell is assigned its top guide when
that guide has at least ``min_umis`` UMIs **and** at least ``min_fraction`` of all the cell's guide
UMIs **and** no other guide ties with it. Every other cell is set aside and counted by reason:

- ``no guide``: no guide UMI at all (or an empty identity);
- ``too few guide UMIs``: the top guide has fewer than ``min_umis``;
- ``several guides``: the top guide holds less than ``min_fraction`` of the guide UMIs, or another
  guide has as many (a doublet or a high-MOI cell; also an identity listing several guides,
  ``g1;g2``).

The defaults (5 UMIs, half the guide UMIs) keep 95% of the Papalexi et al. (2021) THP-1 screen
and set aside cells whose top guide is not clearly dominant (there the top guide's median share is
0.94). A guide's target comes from ``uns[guide_targets_key]`` (aligned with the guide names) or, if
absent, from the perturbation column: the target most cells whose top guide it is carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from perturbode_core.errors import PerturbODEError

#: Reasons a cell gets no guide, in the order the summary lists them.
UNASSIGNED_REASONS = ("no guide", "too few guide UMIs", "several guides")
_SEPARATORS = re.compile(r"[,;|]")


@dataclass
class GuideAssignment:
    """The guide and target of each cell, or why it has none.

    Attributes
    ----------
    guide
        Assigned guide of each cell (``""`` when none).
    target
        Its target label (the perturbation label: a gene, or the control label for
        non-targeting guides; ``""`` when none).
    status
        ``assigned`` or one of :data:`UNASSIGNED_REASONS`.
    rule
        The rule in words (for reports).
    source
        Where the guides were read (``obsm['guide_counts']``, ``obs['guide']``).
    """

    guide: np.ndarray
    target: np.ndarray
    status: np.ndarray
    rule: str
    source: str
    all_targets: tuple = ()

    def targets_without_cells(self, control: str) -> list[str]:
        """Targets of guides in the matrix that no cell was assigned (their conditions are empty)."""
        kept = set(self.target[self.assigned])
        return sorted(t for t in set(self.all_targets) if t and t != control and t not in kept)

    @property
    def assigned(self) -> np.ndarray:
        """Cells with a clear guide (bool mask)."""
        return self.status == "assigned"

    def counts(self) -> dict[str, int]:
        """Cells per status: ``assigned`` first, then each reason (zero counts included)."""
        vc = pd.Series(self.status).value_counts()
        return {s: int(vc.get(s, 0)) for s in ("assigned",) + UNASSIGNED_REASONS}


def assign_guides(adata, source: str, *, min_umis: int = 5, min_fraction: float = 0.5,
                  guide_names_key: str = "guide_names", guide_targets_key: str = "guide_targets",
                  perturbation_key: str | None = "perturbation", where: str = "AnnData") -> GuideAssignment:
    """Assign each cell its guide by the rule of the module docstring.

    Parameters
    ----------
    adata
        The screen.
    source
        An ``obsm`` key holding guide UMI counts (cells x guides; a DataFrame's columns, or
        ``uns[guide_names_key]``, name the guides) or an ``obs`` column holding each cell's guide.
    min_umis, min_fraction
        The rule's thresholds (counts only).
    guide_names_key, guide_targets_key
        ``uns`` entries with the guide names (matrix columns) and their targets.
    perturbation_key
        The perturbation column, to learn each guide's target when ``uns`` has no targets.
    """
    if not (isinstance(min_umis, (int, np.integer)) and min_umis >= 1):
        raise PerturbODEError(f"min_guide_umis must be a positive integer, got {min_umis!r}",
                              where="option 'min_guide_umis'", fix="Give e.g. 5")
    if not 0.0 < float(min_fraction) <= 1.0:
        raise PerturbODEError(f"min_guide_fraction must be in (0, 1], got {min_fraction!r}",
                              where="option 'min_guide_fraction'", fix="Give e.g. 0.5")
    obsm = getattr(adata, "obsm", {}) or {}
    if source in obsm:
        guide, status, names, rule = _from_counts(adata, source, min_umis, min_fraction, guide_names_key, where)
        label = f"obsm[{source!r}]"
    elif source in adata.obs.columns:
        guide, status = _from_column(adata.obs[source])
        names = np.asarray(sorted(set(guide[status == "assigned"])), dtype=object)
        rule = "each cell's guide as called in obs; cells with none or several set aside"
        label = f"obs[{source!r}]"
    else:
        raise PerturbODEError(
            f"No guide counts or guide column {source!r}", where=f"{where}: obsm keys "
            f"{', '.join(map(str, obsm.keys())) or 'none'}; obs columns {', '.join(map(str, adata.obs.columns[:12]))}",
            fix="Name the obsm matrix of guide UMI counts or the obs column of guides (--guides)")
    targets_of = _guide_targets(adata, names, guide, status, guide_targets_key, perturbation_key, label, where)
    target = pd.Series(guide, dtype=object).map(targets_of).fillna("").to_numpy(dtype=object)
    target[status != "assigned"] = ""
    return GuideAssignment(guide=guide.astype(str), target=target.astype(str), status=status, rule=rule, source=label,
                           all_targets=tuple(sorted(set(targets_of.values()))))


def _from_counts(adata, key, min_umis, min_fraction, names_key, where):
    M = adata.obsm[key]
    names = None
    if isinstance(M, pd.DataFrame):
        names = np.asarray(M.columns.astype(str), dtype=object)
        M = M.to_numpy()
    M = M.tocsr() if sp.issparse(M) else np.asarray(M)
    here = f"{where}, obsm[{key!r}]"
    if M.ndim != 2 or M.shape[0] != adata.n_obs:
        raise PerturbODEError(f"The guide matrix has shape {tuple(M.shape)} but the data have {adata.n_obs} cells",
                              where=here, fix="Give one row of guide UMI counts per cell, in the cells' order")
    if names is None:
        uns = getattr(adata, "uns", {}) or {}
        if names_key not in uns:
            raise PerturbODEError(f"The guide matrix has no guide names (no uns[{names_key!r}])", where=here,
                                  fix="Store the guide names in uns['guide_names'] or make obsm a DataFrame")
        names = np.asarray(uns[names_key], dtype=object).astype(str)
    if len(names) != M.shape[1]:
        raise PerturbODEError(f"{len(names)} guide names for {M.shape[1]} guide columns", where=here,
                              fix=f"Give one name per column in uns[{names_key!r}]")
    data = M.data if sp.issparse(M) else M
    if data.size and (not np.isfinite(data).all() or data.min() < 0):
        raise PerturbODEError("Guide counts must be finite and non-negative", where=here,
                              fix="Store raw guide UMI counts")
    total = np.asarray(M.sum(axis=1)).ravel().astype(np.float64)
    top = np.asarray(M.max(axis=1).toarray() if sp.issparse(M) else M.max(axis=1)).ravel().astype(np.float64)
    best = np.asarray(M.argmax(axis=1)).ravel()
    status = np.full(adata.n_obs, "assigned", dtype=object)
    status[top < min_umis] = "too few guide UMIs"
    status[(top >= min_umis) & ((top < min_fraction * total) | (_n_at_max(M, top) > 1))] = "several guides"
    status[total <= 0] = "no guide"
    rule = (f"top guide with >= {min_umis} UMIs and >= {min_fraction:g} of the cell's guide UMIs; "
            "other cells set aside")
    return names[best], status, names, rule


def _n_at_max(M, top: np.ndarray) -> np.ndarray:
    """How many guides of each cell reach its top count (2 or more: a tie, no clear guide)."""
    if sp.issparse(M):
        per_row = np.diff(M.indptr)
        hits = (M.data == np.repeat(top, per_row)).astype(np.int64)
        out = np.zeros(M.shape[0], np.int64)
        rows = np.flatnonzero(per_row)
        out[rows] = np.add.reduceat(hits, M.indptr[rows])
        return out
    return (M == top[:, None]).sum(axis=1)


def _from_column(column: pd.Series):
    values = column.astype(object).where(column.notna(), "").astype(str).str.strip().to_numpy(dtype=object)
    status = np.full(len(values), "assigned", dtype=object)
    status[(values == "") | (values == "nan")] = "no guide"
    several = np.fromiter((bool(_SEPARATORS.search(v)) for v in values), bool, count=len(values))
    status[several & (status == "assigned")] = "several guides"
    return values, status


def _guide_targets(adata, names, guide, status, targets_key, perturbation_key, label, where) -> dict[str, str]:
    uns = getattr(adata, "uns", {}) or {}
    if targets_key in uns and label.startswith("obsm"):
        targets = np.asarray(uns[targets_key], dtype=object).astype(str)
        if len(targets) != len(names):
            raise PerturbODEError(f"{len(targets)} guide targets for {len(names)} guides of {label}",
                                  where=f"{where}, uns[{targets_key!r}]", fix="Give one target per guide, in order")
        return dict(zip(names, targets))
    if perturbation_key is None or perturbation_key not in adata.obs.columns:
        raise PerturbODEError("The guides' targets are unknown", where=f"{where}, {label}",
                              fix=f"Store them in uns[{targets_key!r}] (one per guide) or keep the perturbation column")
    # the target most cells of each guide carry in the perturbation column
    frame = pd.DataFrame({"guide": guide[status == "assigned"],
                          "target": adata.obs[perturbation_key].astype(str).to_numpy()[status == "assigned"]})
    return frame.groupby("guide")["target"].agg(lambda t: t.value_counts().index[0]).to_dict()
