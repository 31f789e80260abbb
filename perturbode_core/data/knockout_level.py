"""How much of its own transcript a knockout leaves: measured on the screen's knockouts.

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
"""

from __future__ import annotations

import numpy as np

#: A fraction below this reads as 0 (the transcript removed): a few percent left is the noise of a
#: level measured at zero (the simulated bulk knockouts "leave" 1 %), and reading it as a protein
#: knockout with a trace of transcript would change the training for nothing.
MIN_LEVEL = 0.05

#: Targets expressed below this fraction of the mean control level of all genes give no reading:
#: their ratio would be noise.
MIN_CONTROL_LEVEL = 0.05


def knockout_pairs(data, conditions=None, *, control=None) -> list[tuple[str, float, float]]:
    """``(target, control level, level in the knockout's cells)`` of each single knockout of a
    measured gene among ``conditions`` (default: every condition), in data units (``control``: the
    control cells' mean, when the caller has it already)."""
    names = {g: i for i, g in enumerate(data.gene_names)}
    keep = None if conditions is None else set(conditions)
    control = data.control_cells().mean(0) if control is None else control
    pairs = []
    for cond, ivs in data.interventions.items():
        if cond == data.control or (keep is not None and cond not in keep):
            continue
        if len(ivs) != 1 or ivs[0].kind != "knockout" or ivs[0].gene not in names:
            continue
        rows = data.cells_of(cond)
        if len(rows) == 0:
            continue
        j = names[ivs[0].gene]
        pairs.append((ivs[0].gene, float(control[j]), float(data.X[rows, j].mean())))
    return pairs


def knockout_level(data, conditions=None) -> float:
    """The fraction of its control level that a knockout leaves of its target's measured level, in
    ``[0, 1]``: the sum of the knocked-out targets' levels over the sum of their control levels
    (a ratio of sums, so that lowly expressed targets, whose ratios are noise, weigh little).

    0.0 when the training conditions hold no single knockout of a measured gene that is expressed
    in the control cells (nothing measured: the transcript is taken as removed, the simulators'
    reading), and when the fraction is below :data:`MIN_LEVEL`.
    """
    control = data.control_cells().mean(0)
    pairs = knockout_pairs(data, conditions, control=control)
    if not pairs:
        return 0.0
    floor = MIN_CONTROL_LEVEL * max(float(np.mean(np.abs(control))), 1e-12)
    ctrl = np.array([c for _, c, _ in pairs])
    ko = np.array([k for _, _, k in pairs])
    use = ctrl > floor
    if not use.any():
        return 0.0
    left = float(np.clip(ko[use].sum() / ctrl[use].sum(), 0.0, 1.0))
    return left if left >= MIN_LEVEL else 0.0


def describe_knockout_level(level: float) -> str:
    """One sentence on a model's resolved ``knockout_level``, for the command line and the Train page."""
    if level <= 0:
        return "a knockout takes its target's level to zero (the training knockouts left none of it)"
    return (f"a knockout removes its target's effect on other genes and leaves {100 * level:.0f} % of its own "
            "level, as the training knockouts did (a CRISPR knockout's transcript is only partly degraded)")
