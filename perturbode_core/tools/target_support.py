"""How much the training screen tells the model about a perturbation's targets.

A regulator's effects on other genes are measured where the training screen perturbed it; for any
other gene they are inferred, from the training conditions that happened to move it and from the
cells' own variation. On the accuracy benchmark's held-out perturbations
(``python benchmarks/target_support.py``, benchmarks/results/target_support.md; 105 conditions,
11 designs x 3 seeds) targets perturbed in training in another way (a knockout held out, its
overexpression trained) were predicted with a Pearson of the change of 0.85, targets never
perturbed with 0.63, whether or not a training perturbation had moved them by a control sd (0.63
either way: how far a gene varied does not tell how well its effects are inferred, so no threshold
on it is used). The worst case: a held-out inhibition of a root protein that nothing in training
moves (``drugs``, PIP3), predicted as almost no change (Pearson -0.48).

The model keeps what is needed to say so: which regulators its training perturbed and its
simulated response of every gene to each of them
(:class:`~perturbode_core.tools.response_evidence.ResponseEvidence`, in control-sd units).
:func:`target_support` reads, for each target, whether it was perturbed in training and, if not,
the largest change a training perturbation caused in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.simulate import as_interventions

PERTURBED, NOT_PERTURBED, UNKNOWN = "perturbed in training", "not perturbed in training", "unknown"
#: The levels from the least to the most support (a perturbation of several targets is as
#: supported as its weakest target)
LEVEL_ORDER = (UNKNOWN, NOT_PERTURBED, PERTURBED)


@dataclass(frozen=True)
class Support:
    """One target's support in the training screen.

    Attributes
    ----------
    gene
        The target.
    level
        :data:`PERTURBED`, :data:`NOT_PERTURBED` or :data:`UNKNOWN` (the model keeps no evidence:
        an older checkpoint, or data with combinations only).
    largest_change
        The largest |simulated mean change| of the gene under one training perturbation, in
        control-sd units (NaN when perturbed itself or unknown).
    under
        The training regulator whose perturbation moved it most ('' when none moved it at all).

    Only training perturbations of single genes count (the model's evidence simulates those): a
    gene perturbed in training only within combinations reads as not perturbed.
    """

    gene: str
    level: str
    largest_change: float
    under: str

    @property
    def weak(self) -> bool:
        """Whether this target's effects are inferred rather than measured."""
        return self.level == NOT_PERTURBED


def _support_reader(model):
    """``gene -> Support`` for ``model``: the evidence's lookups built once, for many targets."""
    evidence = getattr(model, "response_evidence", None)
    names = list(model.target_names)
    perturbed = set() if evidence is None else {names[int(i)] for i in evidence.regulators}

    def support_of(gene: str) -> Support:
        if evidence is None:
            return Support(gene, UNKNOWN, float("nan"), "")
        if gene in perturbed:
            return Support(gene, PERTURBED, float("nan"), "")
        if gene not in model.gene_index or evidence.response.shape[1] == 0:
            return Support(gene, NOT_PERTURBED, 0.0, "")
        row = np.asarray(evidence.response[model.gene_index[gene]], dtype=float)
        k = int(np.argmax(row))
        largest = float(row[k])
        return Support(gene, NOT_PERTURBED, largest, names[int(evidence.regulators[k])] if largest > 0 else "")

    return support_of


def target_support(model, perturbation) -> list[Support]:
    """The training support of each target of ``perturbation`` (a spec such as ``"GATA1+SPI1"`` or
    a list of :class:`~perturbode_core.data.interventions.Intervention`)."""
    support_of = _support_reader(model)
    return [support_of(str(iv.gene)) for iv in as_interventions(perturbation, model.target_names)]


def _least(support: list[Support]) -> Support:
    if not support:
        raise PerturbODEError("A perturbation without targets has no support", where="target support",
                              fix="Name at least one target")
    return min(support, key=lambda t: LEVEL_ORDER.index(t.level))


def weakest(model, perturbation) -> Support:
    """The least supported target of a perturbation (the support of a perturbation of several targets)."""
    return _least(target_support(model, perturbation))


def weakest_levels(model, perturbations) -> list[str]:
    """:func:`weakest`'s level for each of many perturbations (the lookups built once)."""
    support_of = _support_reader(model)
    return [_least([support_of(str(iv.gene)) for iv in as_interventions(p, model.target_names)]).level
            for p in perturbations]


def support_table(model, perturbation) -> pd.DataFrame:
    """:func:`target_support` as a table: ``gene, support, largest_change, under``."""
    rows = [{"gene": s.gene, "support": s.level, "largest_change": s.largest_change, "under": s.under}
            for s in target_support(model, perturbation)]
    return pd.DataFrame(rows, columns=["gene", "support", "largest_change", "under"])


def support_note(model, perturbation) -> str | None:
    """One sentence naming the targets the training screen did not perturb (None when there are
    none, or when the model keeps no evidence)."""
    weak = [t for t in target_support(model, perturbation) if t.weak]
    if not weak:
        return None
    one = len(weak) == 1
    parts = [f"{t.gene} (moved at most {t.largest_change:.2f} control sd by a training perturbation, of {t.under})"
             if t.under else f"{t.gene} (never moved by a training perturbation)" for t in weak]
    return (f"{'; '.join(parts)} {'was' if one else 'were'} not perturbed in training: the model infers "
            f"{'its' if one else 'their'} effects on other genes from how {'it' if one else 'they'} varied "
            "in the screen rather than from a measured perturbation, and such predictions were less accurate on "
            "held-out data (benchmarks/results/target_support.md). Read the effects beyond the "
            f"target{'' if one else 's'} as a hypothesis.")
