"""How much of its own transcript a knockout (or a knock-down without a dose) leaves: measured on
the screen's training perturbations.

A CRISPR knockout removes the protein, but the target's mRNA is often still measured: a frameshift
transcript is degraded only in part by nonsense-mediated decay (on the built-in Papalexi et al.
2021 screen the knocked-out genes keep 67 % of their control level; JAK2 22 %, UBE2L6 89 %). A
simulator's knockout, in contrast, deletes the transcript (0 % on every simulated design of the
accuracy benchmark). A model that always set a knocked-out gene's level to zero would predict a
large drop of the target that a real screen does not show (the worst-predicted gene of every
held-out Papalexi knockout), while its effect on other genes is that of the protein gone.

So a knockout is read as two things: the regulator's activity is removed (its input to the
modules is that of level zero, as before), and its own level relaxes to the fraction of its
control level that the screen's *training* knockouts left of their targets
(:func:`knockout_level`; ``ModelConfig.knockout_level="auto"``). Where the measured level is
zero, as in simulated screens, nothing changes.

A knock-down without a dose (CRISPRi, shRNA: ``intervention_type=knockdown`` and no value) is read
from the screen too (:func:`knockdown_level`; ``ModelConfig.knockdown_level="auto"``): its target's
level is the line ``slope x control level + intercept`` that the *training* undosed knock-downs
show, in the data's own units, since that is the level the model clamps. A line, not a fraction:
on log-normalised data removing a share of the transcripts is a constant drop of the level (a
simulated 80 % knock-down lowers every target by about 1.5, slope 1), which a fraction of the level
misreads 10-fold worse (leave-one-out error of the target's level) than the library default of
50 % already does. A knock-down with a stated dose is taken as stated.
"""

from __future__ import annotations

import numpy as np

from perturbode_core.data.interventions import DEFAULT_VALUES

#: A fraction below this reads as 0 (the transcript removed): a few percent left is the noise of a
#: level measured at zero (the simulated bulk knockouts "leave" 1 %), and reading it as a protein
#: knockout with a trace of transcript would change the training for nothing.
MIN_LEVEL = 0.05

#: Targets expressed below this fraction of the mean control level of all genes give no reading:
#: their ratio would be noise.
MIN_CONTROL_LEVEL = 0.05


def _expression_floor(control) -> float:
    """Targets whose control level is at most this give no reading (:data:`MIN_CONTROL_LEVEL`)."""
    return MIN_CONTROL_LEVEL * max(float(np.mean(np.abs(control))), 1e-12)


def _single_targets(data, conditions, kinds):
    """``(condition, intervention, gene index, cells)`` of each single perturbation of a measured gene
    whose type is in ``kinds`` among ``conditions`` (default: every condition) that has cells."""
    names = {g: i for i, g in enumerate(data.gene_names)}
    keep = None if conditions is None else set(conditions)
    for cond, ivs in data.interventions.items():
        if cond == data.control or (keep is not None and cond not in keep) or len(ivs) != 1:
            continue
        if ivs[0].kind not in kinds or ivs[0].gene not in names:
            continue
        cells = data.cells_of(cond)
        if len(cells):
            yield cond, ivs[0], names[ivs[0].gene], cells


def own_level_pairs(data, conditions=None, *, kind: str = "knockout",
                    control=None) -> list[tuple[str, float, float]]:
    """``(target, control level, level in the perturbed cells)`` of each single perturbation of a
    measured gene of type ``kind`` among ``conditions`` (default: every condition), in data units;
    knock-downs only where no dose is given (a stated dose is the user's word, not measured here).
    ``control``: the control cells' mean, when the caller has it already."""
    control = data.control_cells().mean(0) if control is None else control
    return [(iv.gene, float(control[j]), float(data.X[cells, j].mean()))
            for _, iv, j, cells in _single_targets(data, conditions, (kind,))
            if not (kind == "knockdown" and iv.value is not None)]


def own_level_table(data, conditions=None):
    """One row per single knockout or knock-down of a measured gene (the on-target check of a
    screen): ``condition``, ``target``, ``type``, ``dose`` (NaN: none given), ``control_level``,
    ``level`` (the mean in the condition's cells, data units) and ``left`` (their ratio; NaN where
    the target is not expressed in the control cells), ordered by ``left``."""
    import pandas as pd

    control = data.control_cells().mean(0)
    rows = []
    for cond, iv, j, cells in _single_targets(data, conditions, ("knockout", "knockdown")):
        c, k = float(control[j]), float(data.X[cells, j].mean())
        rows.append({"condition": cond, "target": iv.gene, "type": iv.kind,
                     "dose": np.nan if iv.value is None else float(iv.value), "control_level": c, "level": k,
                     "left": k / c if c > 0 else np.nan})
    columns = ["condition", "target", "type", "dose", "control_level", "level", "left"]
    return pd.DataFrame(rows, columns=columns).sort_values("left", na_position="last").reset_index(drop=True)


def _expressed_pairs(data, conditions, kind: str) -> list[tuple[str, float, float]]:
    """:func:`own_level_pairs` of the targets expressed above :func:`_expression_floor`."""
    control = data.control_cells().mean(0)
    floor = _expression_floor(control)
    return [pair for pair in own_level_pairs(data, conditions, kind=kind, control=control) if pair[1] > floor]


def _fraction_left(data, conditions, kind: str) -> float | None:
    """The pooled fraction of their control level that the training ``kind`` perturbations left of
    their targets (ratio of sums over targets expressed above the floor), clipped to [0, 1]; None
    when nothing was measured."""
    pairs = _expressed_pairs(data, conditions, kind)
    if not pairs:
        return None
    ctrl, level = sum(c for _, c, _ in pairs), sum(k for _, _, k in pairs)
    return float(np.clip(level / ctrl, 0.0, 1.0))


def per_target_left(data, conditions=None, *, kind: str = "knockout") -> dict[str, float]:
    """``{target: fraction left}`` of each target of the training conditions' single ``kind``
    perturbations (knock-downs: undosed only), its level in their cells over its control level
    (a ratio of sums over its conditions), clipped to [0, 1]; targets expressed below the floor
    are left out. A model uses these for the targets it saw (a CRISPRi guide's efficiency varies
    from target to target: the pooled reading would misstate what a weak one left) and the
    pooled reading for the others."""
    sums: dict[str, list[float]] = {}
    for gene, c, k in _expressed_pairs(data, conditions, kind):
        acc = sums.setdefault(gene, [0.0, 0.0])
        acc[0] += k
        acc[1] += c
    return {gene: float(np.clip(k / c, 0.0, 1.0)) for gene, (k, c) in sums.items()}


def knockout_level(data, conditions=None) -> float:
    """The fraction of its control level that a knockout leaves of its target's measured level, in
    ``[0, 1]``: the sum of the knocked-out targets' levels over the sum of their control levels
    (a ratio of sums, so that lowly expressed targets, whose ratios are noise, weigh little).

    0.0 when the training conditions hold no single knockout of a measured gene that is expressed
    in the control cells (nothing measured: the transcript is taken as removed, the simulators'
    reading), and when the fraction is below :data:`MIN_LEVEL`.
    """
    left = _fraction_left(data, conditions, "knockout")
    return left if left is not None and left >= MIN_LEVEL else 0.0


#: The fewest expressed training targets from which a line (slope and intercept) is fitted;
#: with fewer, the knock-down leaves the pooled fraction (a line through zero).
MIN_LINE_TARGETS = 3

#: The library's reading of a knock-down without a dose when nothing is measured: half removed.
DEFAULT_KNOCKDOWN_RULE = (1.0 - DEFAULT_VALUES["knockdown"], 0.0)


def knockdown_level(data, conditions=None) -> list[float] | None:
    """``[slope, intercept]``: the level a knock-down without a dose leaves of its target, as a
    line in its control level (data units), fitted by least squares on the training conditions'
    undosed knock-downs of measured genes expressed above the floor.

    With fewer than :data:`MIN_LINE_TARGETS` such targets, or control levels too alike to fit a
    slope, or a fitted slope outside ``[0, 1.5]`` (a knock-down that raises its target), the pooled
    fraction (ratio of sums) through zero: ``[fraction, 0]``. None when none was measured (the
    caller keeps :data:`DEFAULT_KNOCKDOWN_RULE`)."""
    pairs = _expressed_pairs(data, conditions, "knockdown")
    if not pairs:
        return None
    ctrl, level = np.array([(c, k) for _, c, k in pairs]).T
    if len(ctrl) >= MIN_LINE_TARGETS and ctrl.std() > 1e-6 * max(ctrl.mean(), 1e-12):
        slope, intercept = np.polyfit(ctrl, level, 1)
        if 0.0 <= slope <= 1.5:
            return [float(slope), float(intercept)]
    return [float(np.clip(level.sum() / ctrl.sum(), 0.0, 1.0)), 0.0]


def knockdown_rule(config) -> tuple[float, float]:
    """``(slope, intercept)`` of a resolved ``ModelConfig.knockdown_level`` (a fraction ``r`` is
    the line ``r x control``)."""
    value = config.knockdown_level
    if value == "auto":
        return DEFAULT_KNOCKDOWN_RULE
    if isinstance(value, (int, float)):
        return float(value), 0.0
    return float(value[0]), float(value[1])


def knocked_down_level(rule: tuple[float, float], control_level):
    """The level a knock-down without a dose leaves of a target of ``control_level`` (data units):
    the rule's line, kept between zero and the control level (a knock-down never raises its target)."""
    slope, intercept = rule
    control_level = np.asarray(control_level, dtype=float)
    return np.clip(slope * control_level + intercept, 0.0, np.maximum(control_level, 0.0))


def describe_knockout_level(level: float) -> str:
    """One sentence on a model's resolved ``knockout_level``, for the command line and the Train page."""
    if level <= 0:
        return "a knockout takes its target's level to zero (the training knockouts left none of it)"
    return (f"a knockout removes its target's effect on other genes and leaves {100 * level:.0f} % of its own "
            "level, as the training knockouts did (a CRISPR knockout's transcript is only partly degraded)")


def measured_knockdown(config) -> bool:
    """Whether a resolved ModelConfig's ``knockdown_level`` differs from the library's default dose
    (it was measured on the screen, or set): what the command line and the pages then say."""
    return knockdown_rule(config) != DEFAULT_KNOCKDOWN_RULE


def describe_knockdown_level(rule: tuple[float, float]) -> str:
    """One sentence on a model's resolved knock-down rule, for the command line and the Train page."""
    slope, intercept = rule
    if intercept == 0:
        return (f"a knock-down without a dose leaves {100 * slope:.0f} % of its target's level, as the training "
                "knock-downs did")
    return (f"a knock-down without a dose takes its target's level to {slope:.2f} x its control level "
            f"{'+' if intercept >= 0 else '-'} {abs(intercept):.2f}, the line the training knock-downs show (on "
            "log-normalised data a constant drop: a share of the transcripts removed)")
