"""Is there a response that all perturbations of a screen share?

In many real screens every perturbed population moves the same way whatever its target
(delivery of the guide, selection, stress, batch): the "systematic variation" that makes the
mean-shift baseline hard to beat. In others (and in simulations on a known network) there is
none, and a term for it only absorbs the average of condition-specific effects. The test needs
no ground truth: leave each perturbed condition out, predict its mean shift by the average shift
of the others, and compare with predicting no shift. When the average of the others predicts a
condition's shift better than no shift does, the screen has a shared response.

Only the genes a condition does not target are compared: a target's own change is what the
intervention sets (a knockout takes its gene to zero), which no shared response explains. Counted
in, the targets' large own changes drowned the shared part of the others: on the accuracy
benchmark's myeloid, TF-atlas, SERGIO DS2 and bulk designs the test called no shared response
although the average of the others predicts the rest of each held-out condition (Pearson 0.37-0.44
on DS2 and the atlas), and a model with the offset predicts held-out conditions and reads the
network better there (benchmarks/results/accuracy.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Share of the no-shift error that the leave-one-out average must remove to call a response
#: shared: any (the average of the others predicts better than no shift at all).
SHARED_RESPONSE_GAIN = 0.0


def shared_response_gain(data, conditions=None, *, scale=None) -> float:
    """``1 - error(leave-one-out average shift) / error(no shift)`` over the perturbed conditions
    and the genes each does not target (mean shifts from the control, per gene divided by
    ``scale``; default the genes' sd over all cells; a gene's leave-one-out average is over the
    other conditions that do not target it). Positive when the other conditions' average predicts
    a condition's shift; NaN with fewer than three perturbed conditions."""
    conds = [c for c in (data.perturbations if conditions is None else conditions) if c != data.control]
    if len(conds) < 3:
        return float("nan")
    codes = pd.Categorical(data.labels, categories=[data.control] + conds).codes
    keep = codes >= 0
    sums = np.zeros((len(conds) + 1, data.n_genes))
    np.add.at(sums, codes[keep], np.asarray(data.X[keep], dtype=np.float64))
    n = np.bincount(codes[keep], minlength=len(conds) + 1).astype(float)
    if (n == 0).any():
        return float("nan")
    means = sums / n[:, None]
    if scale is None:
        scale = np.asarray(data.X, dtype=np.float64).std(0)
    scale = np.where(np.asarray(scale) > 1e-12, scale, 1.0)
    shifts = (means[1:] - means[0]) / scale
    off_target = np.ones_like(shifts, dtype=bool)  # conditions x genes: False where a condition targets the gene
    index = {str(g): i for i, g in enumerate(data.gene_names)}
    for k, c in enumerate(conds):
        for iv in data.interventions.get(c, []):
            if iv.gene in index:
                off_target[k, index[iv.gene]] = False
    shifts[~off_target] = 0.0
    # an off-target entry's leave-one-out average is over the other conditions not targeting
    # that gene: (their sum) / (their count), the count a per-gene vector (no conditions x genes
    # array of counts: genome-scale screens)
    others = np.maximum(off_target.sum(0) - 1, 1).astype(np.float64)
    loo = (shifts.sum(0)[None, :] - shifts) / others[None, :]
    no_shift = float((shifts ** 2).sum())
    loo -= shifts
    loo[~off_target] = 0.0
    return float(1.0 - (loo ** 2).sum() / no_shift) if no_shift > 0 else float("nan")


def has_shared_response(data, conditions=None, *, scale=None) -> bool:
    """Whether :func:`shared_response_gain` exceeds :data:`SHARED_RESPONSE_GAIN`."""
    gain = shared_response_gain(data, conditions, scale=scale)
    return bool(np.isfinite(gain) and gain > SHARED_RESPONSE_GAIN)


def describe_offset(mode: str) -> str:
    """One sentence on a model's perturbation offset (its resolved ``ModelConfig.perturbation_offset``),
    for the command line and the Train page."""
    if mode == "none":
        return "no shared response learned (the training conditions show none)"
    scope = "one per intervention type" if mode == "per_type" else "one for every type"
    return (f"a response shared by every perturbed condition is learned ({scope}): the other conditions' "
            "average shift predicts each condition's shift on the genes it does not target")
