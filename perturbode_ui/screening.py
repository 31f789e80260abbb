"""Screen page logic: which genes, which intervention, which readout, which models; the run itself.

The screen is :func:`perturbode_core.tools.insilico_screen.run_screen`; this module turns the
page's choices into its arguments (overexpression given as a fold change of expression is
converted to the model's strengths in one batched calibration) and picks the ensemble: the
current model, other kept models of the same data, and finished seed reruns of the Evaluate page.
"""

from __future__ import annotations

import numpy as np

from perturbode_core.data.interventions import Intervention
from perturbode_core.data.knockout_level import measured_knockdown
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.embedding import subsample
from perturbode_core.tools.insilico_screen import Readout, run_screen
from perturbode_core.tools.intervention_units import calibrate_overexpression

from .simulation import start_cells

#: Candidate sets the page offers.
GENE_SETS = ("perturbed genes of the screen", "every gene", "a gene list")
#: Interventions of a screen: label -> (type, what the number means, default).
SCREEN_KINDS = {
    "knockout": ("knockout", None, None),
    "knock-down": ("knockdown", "fraction of the control level removed (0-1)", 0.8),
    "overexpression": ("overexpression", "fold change of expression", 2.0),
}
#: The screen's own knock-down (no dose: the level the model's training knock-downs left, its
#: ``knockdown_level``), offered where the model measured one (:func:`screen_kinds`).
AS_TRAINED = "knock-down (as the screen's)"


def screen_kinds(model) -> list[str]:
    """The intervention labels to offer for ``model``: :data:`SCREEN_KINDS`, and :data:`AS_TRAINED`
    after the knock-down where the model measured what its screen's knock-downs leave."""
    labels = list(SCREEN_KINDS)
    if measured_knockdown(model.config):
        labels.insert(labels.index("knock-down") + 1, AS_TRAINED)
    return labels


def kind_of(label: str) -> tuple:
    """``(type, what the number means, default)`` of an offered label (:func:`screen_kinds`)."""
    return ("knockdown", None, None) if label == AS_TRAINED else SCREEN_KINDS[label]


def candidate_genes(state, which: str, gene_list: list[str] | None = None) -> list[str]:
    """The genes to perturb, in the model's order."""
    genes = list(state.model.gene_names)
    if which == "every gene":
        return genes
    if which == "a gene list":
        chosen = set(gene_list or [])
        if not chosen:
            raise PerturbODEError("The gene list is empty", where="screen", fix="Pick at least one gene")
        return [g for g in genes if g in chosen]
    perturbed = state.data.perturbed_genes()
    return [g for g in genes if g in perturbed]


def ensemble_members(state, extra_models: list[str] | None = None, *, seed_runs: bool = True) -> dict:
    """``{name: model}``: the current model, chosen kept models and finished seed reruns (same genes)."""
    members = {state.current_model: state.model}
    for name in extra_models or []:
        if name in state.models and name not in members and state.models[name].fits(state.data):
            members[name] = state.models[name].model
    runs = state.evaluation.seed_runs
    if seed_runs and runs is not None:
        for job in runs.jobs:
            if job.result is not None and list(job.result.model.gene_names) == list(state.model.gene_names):
                members[job.label] = job.result.model
    return members


def seed_run_count(state) -> int:
    """Finished seed reruns of the Evaluate page that a screen can use."""
    runs = state.evaluation.seed_runs
    return 0 if runs is None else sum(j.result is not None for j in runs.jobs)


def build_readout(state, kind: str, name: str, *, state_condition: str | None = None,
                  column: str | None = None, value: str | None = None) -> Readout:
    """A :class:`Readout`; a cell state is the mean of a measured condition's cells, or of the
    cells whose ``obs[column]`` equals ``value``."""
    if kind != "state":
        return Readout(kind, name)
    data = state.data
    if column and value is not None:
        idx = np.flatnonzero(data.obs[column].astype(str).to_numpy() == str(value))
        label = f"{column} = {value}"
    else:
        idx, label = data.cells_of(state_condition), f"the cells of {state_condition}"
    if len(idx) == 0:
        raise PerturbODEError(f"No cells in {label}", where="screen readout", fix="Choose another cell state")
    return Readout("state", label, profile=np.asarray(data.X[idx], float).mean(0))


def run(state, *, genes: list[str], kind_label: str, value: float | None, readout: Readout, direction: str,
        condition: str | None = None, keep_start_perturbation: bool = True, extra_models=None,
        seed_runs: bool = True):
    """Run the screen from the chosen start cells; returns a
    :class:`~perturbode_core.tools.insilico_screen.ScreenResult` (also kept as the page's latest)."""
    kind = kind_of(kind_label)[0]
    if kind_label == AS_TRAINED:
        value = None
    data, model = state.data, state.model
    idx, desc = start_cells(data, condition=condition)
    idx = idx[subsample(len(idx), state.settings.max_sim_cells, seed=0)]
    cells = data.X[idx]
    base = list(data.interventions.get(condition, [])) if condition and keep_start_perturbation else []
    if kind == "overexpression":
        # a fold change of expression, converted to each gene's strength in the current model
        cal = calibrate_overexpression(model, cells, genes, float(value), base=base)
        candidates = [[c.intervention] for c in cal]
        unreached = [c.gene for c in cal if not c.reached]
    else:
        candidates = [[Intervention(g, kind, value)] for g in genes]
        unreached = []
    members = ensemble_members(state, extra_models, seed_runs=seed_runs)
    result = run_screen(list(members.values()), cells, candidates, readout=readout, direction=direction,
                        base=base, model_names=list(members), start=desc)
    if unreached:
        result.notes.append(f"The model cannot raise {', '.join(unreached[:8])}{'…' if len(unreached) > 8 else ''} "
                            f"{value:g}-fold: the largest strength tried was used.")
    if kind == "overexpression" and len(members) > 1:
        result.notes.append("Overexpression strengths were calibrated on the current model and used for every model.")
    state.screens.last = result
    return result
