"""Intervention units a biologist reads: overexpression as a fold change of expression.

The model's overexpression is a rate: ``GENE:overexpression=v`` raises the gene's production by
``v`` times the strength the model learned from the screen's overexpressions (``delta``). What a
user means by "overexpress 2-fold" is an expression change. :func:`overexpression_for_fold`
finds the strength that gives it: the target's mean simulated level, alone from the given cells,
rises by ``log(fold)`` data units (a ``log2_fold_change`` of ``log2(fold)`` in the effect table,
the log2 fold change of expression when the data are log1p-normalised). All candidate strengths are
solved as one batch of conditions (every gene of a screen at once), then refined by a few false-
position steps between the two that bracket the goal (one small batched solve each).

The conversion lives here, outside the model: the encoding of interventions in the field is
unchanged, and the typed spec keeps the model's unit (the builder shows the spec it made).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perturbode_core.data.interventions import Intervention
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.simulate import FLOOR, combine_interventions, end_states

#: Strengths tried first (multiples of the screen's overexpression); the range a model is asked about.
STRENGTH_GRID = (0.0, 0.125, 0.5, 2.0, 8.0, 64.0)
#: False-position steps at most (each one small batched solve of every gene still off by > 1%).
SECANT_STEPS = 5
#: Start cells used for the calibration (a seeded subsample above this): a mean level needs few.
MAX_CELLS = 48


@dataclass(frozen=True)
class FoldCalibration:
    """The strength that overexpresses ``gene`` to ``fold`` and what it reaches."""

    gene: str
    fold: float
    strength: float          # the model's overexpression value (``GENE:overexpression=<strength>``)
    start_level: float       # the gene's mean level without the overexpression (data units)
    level: float             # its mean level with it
    reached: bool            # False when even the largest strength tried stays below the fold

    @property
    def achieved_fold(self) -> float:
        """The fold change of expression reached (``exp`` of the level change)."""
        return float(np.exp(self.level - self.start_level))

    @property
    def intervention(self) -> Intervention:
        return Intervention(self.gene, "overexpression", round(self.strength, 4))


def _levels(model, cells, pairs, base, horizon) -> np.ndarray:
    """Mean level of each (gene, strength) pair's gene under that overexpression: one batched solve."""
    conds = [combine_interventions(base, [Intervention(g, "overexpression", float(v))]) for g, v in pairs]
    end = end_states(model, cells, conds, horizon=horizon)  # (C, n, p), in batches that fit in memory
    cols = np.array([model.gene_index[g] for g, _ in pairs])
    return np.maximum(end[np.arange(len(pairs)), :, cols], FLOOR).mean(1)


def calibrate_overexpression(model, cells, genes, fold: float, *, base=None, horizon: float | None = None,
                             seed: int = 0) -> list[FoldCalibration]:
    """:func:`overexpression_for_fold` of several genes at once (three batched solves in all).

    Each gene is calibrated alone (the others not overexpressed), from the same cells.
    """
    genes = [str(g) for g in genes]
    missing = [g for g in genes if g not in model.gene_index]
    if missing:
        raise PerturbODEError(f"Gene(s) not in the model: {', '.join(missing[:5])}", where="overexpression",
                              fix="Use the model's gene names")
    if not np.isfinite(fold) or fold < 1:
        raise PerturbODEError(f"Overexpression fold {fold:g} is below 1", where="overexpression",
                              fix="Give a fold change >= 1 (2 = twice the expression); use knock-down to lower a gene")
    x0 = np.asarray(cells, dtype=np.float32)
    if len(x0) > MAX_CELLS:
        x0 = x0[np.sort(np.random.default_rng(seed).choice(len(x0), MAX_CELLS, replace=False))]
    T = float(horizon or model.config.horizon)
    base = list(base or [])
    grid = np.asarray(STRENGTH_GRID)
    levels = _levels(model, x0, [(g, v) for g in genes for v in grid], base, T).reshape(len(genes), len(grid))
    starts = levels[:, 0]
    goals = starts + np.log(fold)
    out: list[FoldCalibration | None] = [None] * len(genes)
    bracket = {}  # gene index -> (lower strength, its level, upper strength, its level)
    for i, g in enumerate(genes):
        above = np.flatnonzero(levels[i] >= goals[i])
        if fold == 1:
            out[i] = FoldCalibration(g, 1.0, 0.0, float(starts[i]), float(starts[i]), True)
        elif len(above) == 0:
            out[i] = FoldCalibration(g, float(fold), float(grid[-1]), float(starts[i]), float(levels[i, -1]), False)
        else:
            hi = int(above[0])
            bracket[i] = (grid[hi - 1], levels[i, hi - 1], grid[hi], levels[i, hi])
    # false-position steps inside each bracket, with the Illinois halving so that a curved level
    # does not pin one end; every gene in the same batched solve, until within 1% of the fold
    side = {i: 0 for i in bracket}
    for _ in range(SECANT_STEPS):
        if not bracket:
            break
        guess = {i: float(lo + (goals[i] - llo) * (hi - lo) / max(lhi - llo, 1e-12))
                 for i, (lo, llo, hi, lhi) in bracket.items()}
        reached = _levels(model, x0, [(genes[i], v) for i, v in guess.items()], base, T)
        for (i, v), level in zip(guess.items(), reached):
            lo, llo, hi, lhi = bracket[i]
            out[i] = FoldCalibration(genes[i], float(fold), v, float(starts[i]), float(level), True)
            if abs(level - goals[i]) < 0.01:
                del bracket[i]
                continue
            if level < goals[i]:
                bracket[i] = (v, level, hi, lhi if side[i] != -1 else goals[i] + (lhi - goals[i]) / 2)
                side[i] = -1
            else:
                bracket[i] = (lo, llo if side[i] != 1 else goals[i] - (goals[i] - llo) / 2, v, level)
                side[i] = 1
    return out


def overexpression_for_fold(model, cells, gene: str, fold: float, *, base=None,
                            horizon: float | None = None, seed: int = 0) -> FoldCalibration:
    """The overexpression strength that raises ``gene``'s mean level ``fold``-fold.

    Parameters
    ----------
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE`.
    cells
        Start cells (data units), e.g. the control cells; a seeded subsample of :data:`MAX_CELLS`.
    gene
        The overexpressed gene.
    fold
        Fold change of expression (>= 1): the level rises by ``log(fold)`` data units.
    base
        Interventions kept on meanwhile (e.g. the start condition's own perturbation).
    horizon
        Integration time (default: the model's).

    Returns
    -------
    FoldCalibration
        ``reached`` is False when the model cannot raise the gene that far with the strengths of
        :data:`STRENGTH_GRID` (the largest is returned; say so to the user).
    """
    if gene not in model.gene_index:
        raise PerturbODEError(f"Gene {gene!r} is not in the model", where="overexpression",
                              fix="Use the model's gene names")
    if not np.isfinite(fold) or fold < 1:
        raise PerturbODEError(f"Overexpression fold {fold:g} of {gene} is below 1", where="overexpression",
                              fix="Give a fold change >= 1 (2 = twice the expression); use knock-down to lower a gene")
    return calibrate_overexpression(model, cells, [gene], fold, base=base, horizon=horizon, seed=seed)[0]
