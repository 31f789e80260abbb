"""In-silico screens: simulate many perturbations at once and rank them by their effect on a readout.

A screen answers "which perturbation moves X the most?" (CellOracle's perturbation scores, a
GEARS-style combination screen): every candidate (by default a single perturbation of every gene)
is simulated from the same start cells in a few batched solves of the model's ``simulate`` (the
conditions are one batch dimension, so 41 perturbations cost one solve, not 41), and each is
scored by how much it changes a readout against the unperturbed simulation of the same cells:

``gene``
    the mean level of one gene (data units; ``z_effect`` in units of the gene's spread);
``module``
    the mean activity ``alpha_k * sigma(B z + b)_k`` of one of the model's modules;
``state``
    how far the cells move towards a cell state (a target profile, e.g. a measured condition's or a
    cell type's mean): the mean change projected on the direction from the start to the state, in
    standardised units, so 1 means "reaches the state" and 0 "does not move towards it".

With several models (a seed ensemble of the same settings) every model screens the same
candidates and the table gives the mean effect, its spread over models and the share of models
that agree on its sign, so a ranking is trusted only as far as retraining keeps it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perturbode_core.data.interventions import DEFAULT_VALUES, Intervention, format_spec
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.tools.simulate import BATCH_VALUES, FLOOR, as_interventions, combine_interventions, end_states
from perturbode_core.tools.target_support import weakest_levels

__all__ = ["Readout", "ScreenResult", "candidate_perturbations", "run_screen", "READOUT_KINDS", "DIRECTIONS"]

#: What a screen can rank by.
READOUT_KINDS = ("gene", "module", "state")
#: How the table is sorted: strongest decrease, strongest increase, or largest change either way.
DIRECTIONS = ("decrease", "increase", "either")


@dataclass(frozen=True)
class Readout:
    """What a screen measures.

    Attributes
    ----------
    kind
        ``gene``, ``module`` or ``state`` (see the module docstring).
    name
        The gene, the module (``M3`` or ``3``) or a label of the state.
    profile
        For ``state``: the target profile in data units (one value per gene of the model).
    """

    kind: str
    name: str
    profile: np.ndarray | None = None

    def __post_init__(self):
        check_choice("readout", self.kind, READOUT_KINDS)
        if self.kind == "state" and self.profile is None:
            raise PerturbODEError("A cell-state readout needs the state's profile", where="screen readout",
                                  fix="Pass profile= the mean expression of the state (one value per gene)")

    @property
    def label(self) -> str:
        """In words, for titles and file names."""
        return {"gene": f"{self.name} expression", "module": f"activity of module {self.name}",
                "state": f"movement towards {self.name}"}[self.kind]

    def module_index(self, n_modules: int) -> int:
        """The module's column (``M3``, ``3``)."""
        text = str(self.name).strip()
        k = int(text[1:]) if text[:1].upper() == "M" and text[1:].isdigit() else int(text) if text.isdigit() else -1
        if not 0 <= k < n_modules:
            raise PerturbODEError(f"No module {self.name!r} in a model with {n_modules} modules",
                                  where="screen readout", fix=f"Give M0 ... M{n_modules - 1}")
        return k


@dataclass
class ScreenResult:
    """A ranked screen.

    ``table`` has one row per candidate, best first: ``rank``, ``perturbation`` (its spec),
    ``targets``, ``effect`` (mean over models), ``effect_sd`` (spread over models; NaN with one
    model), ``agreement`` (share of models whose effect has the mean's sign), ``z_effect`` (for a
    gene readout: the effect in units of the gene's spread), ``hits_readout`` (the candidate
    perturbs the readout gene itself, a trivial hit), ``support`` (whether the candidate's targets
    were perturbed in training, :mod:`~perturbode_core.tools.target_support`: the weakest target's
    level; a candidate never perturbed ranks on inferred effects), and one ``effect_<model>``
    column per model.
    """

    table: pd.DataFrame
    readout: Readout
    direction: str
    baseline: float              # the readout without any candidate (mean over models)
    n_cells: int
    n_models: int
    seconds: float
    start: str = ""
    base_perturbation: str = ""  # kept on every simulation (e.g. the start condition's own perturbation)
    notes: list = field(default_factory=list)  # caveats to show beside the table

    @property
    def title(self) -> str:
        models = f", {self.n_models} models" if self.n_models > 1 else ""
        return f"In-silico screen: {len(self.table)} perturbations ranked by {self.readout.label}{models}"


def candidate_perturbations(gene_names, *, genes=None, kind: str = "knockout", value: float | None = None) -> list[str]:
    """Specs of single perturbations of ``genes`` (default every gene), all of one ``kind``."""
    genes = list(gene_names if genes is None else genes)
    known = set(map(str, gene_names))
    missing = [g for g in genes if str(g) not in known]
    if missing:
        raise PerturbODEError(f"Gene(s) not in the model: {', '.join(map(str, missing[:10]))}",
                              where="screen gene list", fix="Use the model's gene names (var_names)")
    if kind not in DEFAULT_VALUES:
        raise PerturbODEError(f"Unknown intervention type {kind!r}", where="screen",
                              fix=f"Use one of {', '.join(DEFAULT_VALUES)}")
    return [Intervention(str(g), kind, value).to_spec() for g in dict.fromkeys(genes)]


def _readout_values(model, states: np.ndarray, readout: Readout) -> np.ndarray:
    """The readout of every condition, (C,), from end states (C, n, p) in data units."""
    if readout.kind == "gene":
        return states[..., model.gene_index[readout.name]].mean(1)
    if readout.kind == "module":
        import torch

        k = readout.module_index(model.n_modules)
        with torch.no_grad():
            z = model.standardize(states)
            h = model._sigma(z @ model.B[k] + model.b[k]) * model.alpha[k]
        return h.mean(1).cpu().numpy()
    raise AssertionError(readout.kind)  # states are scored in _state_scores


def _state_scores(model, base: np.ndarray, states: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Share of the way from the baseline's mean to ``profile`` each condition's mean moves (z units)."""
    scale = model.scale.cpu().numpy()
    start = base.mean(0) / scale
    goal = np.asarray(profile, float) / scale - start
    norm2 = float(goal @ goal)
    if norm2 <= 1e-12:
        raise PerturbODEError("The target state equals the start cells' state", where="screen readout",
                              fix="Choose a state that differs from the start cells")
    return (states.mean(1) / scale - start) @ goal / norm2


def _screen_one(model, cells, ivs, base, readout, horizon, floor, batch_values) -> tuple[float, np.ndarray]:
    """(baseline readout, readout change of each candidate) for one model."""
    states = end_states(model, cells, [base] + ivs, horizon=horizon, batch_values=batch_values)
    if floor is not None:
        states = np.maximum(states, floor)  # expression cannot go below the floor (see simulate.FLOOR)
    if readout.kind == "state":
        values = _state_scores(model, states[0], states, readout.profile)
        return 0.0, values[1:]
    values = _readout_values(model, states, readout)
    return float(values[0]), values[1:] - values[0]


def run_screen(models, cells, perturbations=None, *, readout: Readout, direction: str = "either",
               base=None, horizon: float | None = None, floor: float | None = FLOOR,
               model_names=None, start: str = "", batch_values: int = BATCH_VALUES) -> ScreenResult:
    """Simulate every candidate perturbation and rank them by their effect on ``readout``.

    Parameters
    ----------
    models
        A trained :class:`~perturbode_core.model.field.PerturbODE`, or several of the same genes (a
        seed ensemble: the table then gives mean, spread and sign agreement over models).
    cells
        Start cells, cells x genes in data units (e.g. a subsample of the control cells).
    perturbations
        Candidate specs or intervention lists (default: a knockout of every gene).
    readout
        A :class:`Readout`.
    direction
        ``decrease`` (most negative effect first), ``increase`` or ``either`` (largest |effect|).
    base
        A perturbation kept on in every simulation, the baseline included (e.g. the start
        condition's own knockout when starting from its cells); candidates override it gene by gene.
    horizon
        Integration time (default: each model's horizon).
    floor
        Expression is clipped at this level before scoring (None: not clipped).
    model_names
        Labels of the models for the per-model columns (default ``model1``, ``model2``, ...).
    start
        A description of the start cells, kept with the result.
    batch_values
        Conditions x cells x genes solved at once (memory bound); more candidates are batched.

    Returns
    -------
    ScreenResult
    """
    t0 = time.perf_counter()
    check_choice("direction", direction, DIRECTIONS)
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise PerturbODEError("No model to screen with", where="screen", fix="Train or load a model first")
    genes = list(models[0].gene_names)
    for m in models[1:]:
        if list(m.gene_names) != genes:
            raise PerturbODEError("The models of a screen ensemble have different genes", where="screen",
                                  fix="Screen with models trained on the same data")
    if readout.kind == "gene" and readout.name not in set(genes):
        raise PerturbODEError(f"Readout gene {readout.name!r} is not in the model", where="screen readout",
                              fix="Choose one of the model's genes")
    cells = np.asarray(cells, dtype=np.float32)
    if cells.ndim != 2 or cells.shape[1] != len(genes) or len(cells) == 0:
        raise PerturbODEError(f"Start cells have shape {cells.shape}; the model has {len(genes)} genes",
                              where="screen start cells", fix="Pass cells x genes in the model's gene order")
    specs = candidate_perturbations(genes) if perturbations is None else list(perturbations)
    if not specs:
        raise PerturbODEError("No perturbations to screen", where="screen", fix="Give at least one gene")
    base_ivs = as_interventions(base, genes)
    cand = [as_interventions(p, genes) for p in specs]
    ivs = [combine_interventions(base_ivs, c) for c in cand]
    names = list(model_names) if model_names is not None else [f"model{i + 1}" for i in range(len(models))]
    baselines, effects = [], []
    for m in models:
        b, e = _screen_one(m, cells, ivs, base_ivs, readout, float(horizon or m.config.horizon), floor, batch_values)
        baselines.append(b)
        effects.append(e)
    E = np.vstack(effects)  # (models, candidates)
    mean = E.mean(0)
    table = pd.DataFrame({
        "perturbation": [format_spec(c) for c in cand],
        "targets": ["+".join(iv.gene for iv in c) for c in cand],
        "effect": mean,
        "effect_sd": E.std(0, ddof=1) if len(models) > 1 else np.full(len(cand), np.nan),
        "agreement": (np.sign(E) == np.sign(mean)[None, :]).mean(0),
    })
    if readout.kind == "gene":
        table["z_effect"] = mean / float(models[0].scale[models[0].gene_index[readout.name]])
    table["hits_readout"] = [readout.kind == "gene" and any(iv.gene == readout.name for iv in c) for c in cand]
    table["support"] = weakest_levels(models[0], cand)
    for name, row in zip(names, E):
        table[f"effect_{name}"] = row
    key = {"decrease": table["effect"], "increase": -table["effect"], "either": -table["effect"].abs()}[direction]
    table = table.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return ScreenResult(table=table, readout=readout, direction=direction, baseline=float(np.mean(baselines)),
                        n_cells=len(cells), n_models=len(models), seconds=time.perf_counter() - t0, start=start,
                        base_perturbation=format_spec(base_ivs))
