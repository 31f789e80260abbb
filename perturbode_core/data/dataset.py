"""Read, validate, describe and split single-cell (or bulk) perturbation data.

Conventions (DESIGN section 3): an AnnData of cells x genes; ``obs[perturbation_key]`` names the
target gene(s) of each cell, ``+``-joined for combinations, with a control label; optional
``obs["intervention_type"]`` and ``obs["time"]``. A condition may hold a single profile (bulk or
pseudobulk screens): everything works then too, with a warning.

Every invalid input raises :class:`~perturbode_core.errors.PerturbODEError` with what, where and
how to fix it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from perturbode_core.errors import PerturbODEError, PerturbODEWarning
from perturbode_core.io.h5ad import all_finite, read_h5ad
from perturbode_core.data.interventions import Intervention, check_genes, normalise_type, parse_spec

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
        return PerturbationData(
            X=self.X[mask], gene_names=list(self.gene_names), labels=self.labels[mask],
            control=self.control, conditions=[c for c in self.conditions if c in set(keep)],
            interventions={c: v for c, v in self.interventions.items() if c in set(keep)},
            times=None if self.times is None else self.times[mask],
            obs=None if self.obs is None else self.obs.loc[mask],
            source=self.source, perturbation_key=self.perturbation_key, uns=dict(self.uns))

    def to_anndata(self):
        """The data back as an AnnData (obs: perturbation, intervention_type, time)."""
        import anndata as ad

        obs = pd.DataFrame({self.perturbation_key: self.labels.astype(str)})
        if self.times is not None:
            obs["time"] = self.times
        adata = ad.AnnData(X=self.X.copy(), obs=obs, var=pd.DataFrame(index=list(self.gene_names)))
        adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
        return adata


def from_anndata(
    adata,
    *,
    perturbation_key: str = "perturbation",
    control: str | None = "control",
    intervention_type_key: str = "intervention_type",
    default_intervention: str = "knockout",
    activity_synonyms: bool = False,
    time_key: str = "time",
    layer: str | None = None,
    normalize: bool = False,
    source: str | None = None,
    strict_targets: bool = True,
) -> PerturbationData:
    """Validate an AnnData as a perturbation dataset.

    Parameters
    ----------
    adata
        Cells x genes. ``X`` (or ``layer``) holds expression; log-normalised is expected.
    perturbation_key
        ``obs`` column with the target gene(s) of each cell (``+``-joined for combinations).
    control
        Label of control cells; ``None`` guesses it among ``control``, ``ctrl``, ``non-targeting``...
    intervention_type_key
        Optional ``obs`` column with the intervention type of each cell (knockout, knockdown,
        overexpression, shift; CRISPRko / CRISPRi / CRISPRa and other synonyms accepted).
    default_intervention
        The type used when that column is absent.
    activity_synonyms
        Read ``inhibition`` / ``activation`` as the *activity* type (drugs, signalling proteins).
    time_key
        Optional ``obs`` column with the sampling time of each cell (time-course data).
    layer
        Read expression from this layer instead of ``X``.
    normalize
        Normalise raw counts (scanpy ``normalize_total`` + ``log1p``). Without it, data that look
        like raw counts get a warning.
    source
        Name of the data for messages (defaults to the file name or "AnnData").
    strict_targets
        Raise when a target is not among the genes; when False, such conditions are dropped with
        a warning (e.g. guides against genes filtered out of the matrix).
    """
    where = source or "AnnData"
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise PerturbODEError(f"The AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes)",
                              where=where, fix="Load a file with cells and genes")
    gene_names = _unique_gene_names(adata, where)
    obs = adata.obs
    labels, control = _read_labels(obs, perturbation_key, control, where)
    X = _read_expression(adata, layer, normalize, gene_names, where)
    interventions, dropped = _read_interventions(
        obs, labels, control, gene_names, perturbation_key=perturbation_key,
        intervention_type_key=intervention_type_key, default_intervention=default_intervention,
        activity_synonyms=activity_synonyms, strict_targets=strict_targets, where=where)
    conditions = [control] + sorted(c for c in pd.unique(labels) if c != control and c not in set(dropped))
    if dropped:
        warnings.warn(f"{where}: dropped {len(dropped)} condition(s) whose targets are not among the genes: "
                      f"{', '.join(dropped[:10])}", PerturbODEWarning, stacklevel=2)
        keep = ~np.isin(labels, dropped)
        X, labels, obs = X[keep], labels[keep], obs.loc[keep]
    _warn_single_profiles(labels, where)
    return PerturbationData(
        X=X, gene_names=gene_names, labels=labels, control=control, conditions=conditions,
        interventions=interventions, times=_read_times(obs, time_key, where), obs=obs.copy(),
        source=source or "AnnData", perturbation_key=perturbation_key, uns=dict(getattr(adata, "uns", {}) or {}))


def _unique_gene_names(adata, where: str) -> list[str]:
    gene_names = [str(g) for g in adata.var_names]
    dup = pd.Index(gene_names)[pd.Index(gene_names).duplicated()].unique().tolist()
    if dup:
        raise PerturbODEError(
            f"Duplicated gene names: {', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''} ({len(dup)} in all)",
            where=f"{where}, var_names", fix="Make them unique with adata.var_names_make_unique()")
    return gene_names


def _read_labels(obs: pd.DataFrame, perturbation_key: str, control: str | None, where: str) -> tuple[np.ndarray, str]:
    """Each cell's condition label and the control label (guessed when None), checked."""
    if perturbation_key not in obs.columns:
        guess = guess_perturbation_key(obs)
        hint = f" (column {guess!r} looks like one)" if guess else ""
        raise PerturbODEError(
            f"No perturbation column {perturbation_key!r}{hint}",
            where=f"{where}, obs columns: {', '.join(map(str, obs.columns[:12])) or 'none'}",
            fix="Name the column that holds the target gene(s) of each cell (--perturbation-key / "
                "'Perturbation column')")
    raw_labels = obs[perturbation_key]
    if raw_labels.isna().any():
        n = int(raw_labels.isna().sum())
        raise PerturbODEError(f"{n} cell(s) have no perturbation label (empty/NaN)",
                              where=f"{where}, obs[{perturbation_key!r}]",
                              fix="Label every cell with its target gene(s) or the control label")
    labels = raw_labels.astype(str).str.strip().to_numpy()
    if (labels == "").any():
        raise PerturbODEError(f"{int((labels == '').sum())} cell(s) have an empty perturbation label",
                              where=f"{where}, obs[{perturbation_key!r}]",
                              fix="Label every cell with its target gene(s) or the control label")
    present = pd.unique(labels)
    if control is None:
        control = guess_control_label(present)
        if control is None:
            raise PerturbODEError("Could not find the control cells", where=f"{where}, obs[{perturbation_key!r}]",
                                  fix=f"Give the control label (--control); values include {', '.join(present[:8])}")
    if control not in set(present):
        guess = guess_control_label(present)
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise PerturbODEError(
            f"Control label {control!r} does not occur{hint}",
            where=f"{where}, obs[{perturbation_key!r}] (values: {', '.join(map(str, present[:8]))}"
                  f"{' ...' if len(present) > 8 else ''})",
            fix="Give the label your control cells carry (--control / 'Control label')")
    return labels, control


def _read_expression(adata, layer: str | None, normalize: bool, gene_names: list[str], where: str) -> np.ndarray:
    """The expression matrix (dense float32, or memory-mapped), checked for NaN / inf and
    normalised (normalize_total + log1p) when asked."""
    if layer is not None and layer not in adata.layers:
        raise PerturbODEError(f"No layer {layer!r}", where=where,
                              fix=f"Use one of: {', '.join(adata.layers.keys()) or 'X (no layers)'}")
    X = _dense_float(adata.layers[layer] if layer is not None else adata.X, where)
    if not all_finite(X):
        bad = ~np.isfinite(X)
        genes_bad = np.asarray(gene_names)[bad.any(0)][:5]
        raise PerturbODEError(
            f"{int(bad.sum())} expression value(s) are NaN or infinite (genes {', '.join(genes_bad)}...)",
            where=f"{where}, {'layer ' + layer if layer else 'X'}",
            fix="Remove or impute them (e.g. np.nan_to_num) before loading")
    if normalize:
        if X.min() < 0:
            raise PerturbODEError("Normalisation was asked for, but the matrix has negative values "
                                  "(it is not raw counts)", where=where,
                                  fix="Load it without normalisation, or give the raw counts layer")
        import anndata as ad
        import scanpy as sc

        tmp = ad.AnnData(X=X.copy())
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
        X = np.asarray(tmp.X, dtype=np.float32)
    elif looks_like_counts(X):
        warnings.warn(f"{where}: the expression looks like raw counts; PerturbODE expects log-normalised "
                      "data. Load with normalize=True (--normalize) to apply normalize_total + log1p.",
                      PerturbODEWarning, stacklevel=3)
    return X


def _read_interventions(obs, labels, control, gene_names, *, perturbation_key, intervention_type_key,
                        default_intervention, activity_synonyms, strict_targets,
                        where) -> tuple[dict[str, list[Intervention]], list[str]]:
    """Each perturbed condition's targets with their type, and the conditions dropped because a
    target is not among the genes (only when ``strict_targets`` is False)."""
    interventions: dict[str, list[Intervention]] = {}
    types_col = obs[intervention_type_key].astype(str).to_numpy() if intervention_type_key in obs.columns else None
    default_kind = normalise_type(default_intervention, where="default intervention type",
                                  activity_synonyms=activity_synonyms)
    dropped: list[str] = []
    for cond in sorted(c for c in pd.unique(labels) if c != control):
        kind = default_kind
        if types_col is not None:
            kinds = pd.unique(types_col[labels == cond])
            if len(kinds) > 1:
                raise PerturbODEError(
                    f"Condition {cond!r} mixes intervention types {', '.join(kinds)}",
                    where=f"{where}, obs[{intervention_type_key!r}]",
                    fix="Give each condition one type, or name the types in the label (GENE:knockout+GENE2:overexpression)")
            kind = normalise_type(kinds[0], where=f"{where}, obs[{intervention_type_key!r}], condition {cond!r}",
                                  activity_synonyms=activity_synonyms)
        ivs = parse_spec(cond, default_kind=kind, where=f"{where}, obs[{perturbation_key!r}]",
                         activity_synonyms=activity_synonyms)
        try:
            check_genes(ivs, gene_names, where=f"{where}, obs[{perturbation_key!r}], condition {cond!r}")
        except PerturbODEError:
            if strict_targets:
                raise
            dropped.append(cond)
            continue
        interventions[cond] = ivs
    return interventions, dropped


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


