"""Simulate page logic: build a perturbation spec, check genes, choose start cells, run a scenario."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from perturbode_core.tools import simulate
from perturbode_core.errors import PerturbODEError
from perturbode_core.data.interventions import Intervention, check_genes, format_spec, parse_spec
from perturbode_core.tools.embedding import pca_project, subsample

from .state import Scenario

#: Builder choices: label -> (intervention type, what the number means, default). The units are
#: the typed spec's (knock-down: fraction removed; overexpression strength: the spec's value),
#: except "overexpression (fold change)", which is converted to a strength for the current model
#: (see :func:`builder_interventions`) and shown as the spec it makes.
KINDS = {
    "knockout": ("knockout", None, None),
    "knock-down": ("knockdown", "fraction of the control level removed (0-1)", 0.5),
    "overexpression (fold change)": ("overexpression", "fold change of expression (≥ 1)", 2.0),
    "overexpression (strength)": ("overexpression", "strength (× the screen's overexpression)", 1.0),
    "shift": ("shift", "added rate (standardised units per unit time)", 1.0),
}
#: The builder choice whose number is a fold change of expression.
FOLD = "overexpression (fold change)"


#: The Simulate page's help text of its quick-preview switch.
PREVIEW_HELP = (f"On: at most {simulate.PREVIEW_CELLS} start cells (fewer for very large models) and fast matrix products (bfloat16 where the "
                "processor has AMX or on a GPU): a fraction of a second even for thousands of genes, effects within "
                "about 0.5 % of the full solve's. Off: the full solve (every chosen start cell, float32).")


def default_value(model, gene: str, label: str) -> float | None:
    """The builder's starting number for ``gene`` under ``label``: a knock-down starts at the share
    the model's screen's knock-downs removed of this gene (its own, or the line at its control
    level), where the model measured it, else at the library's default; other kinds at :data:`KINDS`'."""
    default = KINDS[label][2]
    if label != "knock-down" or gene not in model.gene_index:
        return default
    if not simulate.knockdown_is_measured(model, gene):
        return default
    return round(1.0 - model.knockdown_share_left(gene), 2)


def builder_interventions(model, cells, choices: list[tuple[str, str, float | None]], *, base=None):
    """Interventions from the builder's rows ``(gene, kind label, value)`` and notes for the page.

    A fold change of expression becomes the overexpression strength that, alone, raises the gene
    that far from ``cells`` in ``model`` (one batched calibration for every such row).
    """
    from perturbode_core.tools.intervention_units import calibrate_overexpression

    ivs, notes = [], []
    folds = [(g, v) for g, label, v in choices if label == FOLD]
    cal = {}
    for fold in sorted({v for _, v in folds}):
        genes = [g for g, v in folds if v == fold]
        cal.update({c.gene: c for c in calibrate_overexpression(model, cells, genes, float(fold), base=base)})
    for gene, label, value in choices:
        kind = KINDS[label][0]
        if label == FOLD:
            c = cal[gene]
            ivs.append(c.intervention)
            notes.append(f"{gene} {c.fold:g}-fold = overexpression strength {c.strength:.3g}"
                         + ("" if c.reached else f" (the most the model allows: {c.achieved_fold:.3g}-fold)"))
        else:
            ivs.append(Intervention(gene, kind, None if KINDS[label][1] is None else float(value)))
    return ivs, notes


def parse_and_check(spec: str, gene_names) -> list[Intervention]:
    """Parse a spec and name every target the model does not have (never drops one silently)."""
    ivs = parse_spec(spec, where="perturbation")
    check_genes(ivs, gene_names, where=f"perturbation {spec!r}")
    return ivs


def subset_columns(data, max_values: int = 60) -> list[str]:
    """obs columns that make sensible start-cell subsets (few distinct values, not the perturbation)."""
    if data.obs is None:
        return []
    out = []
    for col in data.obs.columns:
        if col in (data.perturbation_key,):
            continue
        n = data.obs[col].nunique()
        if 1 < n <= max_values:
            out.append(str(col))
    return out


def start_cells(data, *, condition: str | None = None, column: str | None = None, values=None) -> tuple[np.ndarray, str]:
    """Indices of the start cells and a description: a condition's cells (default the control), optionally
    only those whose ``obs[column]`` is in ``values``. Time-course data start at the earliest time."""
    condition = condition or data.control
    idx = data.cells_of(condition)
    if data.times is not None and len(idx):
        idx = idx[data.times[idx] == data.times[idx].min()]
    desc = "all control cells" if condition == data.control else f"cells of {condition}"
    if column and values:
        mask = data.obs[column].astype(str).to_numpy()[idx]
        idx = idx[np.isin(mask, [str(v) for v in values])]
        desc += f" with {column} in {', '.join(map(str, values))}"
    if len(idx) == 0:
        raise PerturbODEError("No cells match this start population", where="start cells",
                              fix="Choose another condition or subset")
    return idx, desc


def measured_condition(data, ivs: list[Intervention]) -> str | None:
    """The measured condition with the same targets and types as ``ivs`` (None when not measured)."""
    want = sorted((iv.gene, iv.kind) for iv in ivs)
    for cond, have in data.interventions.items():
        if sorted((iv.gene, iv.kind) for iv in have) == want:
            return cond
    return None


def simulation_cells(state, *, condition: str | None = None, column: str | None = None, values=None):
    """``(cells, description)``: the start cells of a simulation (a seeded subsample)."""
    idx, desc = start_cells(state.data, condition=condition, column=column, values=values)
    idx = idx[subsample(len(idx), state.settings.max_sim_cells, seed=0)]
    return state.data.X[idx], desc


def kept_perturbation(data, condition: str | None) -> list[Intervention]:
    """The interventions of a start condition (empty for the control)."""
    return list(data.interventions.get(condition, [])) if condition and condition != data.control else []


def run_scenario(state, spec, *, name: str | None = None, condition: str | None = None,
                 column: str | None = None, values=None, horizon: float | None = None,
                 n_times: int = 21, pca: dict | None = None, keep_start_perturbation: bool = False,
                 preview: bool = False) -> Scenario:
    """Simulate ``spec`` (a spec string or a list of interventions) from the chosen start cells.

    With ``keep_start_perturbation`` the start condition's own perturbation stays on in both the
    reference and the perturbed simulation (a knockout's cells stay knocked out: a second knockout
    is a double knockout); otherwise the start cells relax as if it had been lifted.

    ``preview``: the core's quick preview (fewer start cells, fast products; see
    :func:`perturbode_core.tools.simulate.trajectories`); the start description says so.

    Returns a :class:`~perturbode_ui.state.Scenario` (effect table, mean/sd trajectories of the
    reference and perturbed simulations, clipped at zero, and PCA coordinates of the moving cells
    when ``pca`` is given).
    """
    model, data = state.model, state.data
    ivs = parse_and_check(spec, model.gene_names) if isinstance(spec, str) else list(spec)
    check_genes(ivs, model.gene_names, where="perturbation")
    cells, desc = simulation_cells(state, condition=condition, column=column, values=values)
    base = kept_perturbation(data, condition) if keep_start_perturbation else []
    combined = simulate.combine_interventions(base, ivs)
    t0 = time.perf_counter()
    traj = simulate.trajectories(model, cells, [base or "control", combined], horizon=horizon, n_times=n_times,
                                 preview=preview)
    if preview:
        cells = cells[traj["cells"]]
        desc += f" · quick preview: {len(cells)} cells, {traj['precision']}"
    # reuse the solve above (a 2,000-gene model spends seconds per solve)
    effects = simulate.effect_table(model, cells, combined, horizon=horizon, trajectories=traj)
    seconds = time.perf_counter() - t0
    states = np.maximum(traj["states"], simulate.FLOOR)  # (T, 2, n, p); expression is never below 0
    coords = pca_project(states, pca) if pca is not None else None
    canonical = format_spec(ivs)
    base_spec = format_spec(base)
    return Scenario(name=name or canonical, spec=canonical, start=desc + (f", {base_spec} kept on" if base else ""),
                    horizon=float(traj["times"][-1]), n_cells=len(cells), effects=effects, times=traj["times"],
                    mean=states.mean(2), sd=states.std(2), coords=coords,
                    measured=measured_condition(data, combined), seconds=seconds,
                    reference=base_spec or "control")


def comparison_table(scenarios: dict, names: list[str], value: str = "z_change") -> pd.DataFrame:
    """Effects of the named scenarios side by side (one column each)."""
    from perturbode_core.tools.simulate import compare_effects

    return compare_effects({n: scenarios[n].effects for n in names}, value=value)
