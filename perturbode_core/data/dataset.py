"""Read, validate, describe and split single-cell (or bulk) perturbation data.

Conventions (DESIGN section 3): an AnnData of cells x genes; ``obs[perturbation_key]`` names the
target gene(s) of each cell, ``+``-joined for combinations, with a control label; optional
``obs["intervention_type"]`` and ``obs["time"]``. A condition may hold a single profile (bulk or
pseudobulk screens): everything works then too, with a warning.

Every invalid input raises :class:`~perturbode_core.errors.PerturbODEError` with what, where and
how to fix it.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from perturbode_core.errors import PerturbODEError, PerturbODEInfo, PerturbODEWarning, check_choice
from perturbode_core.io.h5ad import all_finite, read_h5ad
from perturbode_core.data.conditions import read_conditions
from perturbode_core.data.escapees import classify_escapees
from perturbode_core.data.guides import assign_guides
from perturbode_core.data.interventions import Intervention, check_genes
from perturbode_core.data.preprocess import normalize_log1p, select_genes

#: Columns of :attr:`PerturbationData.set_aside`.
SET_ASIDE_COLUMNS = ["what", "name", "cells", "reason"]
#: What ``escapees`` may be: ``keep`` (no classification), ``flag`` (classify, keep every cell,
#: report the efficiency) or ``drop`` (classify and train on the perturbed cells only).
ESCAPE_MODES = ("keep", "flag", "drop")

DEFAULT_CONTROL_LABELS = ("control", "ctrl", "non-targeting", "NT", "non_targeting", "unperturbed")


def guess_perturbation_key(obs: pd.DataFrame) -> str | None:
    """Guess which ``obs`` column names the perturbation (for the dashboard's default)."""
    candidates = ["perturbation", "condition", "guide_identity", "gene", "target", "perturbation_name",
                  "target_gene", "treatment"]
    for name in candidates:
        if name in obs.columns:
            return name
    for name in obs.columns:
        values = obs[name].astype(str)
        if values.isin(DEFAULT_CONTROL_LABELS).any():
            return name
    return None


def guess_control_label(values) -> str | None:
    """Guess the control label among a column's values."""
    labels = pd.Index(pd.unique(pd.Series(values).astype(str)))
    for cand in DEFAULT_CONTROL_LABELS:
        hit = [lab for lab in labels if lab.lower() == cand.lower()]
        if hit:
            return hit[0]
    return None


def _dense_float(X, where: str) -> np.ndarray:
    from perturbode_core.io import h5ad as streaming

    mapped = streaming.memmap_dataset(X)  # backed, dense, uncompressed: stay on disk
    if mapped is not None and mapped.dtype == np.float32:
        return mapped
    if sp.issparse(X):
        X = X.toarray()
    elif hasattr(X, "to_memory") or hasattr(X, "id"):  # backed sparse / h5py dataset
        X = streaming.read_dense_chunked(X)
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise PerturbODEError(f"Expression values have non-numeric type {X.dtype}", where=where,
                              fix="Store numbers in X (or the chosen layer)")
    return X.astype(np.float32, copy=False)


def looks_like_counts(X: np.ndarray) -> bool:
    """True when ``X`` looks like raw counts (non-negative integers with a large maximum)."""
    sample = X[: min(len(X), 2000)]
    return bool(sample.size and sample.min() >= 0 and sample.max() > 50 and np.allclose(sample, np.round(sample)))


@dataclass
class PerturbationData:
    """A validated perturbation dataset, ready for training.

    Attributes
    ----------
    X
        Expression, cells x genes, float32 (data units: what the file holds, log-normalised
        when asked).
    gene_names
        Gene names (``var_names``), unique.
    labels
        Condition label of each cell (str).
    control
        The control label.
    conditions
        Condition labels, control first, then sorted.
    interventions
        For each perturbed condition, its targets with type and value.
    times
        Time of each cell, or ``None`` for steady-state data.
    obs
        The AnnData's ``obs`` (for colouring and subsets).
    source
        Where the data came from (file name or dataset name).
    perturbation_key
        The ``obs`` column the targets were read from.
    uns
        The AnnData's ``uns``.
    layers
        Other matrices of the kept cells and genes, e.g. ``counts`` (the raw counts, kept when
        the data were normalised on load).
    set_aside
        What loading left out and why: one row per group (``what``: ``cells`` or ``condition``;
        ``name``; ``cells``; ``reason``), empty when nothing was.
    escape
        The knockout efficiency of each condition (see
        :class:`~perturbode_core.data.escapees.EscapeResult`'s table) when escapees were
        classified; each cell's class is in ``obs['perturbation_class']``.
    preprocessing
        What was done on load (normalisation, gene selection, guides, escapees), for reports.
    """

    X: np.ndarray
    gene_names: list[str]
    labels: np.ndarray
    control: str
    conditions: list[str]
    interventions: dict[str, list[Intervention]]
    times: np.ndarray | None = None
    obs: pd.DataFrame | None = None
    source: str = "AnnData"
    perturbation_key: str = "perturbation"
    uns: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    set_aside: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SET_ASIDE_COLUMNS))
    escape: pd.DataFrame | None = None
    preprocessing: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        """Number of cells (rows of ``X``)."""
        return int(self.X.shape[0])

    @property
    def n_genes(self) -> int:
        """Number of genes (columns of ``X``)."""
        return int(self.X.shape[1])

    @property
    def perturbations(self) -> list[str]:
        """Perturbed conditions (every condition but the control)."""
        return [c for c in self.conditions if c != self.control]

    def perturbed_genes(self, conditions=None) -> set[str]:
        """Genes targeted by any perturbation (of ``conditions`` only, when given)."""
        keep = None if conditions is None else set(conditions)
        return {iv.gene for c, ivs in self.interventions.items() if keep is None or c in keep for iv in ivs}

    @property
    def unmeasured_targets(self) -> list[str]:
        """Perturbed genes that are not among the measured genes (the model's latent regulators)."""
        return sorted(self.perturbed_genes() - set(self.gene_names))

    def cells_of(self, condition: str) -> np.ndarray:
        """Indices of the cells of ``condition``."""
        return np.flatnonzero(self.labels == condition)

    def control_cells(self) -> np.ndarray:
        """Expression of the control cells (at the earliest time when there are several)."""
        idx = self.cells_of(self.control)
        if self.times is not None:
            t0 = self.times[idx].min()
            idx = idx[self.times[idx] == t0]
        return self.X[idx]

    def subset_conditions(self, keep: list[str]) -> "PerturbationData":
        """A copy restricted to the conditions in ``keep`` (the control is always kept)."""
        keep = [self.control] + [c for c in keep if c != self.control]
        mask = np.isin(self.labels, keep)
        return dataclasses.replace(
            self, X=self.X[mask], labels=self.labels[mask], gene_names=list(self.gene_names),
            conditions=[c for c in self.conditions if c in set(keep)],
            interventions={c: v for c, v in self.interventions.items() if c in set(keep)},
            times=None if self.times is None else self.times[mask],
            obs=None if self.obs is None else self.obs.loc[mask], uns=dict(self.uns),
            layers={k: v[mask] for k, v in self.layers.items()})

    def to_anndata(self):
        """The data back as an AnnData (obs: perturbation, intervention_type, time; the layers)."""
        import anndata as ad

        obs = pd.DataFrame({self.perturbation_key: self.labels.astype(str)})
        if self.times is not None:
            obs["time"] = self.times
        adata = ad.AnnData(X=self.X.copy(), obs=obs, var=pd.DataFrame(index=list(self.gene_names)),
                           layers={k: v.copy() for k, v in self.layers.items()})
        adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
        return adata


def from_anndata(
    adata,
    *,
    perturbation_key: str = "perturbation",
    control: str | None = "control",
    condition_key: str | None = None,
    intervention_type_key: str = "intervention_type",
    dose_key: str | None = None,
    default_intervention: str = "knockout",
    activity_synonyms: str | bool = "auto",
    time_key: str = "time",
    layer: str | None = None,
    normalize: bool = False,
    hvg: int | None = None,
    hvg_flavor: str = "seurat",
    guides: str | None = None,
    min_guide_umis: int = 5,
    min_guide_fraction: float = 0.5,
    pool_guides: bool = True,
    escapees: str = "keep",
    escape_split_key: str | None = None,
    min_perturbed_cells: int = 10,
    source: str | None = None,
    strict_targets: bool = False,
) -> PerturbationData:
    """Validate an AnnData as a perturbation dataset.

    Steps, in order: guides assigned (``guides``), conditions read, expression read and
    normalised (``normalize``), genes selected (``hvg``), escaping knockout cells classified
    (``escapees``). What a step sets aside is listed in ``PerturbationData.set_aside`` and in one
    warning; a condition left with no cells is dropped (named), the control never is (an error).

    Parameters
    ----------
    adata
        Cells x genes. ``X`` (or ``layer``) holds expression; log-normalised is expected.
    perturbation_key
        ``obs`` column with the target gene(s) of each cell (``+``-joined for combinations).
    control
        Label of control cells; ``None`` guesses it among ``control``, ``ctrl``, ``non-targeting``...
    condition_key
        Optional ``obs`` column that keys the conditions (``condition``, ``guide``, a drug and
        dose); the perturbation column then says what each condition targets, so one target may
        appear in several conditions (see :mod:`perturbode_core.data.conditions`).
    intervention_type_key
        Optional ``obs`` column with the intervention type of each cell (knockout, knockdown,
        overexpression, shift; CRISPRko / CRISPRi / CRISPRa and other synonyms accepted). A label
        whose cells carry several types is split into one condition per type.
    dose_key
        Optional numeric ``obs`` column: the value of each cell's intervention (knock-down
        fraction, overexpression fold, activity factor).
    default_intervention
        The type used when that column is absent.
    activity_synonyms
        How ``inhibition`` / ``activation`` are read: ``auto`` (default) as the *activity* type
        (drugs, signalling proteins: factor 0 and 2) unless a dose comes with them, then as
        knock-down fraction / overexpression fold; ``yes`` (or True) always activity; ``no`` (or
        False) never.
    time_key
        Optional ``obs`` column with the sampling time of each cell (time-course data).
    layer
        Read expression from this layer instead of ``X``.
    normalize
        Normalise raw counts (scanpy ``normalize_total`` + ``log1p``); the counts are kept in
        ``layers['counts']``. Without it, data that look like raw counts get a warning.
    hvg
        Keep this many highly variable genes (scanpy), plus every measured target gene.
    hvg_flavor
        scanpy's flavour (:data:`~perturbode_core.data.preprocess.HVG_FLAVORS`).
    guides
        Assign each cell its guide from an ``obsm`` matrix of guide UMI counts or an ``obs``
        column of guides (the rule: :mod:`perturbode_core.data.guides`); the guides' targets then
        replace the perturbation column, and cells without a clear guide are set aside.
    min_guide_umis, min_guide_fraction
        The assignment rule's thresholds.
    pool_guides
        With ``guides``: one condition per target gene (True) or per guide (False).
    escapees
        :data:`ESCAPE_MODES`: ``keep`` (default: no classification, every cell as labelled),
        ``flag`` (classify knockout cells as perturbed or escaping, Mixscape-style, keep them all:
        ``obs['perturbation_class']`` and the efficiency table in ``escape``) or ``drop``
        (classify and keep only perturbed cells). The default keeps the data as given: which cells
        count as perturbed is an analysis choice, made explicit by asking for it.
    escape_split_key
        ``obs`` column (e.g. ``replicate``) within which control neighbours are found.
    min_perturbed_cells
        With ``escapees='drop'``: a classified condition with fewer perturbed cells is set aside.
    source
        Name of the data for messages (defaults to the file name or "AnnData").
    strict_targets
        Refuse targets that are not among the genes. By default they are kept: such a target
        becomes an unmeasured regulator of the model (listed in
        :attr:`PerturbationData.unmeasured_targets` and in an info line).
    """
    where = source or "AnnData"
    check_choice("escapees", escapees, ESCAPE_MODES)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise PerturbODEError(f"The AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes)",
                              where=where, fix="Load a file with cells and genes")
    gene_names = _unique_gene_names(adata, where)
    aside: list[dict] = []
    obs, rows, targets_raw, condition_values = _cells_and_targets(
        adata, perturbation_key=perturbation_key, control=control, condition_key=condition_key, guides=guides,
        min_guide_umis=min_guide_umis, min_guide_fraction=min_guide_fraction, pool_guides=pool_guides,
        aside=aside, where=where)
    targets, control = _read_labels(targets_raw, perturbation_key if guides is None else f"guides {guides}",
                                    control, where)
    conds = read_conditions(obs, targets, control, perturbation_key=perturbation_key,
                            condition_values=condition_values,
                            condition_name=condition_key or "assigned_guide", intervention_type_key=intervention_type_key,
                            dose_key=dose_key, default_intervention=default_intervention,
                            activity_synonyms=activity_synonyms, where=where)
    gene_names = _names_the_targets_use(adata, gene_names, conds.interventions, where)
    X, counts = _read_expression(adata, layer, normalize, gene_names, rows, where)
    layers = {} if counts is None else {"counts": counts}
    steps = {"normalized": bool(normalize), "genes_in_file": len(gene_names)}
    measured = {iv.gene for ivs in conds.interventions.values() for iv in ivs} & set(gene_names)
    if hvg is not None:
        cols = select_genes(X, gene_names, hvg, keep=measured, flavor=hvg_flavor, counts=counts, where=where)
        X, gene_names = np.ascontiguousarray(X[:, cols]), [gene_names[i] for i in cols]
        layers = {k: v[:, cols] for k, v in layers.items()}
        steps.update(hvg=int(hvg), hvg_flavor=hvg_flavor, targets_kept=len(measured))
    _check_targets(conds.interventions, gene_names, strict_targets, where, perturbation_key)
    labels, interventions = conds.labels, conds.interventions
    keep = np.ones(len(labels), bool)
    escape_table = None
    if escapees != "keep":
        obs = obs.copy()
        escape_table = _classify(X, labels, control, interventions, obs, keep, escapees, escape_split_key,
                                 min_perturbed_cells, aside, where)
        steps["escapees"] = escapees
    keep &= _drop_empty(labels, keep, control, interventions, aside, where)
    if not keep.all():
        X, labels, obs = X[keep], labels[keep], obs.loc[keep]
        layers = {k: v[keep] for k, v in layers.items()}
    conditions = [control] + sorted(c for c in interventions if c in set(pd.unique(labels)))
    interventions = {c: interventions[c] for c in conditions[1:]}
    set_aside = pd.DataFrame(aside, columns=SET_ASIDE_COLUMNS)
    data = PerturbationData(
        X=X, gene_names=gene_names, labels=labels, control=control, conditions=conditions,
        interventions=interventions, times=_read_times(obs, time_key, where), obs=obs.copy(),
        source=source or "AnnData", perturbation_key=perturbation_key, uns=dict(getattr(adata, "uns", {}) or {}),
        layers=layers, set_aside=set_aside, escape=escape_table, preprocessing=steps)
    _report_load(data, conds.split, where, condition_key or perturbation_key)
    _warn_single_profiles(labels, where)
    return data


def _unique_gene_names(adata, where: str) -> list[str]:
    gene_names = [str(g) for g in adata.var_names]
    dup = pd.Index(gene_names)[pd.Index(gene_names).duplicated()].unique().tolist()
    if dup:
        raise PerturbODEError(
            f"Duplicated gene names: {', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''} ({len(dup)} in all)",
            where=f"{where}, var_names", fix="Make them unique with adata.var_names_make_unique()")
    return gene_names


def _names_the_targets_use(adata, gene_names: list[str], interventions, where: str) -> list[str]:
    """The genes' names as the perturbation labels write them.

    Files often index genes by an identifier (Ensembl IDs as ``var_names``) and keep symbols in a
    ``var`` column (``gene_symbols``, ``gene_name``), while the perturbation column names the
    targets by symbol. When no target is among ``var_names`` but at least half of them are in one
    text column of ``var``, that column names the genes (entries it leaves empty keep their
    ``var_names``; repeated symbols are made unique as ``var_names_make_unique`` does) and an info
    line says so. Otherwise ``var_names`` stay.
    """
    targets = {iv.gene for ivs in interventions.values() for iv in ivs}
    if not targets or targets & set(gene_names):
        return gene_names
    best, best_hits = None, 0
    for col in adata.var.columns:
        values = adata.var[col]
        if not (pd.api.types.is_object_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype)
                or pd.api.types.is_string_dtype(values)):
            continue
        hits = len(targets & set(values.dropna().astype(str)))
        if hits > best_hits:
            best, best_hits = col, hits
    if best is None or best_hits < max(1, len(targets) / 2):
        return gene_names
    from anndata.utils import make_index_unique

    values = adata.var[best].astype(object)
    names = [str(v) if isinstance(v, str) and v.strip() else g for v, g in zip(values, gene_names)]
    unique = [str(n) for n in make_index_unique(pd.Index(names))]
    renamed = sum(a != b for a, b in zip(names, unique))
    warnings.warn(f"{where}: genes named by var[{best!r}]: {best_hits} of the {len(targets)} perturbation target(s) "
                  f"are among its values and none among var_names (e.g. {gene_names[0]})"
                  + (f"; {renamed} repeated name(s) made unique (-1, -2, ...)" if renamed else ""),
                  PerturbODEInfo, stacklevel=3)
    return unique


def _cells_and_targets(adata, *, perturbation_key, control, condition_key, guides, min_guide_umis, min_guide_fraction,
                       pool_guides, aside, where):
    """The cells kept so far (their obs and row indices, or None for all), each one's perturbation
    label and, when conditions are keyed by a column or by guide, each one's condition."""
    obs = adata.obs
    if guides is None:
        if perturbation_key not in obs.columns:
            guess = guess_perturbation_key(obs)
            hint = f" (column {guess!r} looks like one)" if guess else ""
            raise PerturbODEError(
                f"No perturbation column {perturbation_key!r}{hint}",
                where=f"{where}, obs columns: {', '.join(map(str, obs.columns[:12])) or 'none'}",
                fix="Name the column that holds the target gene(s) of each cell (--perturbation-key / "
                    "'Perturbation column')")
        values = None if condition_key is None else _condition_column(obs, condition_key, where)
        return obs, None, obs[perturbation_key], values
    if condition_key is not None and not pool_guides:
        raise PerturbODEError("Conditions are keyed both by a column and by guide", where="options",
                              fix="Give --condition-key or keep guides apart (--keep-guides-apart), not both")
    assignment = assign_guides(adata, guides, min_umis=min_guide_umis, min_fraction=min_guide_fraction,
                               perturbation_key=perturbation_key, where=where)
    for reason, n in assignment.counts().items():
        if reason != "assigned" and n:
            aside.append({"what": "cells", "name": "no clear guide", "cells": n, "reason": reason})
    for target in assignment.targets_without_cells(control or ""):
        aside.append({"what": "condition", "name": target, "cells": 0, "reason": "no cell with a clear guide"})
    rows = np.flatnonzero(assignment.assigned)
    if not len(rows):
        raise PerturbODEError(f"No cell has a clear guide ({assignment.rule})", where=f"{where}, {assignment.source}",
                              fix="Lower --guide-min-umis / --guide-min-fraction, or check the guide matrix")
    obs = obs.iloc[rows].copy()
    obs["assigned_guide"] = assignment.guide[rows]
    obs["assigned_target"] = assignment.target[rows]
    if condition_key is not None:
        values = _condition_column(obs, condition_key, where)
    else:
        values = None if pool_guides else obs["assigned_guide"].to_numpy(dtype=object)
    return obs, rows, obs["assigned_target"], values


def _condition_column(obs: pd.DataFrame, key: str, where: str) -> np.ndarray:
    if key not in obs.columns:
        raise PerturbODEError(f"No condition column {key!r}",
                              where=f"{where}, obs columns: {', '.join(map(str, obs.columns[:12]))}",
                              fix="Name the column that holds each cell's condition (--condition-key), or drop it")
    if obs[key].isna().any():
        raise PerturbODEError(f"{int(obs[key].isna().sum())} cell(s) have no condition", where=f"{where}, obs[{key!r}]",
                              fix="Give every cell a condition")
    return obs[key].astype(str).str.strip().to_numpy(dtype=object)


def _read_labels(raw_labels: pd.Series, column: str, control: str | None, where: str) -> tuple[np.ndarray, str]:
    """Each cell's perturbation label and the control label (guessed when None), checked."""
    if raw_labels.isna().any():
        n = int(raw_labels.isna().sum())
        raise PerturbODEError(f"{n} cell(s) have no perturbation label (empty/NaN)",
                              where=f"{where}, obs[{column!r}]",
                              fix="Label every cell with its target gene(s) or the control label")
    labels = raw_labels.astype(str).str.strip().to_numpy()
    if (labels == "").any():
        raise PerturbODEError(f"{int((labels == '').sum())} cell(s) have an empty perturbation label",
                              where=f"{where}, obs[{column!r}]",
                              fix="Label every cell with its target gene(s) or the control label")
    present = pd.unique(labels)
    if control is None:
        control = guess_control_label(present)
        if control is None:
            raise PerturbODEError("Could not find the control cells", where=f"{where}, obs[{column!r}]",
                                  fix=f"Give the control label (--control); values include {', '.join(present[:8])}")
        if control != DEFAULT_CONTROL_LABELS[0]:
            warnings.warn(f"{where}: the control cells are those labelled {control!r} in obs[{column!r}] (guessed; "
                          "give --control / 'Control label' for another)", PerturbODEInfo, stacklevel=4)
    if control not in set(present):
        guess = guess_control_label(present)
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise PerturbODEError(
            f"Control label {control!r} does not occur{hint}",
            where=f"{where}, obs[{column!r}] (values: {', '.join(map(str, present[:8]))}"
                  f"{' ...' if len(present) > 8 else ''})",
            fix="Give the label your control cells carry (--control / 'Control label')")
    return labels, control


def _read_expression(adata, layer: str | None, normalize: bool, gene_names: list[str], rows, where: str):
    """The expression matrix of the kept cells (``rows``; None: all) as dense float32 (or
    memory-mapped), checked for NaN / inf, normalised (normalize_total + log1p) when asked; and
    the raw counts (sparse) when normalised, else None."""
    if layer is not None and layer not in adata.layers:
        raise PerturbODEError(f"No layer {layer!r}", where=where,
                              fix=f"Use one of: {', '.join(adata.layers.keys()) or 'X (no layers)'}")
    source = adata.layers[layer] if layer is not None else adata.X
    X = _dense_float(source, where)
    if rows is not None:
        X = np.ascontiguousarray(X[rows])
    if not all_finite(X):
        bad = ~np.isfinite(X)
        genes_bad = np.asarray(gene_names)[bad.any(0)][:5]
        raise PerturbODEError(
            f"{int(bad.sum())} expression value(s) are NaN or infinite (genes {', '.join(genes_bad)}...)",
            where=f"{where}, {'layer ' + layer if layer else 'X'}",
            fix="Remove or impute them (e.g. np.nan_to_num) before loading")
    if normalize:
        counts = sp.csr_matrix(X)
        return normalize_log1p(X, where=where), counts
    if looks_like_counts(X):
        warnings.warn(f"{where}: the expression looks like raw counts; PerturbODE expects log-normalised "
                      "data. Load with normalize=True (--normalize) to apply normalize_total + log1p.",
                      PerturbODEWarning, stacklevel=4)
    return X, None


def _check_targets(interventions, gene_names, strict: bool, where: str, key: str) -> None:
    """Refuse unmeasured targets when ``strict``; otherwise warn about those that look like a
    measured gene written in another case (a typo, not an unmeasured regulator)."""
    if strict:  # one message naming every unmeasured target and the conditions that carry them
        known = set(gene_names)
        missing = {iv.gene: iv for ivs in interventions.values() for iv in ivs if iv.gene not in known}
        conds = [c for c, ivs in interventions.items() if any(iv.gene in missing for iv in ivs)]
        check_genes(sorted(missing.values(), key=lambda iv: iv.gene), gene_names,
                    where=f"{where}, obs[{key!r}], condition(s) {', '.join(conds[:5])}{' ...' if len(conds) > 5 else ''}")
        return
    measured = set(gene_names)
    folded = {g.casefold(): g for g in gene_names}
    typos = sorted({(iv.gene, folded[iv.gene.casefold()]) for ivs in interventions.values() for iv in ivs
                    if iv.gene not in measured and iv.gene.casefold() in folded})
    if typos:
        warnings.warn(f"{where}: target(s) {', '.join(f'{a} (gene {b}?)' for a, b in typos[:5])} differ from a "
                      "measured gene only by case; they are treated as unmeasured regulators. Fix the labels if "
                      "they mean the measured gene.", PerturbODEWarning, stacklevel=4)


def _classify(X, labels, control, interventions, obs, keep, mode, split_key, min_perturbed, aside, where):
    """Escape classification (in place: ``obs`` columns and ``keep``); returns the efficiency table."""
    if looks_like_counts(X):
        raise PerturbODEError("Escape classification needs log-normalised expression, and these look like raw "
                              "counts", where=where, fix="Add normalisation (--normalize)")
    split = None
    if split_key is not None:
        if split_key not in obs.columns:
            raise PerturbODEError(f"No column {split_key!r} to split the control neighbours by",
                                  where=f"{where}, obs columns", fix="Name e.g. the replicate column, or drop it")
        split = obs[split_key].astype(str).to_numpy()
    result = classify_escapees(X, labels, control, interventions, split=split, where=where)
    obs["perturbation_class"] = result.cell_class
    obs["perturbation_posterior"] = result.posterior
    if mode == "drop":
        escaping = result.cell_class == "escaping"
        keep &= ~escaping
        table = result.table.set_index("condition")
        for cond, row in table.iterrows():
            if row["escaping"]:
                aside.append({"what": "cells", "name": cond, "cells": int(row["escaping"]),
                              "reason": "escaped the knockout"})
            if row["status"] == "classified" and row["perturbed"] < min_perturbed:
                keep &= labels != cond
                aside.append({"what": "condition", "name": cond, "cells": int(row["perturbed"]),
                              "reason": f"fewer than {min_perturbed} perturbed cells"})
    return result.table


def _drop_empty(labels, keep, control, interventions, aside, where) -> np.ndarray:
    """Conditions left with no cells are set aside (named); the control must keep cells."""
    left = pd.Series(labels[keep]).value_counts()
    if not left.get(control, 0):
        raise PerturbODEError(f"No control cells are left after filtering (control {control!r})", where=where,
                              fix="Check the control label and the guide / escape options")
    gone = [c for c in interventions if not left.get(c, 0)]
    for cond in gone:
        if not any(r["name"] == cond and r["what"] == "condition" for r in aside):
            aside.append({"what": "condition", "name": cond, "cells": 0, "reason": "no cells left after filtering"})
    return np.ones(len(labels), bool) if not gone else ~np.isin(labels, gone)


def _guide_of_measured_gene(label: str, measured: set) -> bool:
    """Whether ``label`` reads as a measured gene plus a guide suffix (``GATA1_2``, ``SPI1-sg1``,
    ``CEBPA.g3``): a name, a separator, then a short tag that ends in a number."""
    match = re.fullmatch(r"(.+?)[_\-.]((?:sg|g|guide|gRNA|sgRNA)?\d{1,3}[a-z]?)", label, flags=re.IGNORECASE)
    return bool(match) and match.group(1) in measured


def _report_load(data: PerturbationData, split, where, key) -> None:
    """One info line each: labels split by type, unmeasured targets; one warning: what was set aside."""
    gene_names, set_aside = data.gene_names, data.set_aside
    if split:
        parts = [f"{label} -> {', '.join(names)}" for label, names in list(split.items())[:5]]
        warnings.warn(f"{where}: {len(split)} label(s) mix intervention types or doses and were split into one "
                      f"condition each: {'; '.join(parts)}", PerturbODEInfo, stacklevel=4)
    targets, unmeasured = data.perturbed_genes(), data.unmeasured_targets
    if unmeasured and len(unmeasured) == len(targets):
        # legitimate (a screen of genes outside the panel) but also what a wrong column looks like
        warnings.warn(f"{where}: none of the {len(targets)} target(s) ({', '.join(unmeasured[:5])}"
                      f"{' ...' if len(unmeasured) > 5 else ''}) is among the measured genes. If the perturbation "
                      f"column is not {key!r}, choose the right one; otherwise every target is an unmeasured "
                      "regulator.", PerturbODEWarning, stacklevel=4)
    elif unmeasured:
        warnings.warn(f"{where}: {len(unmeasured)} target(s) are not among the {len(gene_names)} measured genes and "
                      f"enter the model as unmeasured regulators: {', '.join(unmeasured[:20])}"
                      f"{' ...' if len(unmeasured) > 20 else ''}", PerturbODEInfo, stacklevel=4)
    measured = set(gene_names)
    joined = [t for t in unmeasured if any(len(parts) > 1 and all(p in measured for p in parts)
                                           for parts in (t.split(sep) for sep in ("_", ",", ";", "|")))]
    if joined:  # e.g. scPerturb's AHR_KLF1: an unmeasured regulator of that name is unlikely
        warnings.warn(f"{where}: target(s) {', '.join(joined[:5])}{' ...' if len(joined) > 5 else ''} are not measured "
                      "genes but join measured ones: if they are combinations, write them with '+' (A+B); as they "
                      "are, each is one unmeasured regulator.", PerturbODEWarning, stacklevel=4)
    guide_like = [t for t in unmeasured if t not in joined and _guide_of_measured_gene(t, measured)]
    if guide_like:  # GATA1_2, SPI1-sg1: labels that name guides, not genes
        warnings.warn(f"{where}: target(s) {', '.join(guide_like[:5])}{' ...' if len(guide_like) > 5 else ''} look like "
                      "guides of measured genes: label cells by their target gene (or key conditions by the guide "
                      "column with --condition-key); as they are, each is one unmeasured regulator.",
                      PerturbODEWarning, stacklevel=4)
    if len(set_aside):
        cells = set_aside[set_aside["what"] == "cells"]
        conds = set_aside[set_aside["what"] == "condition"]
        parts = []
        if len(cells):
            by_reason = cells.groupby("reason", sort=False)["cells"].sum()
            parts.append("cells: " + ", ".join(f"{int(n):,} {r}" for r, n in by_reason.items()))
        if len(conds):
            parts.append("conditions: " + ", ".join(f"{r.name} ({r.reason})" for r in conds.itertuples()))
        warnings.warn(f"{where}: set aside {'; '.join(parts)}", PerturbODEWarning, stacklevel=4)


def _warn_single_profiles(labels: np.ndarray, where: str) -> None:
    # one-cell conditions are legitimate (bulk screens) but worth knowing about
    counts = pd.Series(labels).value_counts()
    single = counts[counts == 1].index.tolist()
    if single and len(single) < len(counts):
        warnings.warn(f"{where}: {len(single)} condition(s) have a single cell/profile "
                      f"({', '.join(map(str, single[:5]))}); fine for bulk screens, noisy for single-cell data.",
                      PerturbODEWarning, stacklevel=3)


def _read_times(obs: pd.DataFrame, time_key: str, where: str) -> np.ndarray | None:
    """Each cell's sampling time, or None for steady-state data (no column, or a single time)."""
    if time_key not in obs.columns:
        return None
    try:
        times = obs[time_key].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise PerturbODEError(f"Time column {time_key!r} is not numeric", where=f"{where}, obs[{time_key!r}]",
                              fix="Store times as numbers (e.g. hours)") from None
    if not np.isfinite(times).all():
        raise PerturbODEError(f"Time column {time_key!r} has missing values", where=f"{where}, obs[{time_key!r}]",
                              fix="Give every cell a time, or drop the column for steady-state data")
    return None if len(np.unique(times)) == 1 else times


def load(path: str | Path, **kwargs) -> PerturbationData:
    """Read an ``.h5ad`` file and validate it (keyword arguments as in :func:`from_anndata`).

    ``backed=True`` opens the file backed: a dense float32 ``X`` stored uncompressed is then
    memory-mapped (read from disk as minibatches need it, see :mod:`perturbode_core.io.h5ad`);
    other layouts are read once, densely, in row chunks.
    """
    backed = kwargs.pop("backed", False)
    adata = read_h5ad(path, backed=backed)
    kwargs.setdefault("source", Path(path).name)
    return from_anndata(adata, **kwargs)


def describe(data: PerturbationData) -> dict:
    """A summary of the dataset: sizes, cells per condition, intervention types, times."""
    counts = pd.Series(data.labels).value_counts()
    per_condition = pd.DataFrame({
        "condition": data.conditions,
        "cells": [int(counts.get(c, 0)) for c in data.conditions],
        "targets": ["" if c == data.control else "+".join(iv.gene for iv in data.interventions[c])
                    for c in data.conditions],
        "type": ["control" if c == data.control else "+".join(sorted({iv.kind for iv in data.interventions[c]}))
                 for c in data.conditions],
    })
    kinds = pd.Series([iv.kind for ivs in data.interventions.values() for iv in ivs]).value_counts().to_dict()
    return {
        "source": data.source,
        "n_cells": data.n_cells,
        "n_genes": data.n_genes,
        "n_conditions": len(data.conditions),
        "n_perturbations": len(data.perturbations),
        "n_combinations": sum(len(v) > 1 for v in data.interventions.values()),
        "control": data.control,
        "n_control_cells": int(counts.get(data.control, 0)),
        "median_cells_per_condition": float(counts.median()),
        "intervention_types": {k: int(v) for k, v in kinds.items()},
        "times": None if data.times is None else sorted(map(float, np.unique(data.times))),
        "per_condition": per_condition,
    }


