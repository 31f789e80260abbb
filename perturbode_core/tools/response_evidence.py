"""The model's own simulated responses to the perturbations it was trained on, and how well they
reproduce the measured ones: the second half of the default network reading (see
:func:`perturbode_core.tools.grn.network_matrix`).

``G = A diag(alpha) B`` holds the model's *direct* effects. Where several genes change together
under the perturbations, the fit can split an effect between them in more than one way (a target
explained by a co-changing gene instead of by the perturbed regulator), so ``G`` alone can rank a
perturbed regulator's true targets low although the model reproduces their measured change. The
model's simulated response of every gene to each training perturbation of a regulator is its
*total* effect of that regulator, where an intervention identifies it. How far to trust it is read
off the data, not the truth: the median correlation (over the training perturbations) of the
simulated and the measured mean change, clipped at 0. A model that reproduces its training
responses (correlation near 1) has total effects worth ranking beside ``G``; one that does not
(near 0) contributes only ``G``.

Measured on the accuracy benchmark's 11 designs x 3 seeds (``benchmarks/edge_readings.py``): AUPR
0.545 on average against 0.527 for ``G`` alone and 0.512 for the knockout z-score, better than ``G``
in 24 of 33 runs; it costs the two designs where ``G`` is strongest (myeloid 0.753 -> 0.698, drug
activity changes 0.759 -> 0.706).

A model with a perturbation offset (``ModelConfig.perturbation_offset``: the response every
perturbed condition shares, whatever its target) has its responses simulated without it (that
response is no regulator's effect, and counted in it would add the same column to every
regulator's evidence) and its fit taken from its predictions, with it: a second solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: control cells the responses are simulated from, at most (a seeded random subset when there are more)
MAX_START_CELLS = 200
#: ... and at least, where the work budget below asks for fewer
MIN_START_CELLS = 32
#: start cells x perturbations x genes x modules solved for the evidence, at most: about half a
#: minute of float32 solves on 2 CPU cores (measured by benchmarks/network_reading.py; twice that
#: for a model with a perturbation offset, whose responses take a second solve). Every
#: design of the accuracy benchmark stays under it (200 cells); a genome-scale screen starts from
#: fewer cells (the responses are means over cells, paired with the same cells' control solve, so
#: they are smooth in the cell count), never fewer than MIN_START_CELLS.
WORK_BUDGET = 2e10


def start_cell_count(n_perturbations: int, n_genes: int, n_modules: int, n_control: int) -> int:
    """Control cells the evidence starts from: :data:`MAX_START_CELLS`, fewer where the solves
    would exceed :data:`WORK_BUDGET` (not below :data:`MIN_START_CELLS`), at most the control cells."""
    work = max(1, (n_perturbations + 1) * n_genes * n_modules)
    cells = int(min(MAX_START_CELLS, max(MIN_START_CELLS, WORK_BUDGET // work)))
    return max(1, min(cells, n_control))


@dataclass(frozen=True)
class ResponseEvidence:
    """The model's simulated responses to its training perturbations of single measured genes.

    Attributes
    ----------
    regulators
        Indices of the perturbed regulators into the model's ``target_names`` (its genes, then its
        unmeasured regulators), one per column of ``response``.
    response
        genes x regulators, float32: the mean |simulated change| of each gene (control-sd units)
        under the perturbations of that regulator (averaged over its perturbations: a knockout and a
        knock-down of one gene are one column); 0 on a measured regulator itself.
    fit
        Median over the perturbations of the correlation (across the other genes) of simulated and
        measured mean change, clipped at 0: how far the responses are to be trusted (the model's
        predictions, with its perturbation offset where it has one).
    n_perturbations
        Single-gene training perturbations simulated.
    """

    regulators: np.ndarray
    response: np.ndarray
    fit: float
    n_perturbations: int

    def dense(self, n_genes: int, n_latent: int = 0) -> np.ndarray:
        """The responses as a genes x (genes + unmeasured regulators) matrix (``R[i, j]`` =
        response of gene i to regulator j, the sources in the order of ``target_names``; 0 in the
        columns of regulators no training perturbation touched)."""
        R = np.zeros((n_genes, n_genes + n_latent), dtype=np.float64)
        keep = self.regulators < n_genes + n_latent
        R[:, self.regulators[keep]] = self.response[:, keep]
        return R

    def to_bundle(self) -> dict:
        """Plain tensors and numbers for a checkpoint (loads with ``weights_only=True``)."""
        import torch

        return {"regulators": torch.as_tensor(np.asarray(self.regulators, dtype=np.int64)),
                "response": torch.as_tensor(np.asarray(self.response, dtype=np.float32)),
                "fit": float(self.fit), "n_perturbations": int(self.n_perturbations)}

    @classmethod
    def from_bundle(cls, saved: dict, n_genes: int, n_latent: int = 0) -> "ResponseEvidence | None":
        """The evidence of a checkpoint, or None when it is absent or does not fit a model of
        ``n_genes`` genes and ``n_latent`` unmeasured regulators."""
        try:
            regulators = np.asarray(saved["regulators"], dtype=np.int64)
            response = np.asarray(saved["response"], dtype=np.float32)
            fit = float(saved["fit"])
        except (KeyError, TypeError, ValueError):
            return None
        if response.shape != (n_genes, len(regulators)) or (len(regulators) and (
                regulators.min() < 0 or regulators.max() >= n_genes + n_latent)):
            return None
        if not np.isfinite(response).all() or not np.isfinite(fit):
            return None
        return cls(regulators=regulators, response=response, fit=min(max(fit, 0.0), 1.0),
                   n_perturbations=int(saved.get("n_perturbations", len(regulators))))


def response_evidence(model, data, conditions=None, *, max_cells: int | None = None) -> ResponseEvidence | None:
    """Simulate every training perturbation of a single gene (measured, or one of the model's
    unmeasured regulators) from the control cells and compare the simulated with the measured
    mean change.

    Parameters
    ----------
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE` (on the CPU or its device).
    data
        The :class:`~perturbode_core.data.dataset.PerturbationData` it was trained on.
    conditions
        The conditions it was given (default: all); others are not looked at.
    max_cells
        Control cells to start from (a seeded random subset when there are more); default
        :func:`start_cell_count` (200, fewer for genome-scale screens).

    Returns
    -------
    :class:`ResponseEvidence`, or None when no condition perturbs a single gene the model knows
    (then the network is ``G`` alone).
    """
    import torch

    from perturbode_core.tools.simulate import BATCH_VALUES, end_states

    conditions = list(data.conditions if conditions is None else conditions)
    p = data.n_genes
    # sources in the order of the model's target_names: its genes, then its unmeasured regulators
    index = {**model.gene_index, **{g: p + i for g, i in model.latent_index.items()}}
    singles = [c for c in conditions if c != data.control and len(data.interventions.get(c, [])) == 1
               and data.interventions[c][0].gene in index]
    if not singles:
        return None
    ctrl = data.X[data.cells_of(data.control)].astype(np.float32)
    control_mean = ctrl.mean(0)
    if max_cells is None:
        max_cells = start_cell_count(len(singles), data.n_genes, model.n_modules, len(ctrl))
    if len(ctrl) > max_cells:
        start = ctrl[np.random.default_rng(0).choice(len(ctrl), max_cells, replace=False)]
    else:
        start = ctrl
    perturbations = ["control"] + [data.interventions[c] for c in singles]
    # only each condition's mean end state is kept: a genome-wide screen's end states
    # (conditions x cells x genes) would not fit in memory, one batch of them does
    per = max(1, BATCH_VALUES // max(1, len(start) * data.n_genes))

    def mean_ends():
        with torch.no_grad():
            return np.concatenate([end_states(model, start, perturbations[i:i + per]).mean(1)
                                   for i in range(0, len(perturbations), per)])

    # the fit is the model's, as it predicts (with its offset); the responses are the regulators'
    # own (without it: the offset is the same for every regulator). One solve without an offset.
    predicted = mean_ends()
    if model.has_offset:
        with model.without_offset():
            means = mean_ends()
    else:
        means = predicted
    base = means[0]
    # a single control profile (bulk screens) has no spread: changes stay in data units there
    sd = (ctrl.std(0) if len(ctrl) > 1 else np.ones(data.n_genes, dtype=np.float32)) + 1e-6
    columns: dict[int, list[np.ndarray]] = {}
    fits = []
    for k, c in enumerate(singles):
        j = index[data.interventions[c][0].gene]
        simulated = (means[k + 1] - base) / sd
        as_predicted = (predicted[k + 1] - predicted[0]) / sd  # the model as it predicts (with its offset)
        observed = (data.X[data.cells_of(c)].mean(0) - control_mean) / sd
        others = np.arange(p) != j
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(as_predicted[others], observed[others])[0, 1]
        fits.append(max(0.0, float(np.nan_to_num(r))))
        columns.setdefault(j, []).append(np.abs(simulated))
    regulators = np.array(sorted(columns), dtype=np.int64)
    response = np.stack([np.mean(columns[j], axis=0) for j in regulators], axis=1).astype(np.float32)
    measured = regulators < p
    response[regulators[measured], np.flatnonzero(measured)] = 0.0
    return ResponseEvidence(regulators=regulators, response=response, fit=float(np.median(fits)),
                            n_perturbations=len(singles))

