"""Simulate page logic: build a perturbation spec, check genes, choose start cells, run a scenario."""

from __future__ import annotations

import inspect
import time

import numpy as np
import pandas as pd

from perturbode_core.tools import simulate
from perturbode_core.errors import PerturbODEError
from perturbode_core.data.interventions import Intervention, check_genes, format_spec, parse_spec
from perturbode_core.tools.embedding import pca_project, subsample

from .state import Scenario

#: Builder choices: label -> (intervention type, value field label, default, convert UI value to core value)
KINDS = {
    "knockout": ("knockout", None, None, None),
    "knock-down %": ("knockdown", "% removed", 50.0, lambda v: v / 100.0),
    "overexpression fold": ("overexpression", "fold", 2.0, float),
    "shift": ("shift", "rate", 1.0, float),
}


#: The Simulate page's help text of its quick-preview switch.
PREVIEW_HELP = (f"On: at most {simulate.PREVIEW_CELLS} start cells and fast matrix products (bfloat16 where the "
                "processor has AMX or on a GPU): a fraction of a second even for thousands of genes, effects within "
                "about 0.5 % of the full solve's. Off: the full solve (every chosen start cell, float32).")


def builder_spec(choices: list[tuple[str, str, float | None]]) -> str:
    """A spec from the builder's rows ``(gene, kind label, UI value)``."""
    ivs = []
    for gene, label, value in choices:
        kind, _, _, convert = KINDS[label]
        ivs.append(Intervention(gene, kind, None if convert is None else convert(value)))
    return format_spec(ivs)


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


def run_scenario(state, spec: str, *, name: str | None = None, condition: str | None = None,
                 column: str | None = None, values=None, horizon: float | None = None,
                 n_times: int = 21, pca: dict | None = None, preview: bool = False) -> Scenario:
    """Simulate ``spec`` from the chosen start cells with the session's model.

    ``preview``: the core's quick preview (fewer start cells, fast products; see
    :func:`perturbode_core.tools.simulate.trajectories`); the start description says so.

    Returns a :class:`~perturbode_ui.state.Scenario` (effect table, mean/sd trajectories of the
    control and perturbed simulations, and PCA coordinates of the moving cells when ``pca`` is given).
    """
    model, data = state.model, state.data
    ivs = parse_and_check(spec, model.gene_names)
    idx, desc = start_cells(data, condition=condition, column=column, values=values)
    idx = idx[subsample(len(idx), state.settings.max_sim_cells, seed=0)]
    cells = data.X[idx]
    t0 = time.perf_counter()
    traj = simulate.trajectories(model, cells, ["control", ivs], horizon=horizon, n_times=n_times, preview=preview)
    if preview:
        idx = idx[traj["cells"]]
        desc += f" · quick preview: {len(idx)} cells, {traj['precision']}"
    if "trajectories" in inspect.signature(simulate.effect_table).parameters:
        # reuse the solve above (a 2,000-gene model spends seconds per solve)
        effects = simulate.effect_table(model, cells, ivs, horizon=horizon, trajectories=traj)
    else:
        effects = simulate.effect_table(model, cells, ivs, horizon=horizon)
    seconds = time.perf_counter() - t0
    states = traj["states"]  # (T, 2, n, p)
    coords = pca_project(states, pca) if pca is not None else None
    canonical = format_spec(ivs)
    return Scenario(name=name or canonical, spec=canonical, start=desc,
                    horizon=float(traj["times"][-1]), n_cells=len(idx), effects=effects, times=traj["times"],
                    mean=states.mean(2), sd=states.std(2), coords=coords,
                    measured=measured_condition(data, ivs), seconds=seconds)


def comparison_table(scenarios: dict, names: list[str], value: str = "z_change") -> pd.DataFrame:
    """Effects of the named scenarios side by side (one column each)."""
    from perturbode_core.tools.simulate import compare_effects

    return compare_effects({n: scenarios[n].effects for n in names}, value=value)
