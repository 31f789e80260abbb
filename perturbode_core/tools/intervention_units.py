"""Intervention units a biologist reads: overexpression as a fold change of expression.

The model's overexpression is a rate: ``GENE:overexpression=v`` raises the gene's production by
``v`` times the strength the model learned from the screen's overexpressions (``delta``). What a
user means by "overexpress 2-fold" is an expression change. :func:`overexpression_for_fold`
finds the strength that gives it: the target's mean simulated level, alone from the given cells,
rises by ``log(fold)`` data units (a ``log2_fold_change`` of ``log2(fold)`` in the effect table,
the log2 fold change of expression when the data are log1p-normalised). All candidate strengths are
solved as one batch of conditions, then refined once between the two that bracket the goal.

The conversion lives here, outside the model: the encoding of interventions in the field is
unchanged, and the typed spec keeps the model's unit (the builder shows the spec it made).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perturbode_core.data.interventions import Intervention
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.simulate import FLOOR, combine_interventions

#: Strengths tried first (multiples of the screen's overexpression); the range a model is asked about.
STRENGTH_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
#: Start cells used for the calibration (a seeded subsample above this).
MAX_CELLS = 64


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


def _levels(model, cells, gene: str, strengths, base, horizon) -> np.ndarray:
    j = model.gene_index[gene]
    conds = [combine_interventions(base, [Intervention(gene, "overexpression", float(v))]) for v in strengths]
    end = model.simulate(cells, conds, [0.0, horizon])[-1]  # (C, n, p): one solve for every strength
    return np.maximum(end[..., j], FLOOR).mean(1)


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
    x0 = np.asarray(cells, dtype=np.float32)
    if len(x0) > MAX_CELLS:
        x0 = x0[np.sort(np.random.default_rng(seed).choice(len(x0), MAX_CELLS, replace=False))]
    T = float(horizon or model.config.horizon)
    base = list(base or [])
    grid = np.asarray(STRENGTH_GRID)
    levels = _levels(model, x0, gene, grid, base, T)
    start, goal = float(levels[0]), float(levels[0] + np.log(fold))
    if fold == 1:
        return FoldCalibration(gene, 1.0, 0.0, start, start, True)
    above = np.flatnonzero(levels >= goal)
    if len(above) == 0:
        return FoldCalibration(gene, float(fold), float(grid[-1]), start, float(levels[-1]), False)
    hi = int(above[0])
    # refine once between the bracketing strengths (one more batched solve), then interpolate
    fine = np.linspace(grid[hi - 1], grid[hi], 9)
    fine_levels = _levels(model, x0, gene, fine, base, T)
    k = int(np.flatnonzero(fine_levels >= goal)[0]) if (fine_levels >= goal).any() else len(fine) - 1
    if k == 0:
        strength = float(fine[0])
    else:
        lo_v, hi_v, lo_l, hi_l = fine[k - 1], fine[k], fine_levels[k - 1], fine_levels[k]
        strength = float(lo_v + (goal - lo_l) * (hi_v - lo_v) / max(hi_l - lo_l, 1e-12))
    level = float(_levels(model, x0, gene, [strength], base, T)[0])
    return FoldCalibration(gene, float(fold), strength, start, level, True)
