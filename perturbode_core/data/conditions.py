"""Conditions of a screen: which cells belong together, and what each condition does to its targets.

By default a condition is a perturbation label (``obs[perturbation_key]``: ``GATA1``,
``GATA1+SPI1``, ``TP53:knockdown=0.8``) with the intervention type of its cells
(``obs[intervention_type_key]``) and, optionally, a dose (``obs[dose_key]``: the knock-down
fraction, overexpression fold or activity factor).

One label whose cells carry several types or doses (a phospho-flow drug screen where protein PKC
is inhibited in some wells and activated in others) is split into one condition per type and dose,
each named by its canonical spec with the value written out (``PKC:activity=0``, ``PKC:activity=2``;
``A:knockdown=0.5``, ``A:overexpression=1``), so every label still parses with
:func:`~perturbode_core.data.interventions.parse_spec` to exactly its interventions.

With ``condition_key``, a condition is instead a value of its own column (``condition``,
``guide``, a drug and dose): the perturbation column then only says what each condition targets, so
one target may appear in several conditions (guides kept apart, doses, types). Every condition must
then have one target spec, one type and one dose. Cells carrying the control label in the
perturbation column form the one control condition whatever their condition value (non-targeting
guides pooled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.data.interventions import Intervention, format_spec, parse_spec, resolve_type


@dataclass
class Conditions:
    """Each cell's condition label and each perturbed condition's interventions.

    Attributes
    ----------
    labels
        Condition label of each cell (str array).
    interventions
        ``{condition: [Intervention]}`` for every condition but the control.
    split
        ``{original label: [new condition labels]}`` for labels split by type or dose.
    """

    labels: np.ndarray
    interventions: dict[str, list[Intervention]]
    split: dict[str, list[str]] = field(default_factory=dict)


def read_conditions(obs: pd.DataFrame, targets: np.ndarray, control: str, *, perturbation_key: str,
                    condition_values: np.ndarray | None = None, condition_name: str = "condition",
                    intervention_type_key: str = "intervention_type",
                    dose_key: str | None = None, default_intervention: str = "knockout",
                    activity_synonyms="auto", where: str = "AnnData") -> Conditions:
    """The conditions of a screen (see the module docstring).

    Parameters
    ----------
    obs
        The cells' annotations.
    targets
        Each cell's perturbation label (``obs[perturbation_key]`` as checked strings).
    control
        The control label (in ``targets``).
    condition_values
        Optional condition of each cell (an ``obs`` column's values, or each cell's guide).
    condition_name
        Where those came from, for messages (the column's name).
    intervention_type_key, dose_key
        Optional ``obs`` columns: each cell's intervention type and dose.
    default_intervention
        The type when there is no type column.
    activity_synonyms
        How ``inhibition`` / ``activation`` are read (``auto``, ``yes``, ``no``: see
        :data:`~perturbode_core.data.interventions.ACTIVITY_WORD_MODES`).
    """
    default = resolve_type(default_intervention, where="default intervention type",
                           activity_synonyms=activity_synonyms, has_value=dose_key is not None)
    kinds, values = _cell_types(obs, targets, control, intervention_type_key, dose_key, default,
                                activity_synonyms, where)
    if condition_values is None:
        return _by_label(targets, control, kinds, values, activity_synonyms, where, perturbation_key)
    return _by_column(np.asarray(condition_values, dtype=object), targets, control, kinds, values,
                      activity_synonyms, where, perturbation_key, intervention_type_key, condition_name)


def _cell_types(obs, targets, control, type_key, dose_key, default, activity_synonyms, where):
    """Each cell's intervention type and value (None: the type's default). Control cells are
    skipped: their type column reads e.g. ``control``, which is no intervention type."""
    n = len(targets)
    kinds = np.full(n, default[0], dtype=object)
    values = np.full(n, default[1], dtype=object)
    perturbed = targets != control
    if type_key in obs.columns:
        raw = obs[type_key].astype(str).to_numpy()
        for word in pd.unique(raw[perturbed]):
            kind, value = resolve_type(word, where=f"{where}, obs[{type_key!r}]", activity_synonyms=activity_synonyms,
                                       has_value=dose_key is not None)
            hit = perturbed & (raw == word)
            kinds[hit], values[hit] = kind, value
    if dose_key is not None:
        if dose_key not in obs.columns:
            raise PerturbODEError(f"No dose column {dose_key!r}", where=f"{where}, obs columns",
                                  fix=f"Name one of: {', '.join(map(str, obs.columns[:12]))}, or drop --dose-key")
        try:
            dose = obs[dose_key].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise PerturbODEError(f"Dose column {dose_key!r} is not numeric", where=f"{where}, obs[{dose_key!r}]",
                                  fix="Store doses as numbers (knock-down fraction, overexpression fold, "
                                      "activity factor)") from None
        bad = perturbed & ~np.isfinite(dose)
        if bad.any():
            raise PerturbODEError(f"{int(bad.sum())} perturbed cell(s) have no dose", where=f"{where}, obs[{dose_key!r}]",
                                  fix="Give every perturbed cell a dose")
        values[perturbed] = dose[perturbed]
    return kinds, values


def _without_control(label, control) -> str:
    """A combination label with the control label dropped from it: ``A+ctrl`` is the single
    perturbation of A (the GEARS / Norman et al. convention for singles in a combination screen),
    not A plus a gene called ``ctrl``."""
    parts = str(label).split("+")
    kept = [p for p in parts if p.strip() != control]
    return "+".join(kept) if kept and len(kept) < len(parts) else str(label)


def _parse(label, kind, value, activity_synonyms, where, key, control=None):
    value = None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)
    return parse_spec(_without_control(label, control), default_kind=kind, default_value=value,
                      activity_synonyms=activity_synonyms, where=f"{where}, obs[{key!r}]")


def _explicit(ivs: list[Intervention]) -> list[Intervention]:
    """The interventions with every value written out (a knockout has none), so that the labels
    of a split read unambiguously (``PKC:activity=0`` vs ``PKC:activity=2``)."""
    return [iv if iv.kind == "knockout" else Intervention(iv.gene, iv.kind, iv.resolved_value) for iv in ivs]


def _groups(labels: np.ndarray, kinds: np.ndarray, values: np.ndarray):
    """Distinct (label, kind, value) triples with the cells of each (one pass over the cells)."""
    frame = pd.DataFrame({"label": labels, "kind": kinds, "value": pd.Series(values, dtype=object).astype(str)})
    codes = frame.groupby(["label", "kind", "value"], sort=True).ngroup().to_numpy()
    first = pd.Series(np.arange(len(labels))).groupby(codes).first().to_numpy()
    return codes, first


def _by_label(targets, control, kinds, values, activity_synonyms, where, key) -> Conditions:
    codes, first = _groups(targets, kinds, values)
    labels = targets.astype(object).copy()
    per_label: dict[str, list[int]] = {}
    for g, i in enumerate(first):
        if targets[i] != control:
            per_label.setdefault(targets[i], []).append(g)
    interventions: dict[str, list[Intervention]] = {}
    split: dict[str, list[str]] = {}
    for label, groups in sorted(per_label.items()):
        if len(groups) == 1:
            i = first[groups[0]]
            interventions[label] = _parse(label, kinds[i], values[i], activity_synonyms, where, key, control)
            continue
        # one label, several types or doses: one condition each, named by its canonical spec
        names = []
        for g in groups:
            i = first[g]
            ivs = _explicit(_parse(label, kinds[i], values[i], activity_synonyms, where, key, control))
            name = format_spec(ivs)
            if name in interventions:  # e.g. 'A' knockdown=0.5 and 'A:knockdown=0.5' in one file
                raise PerturbODEError(f"Two labels describe the same condition {name!r}", where=f"{where}, obs[{key!r}]",
                                      fix="Use one label per condition")
            interventions[name] = ivs
            labels[codes == g] = name
            names.append(name)
        split[label] = sorted(names)
    return Conditions(labels=labels.astype(str), interventions=interventions, split=split)


def _by_column(labels, targets, control, kinds, values, activity_synonyms, where, key, type_key, condition_key):
    labels = labels.copy()
    is_control = targets == control
    clash = ~is_control & (labels == control)
    if clash.any():
        raise PerturbODEError(f"Condition {control!r} (the control label) holds {int(clash.sum())} perturbed cell(s)",
                              where=f"{where}, obs[{condition_key!r}]",
                              fix="Give perturbed conditions their own names")
    labels[is_control] = control  # control guides (non-targeting 1, 2, ...) pool into one control
    interventions: dict[str, list[Intervention]] = {}
    cells = np.flatnonzero(~is_control)
    frame = pd.DataFrame({"condition": labels[cells], "target": targets[cells], "kind": kinds[cells],
                          "value": pd.Series(values[cells], dtype=object).astype(str)})
    for cond, rows in frame.groupby("condition", sort=True):
        for col, what, fix_key in (("target", "targets", key), ("kind", "intervention types", type_key),
                                   ("value", "doses", "dose")):
            seen = pd.unique(rows[col])
            if len(seen) > 1:
                raise PerturbODEError(f"Condition {cond!r} mixes {what} {', '.join(map(str, seen[:4]))}",
                                      where=f"{where}, obs[{condition_key!r}] and obs[{fix_key!r}]",
                                      fix="Give each condition one target, type and dose, or key conditions by "
                                          "another column")
        i = int(cells[rows.index[0]])
        interventions[str(cond)] = _parse(targets[i], kinds[i], values[i], activity_synonyms, where, key, control)
    return Conditions(labels=labels.astype(str), interventions=interventions)
