"""Splits of a dataset's conditions: held-out perturbations (never trained on) and the validation
conditions that pick the best epoch."""

from __future__ import annotations

import warnings

import numpy as np

from perturbode_core.errors import PerturbODEError, PerturbODEInfo


def _unmeasured_targets(data, condition, measured: set) -> list[str]:
    return [iv.gene for iv in data.interventions.get(condition, []) if iv.gene not in measured]


def split_conditions(data, holdout: float | int | list[str] = 0.2, *,
                     seed: int = 0) -> tuple[list[str], list[str]]:
    """Split perturbed conditions into train and held-out sets (the control is always in train).

    Parameters
    ----------
    holdout
        A fraction (0-1) or a number of conditions drawn at random (seeded), or a list of
        condition names. The draw leaves conditions whose targets are not measured genes in
        training (the fraction is of the others); a list may name them only when another training
        condition perturbs the same target.
    seed
        Seed of the draw.

    Returns
    -------
    (train, heldout) condition labels; train starts with the control.
    """
    perts = data.perturbations
    measured = set(data.gene_names)  # once: a genome-wide screen has thousands of conditions and genes
    if isinstance(holdout, (list, tuple)):
        unknown = [h for h in holdout if h not in set(perts)]
        if unknown:
            raise PerturbODEError(f"Held-out condition(s) not in the data: {', '.join(map(str, unknown))}",
                                  where=data.source, fix=f"Choose among: {', '.join(perts[:10])}...")
        held = list(holdout)
    else:
        if isinstance(holdout, float) and not 0 <= holdout < 1:
            raise PerturbODEError(f"Held-out fraction {holdout} is not in [0, 1)", where="holdout",
                                  fix="Give e.g. 0.2, or a number of conditions")
        # a target outside the measured genes is a latent regulator learned only from its own
        # perturbations: held out, nothing would say what it does, so such conditions stay in training
        drawable = [c for c in perts if not _unmeasured_targets(data, c, measured)]
        n = int(round(holdout * len(drawable))) if isinstance(holdout, float) else int(holdout)
        if n >= len(perts):
            raise PerturbODEError(f"Cannot hold out {n} of {len(perts)} perturbations", where="holdout",
                                  fix="Keep at least one perturbation for training")
        if holdout and len(drawable) < len(perts):
            warnings.warn(PerturbODEInfo(
                f"{len(perts) - len(drawable)} condition(s) whose targets are not among the measured genes stay in "
                "training (a model cannot predict an unmeasured regulator it never saw perturbed); the held-out "
                f"conditions are drawn from the other {len(drawable)}"), stacklevel=2)
            n = min(n, len(drawable))
        rng = np.random.default_rng(seed)
        held = sorted(rng.choice(drawable, size=n, replace=False).tolist()) if n else []
    train = [data.control] + [c for c in perts if c not in set(held)]
    seen = {iv.gene for c in train for iv in data.interventions.get(c, [])}
    unseen = sorted({g for c in held for g in _unmeasured_targets(data, c, measured) if g not in seen})
    if unseen:
        raise PerturbODEError(
            f"Held-out condition(s) target {', '.join(unseen[:5])}, which are not measured and not perturbed by any "
            "training condition: a model cannot predict what an unmeasured regulator does without seeing it "
            "perturbed", where=data.source,
            fix="Hold out conditions of measured genes, or keep a condition that perturbs them in training")
    return train, held


def validation_conditions(perturbations: list[str], fraction: float, *, seed: int = 0) -> list[str]:
    """A seeded draw of ``fraction`` of ``perturbations`` for validation (sorted).

    None when ``fraction`` is 0 or fewer than 3 perturbations exist; otherwise at least one and
    never all of them, so training always keeps a perturbation.
    """
    if fraction <= 0 or len(perturbations) < 3:
        return []
    n_val = max(1, min(int(round(fraction * len(perturbations))), len(perturbations) - 1))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(list(perturbations), size=n_val, replace=False).tolist())
