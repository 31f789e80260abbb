"""Stochastic simulation of perturbation screens on a known network (SERGIO in spirit).

Each cell follows the chemical Langevin equation

    dx_i = (P_i(x) - gamma_i x_i) dt + s * sqrt(P_i(x) + gamma_i x_i) dW_i,

with production ``P`` from :class:`~.kinetics.Kinetics` (SERGIO writes the two noise sources,
production and decay, separately; their sum is one Gaussian of summed variance, which halves the
random numbers drawn). Euler-Maruyama, all cells of all conditions at once, levels kept >= 0.

Interventions act on production and state from t = 0:
knockout (production 0, state held at 0), knockdown=f (production x (1 - f)), overexpression=fold
(adds (fold - 1) x the gene's maximal production), shift=v (adds v), clamp=level (state held),
activity=v (the gene's effect on its targets scaled by v); any combination joined by ``+``.

Cells start either from a progenitor state (the network's ``initial``, e.g. the common myeloid
progenitor of Krumsiek et al.) or from the control steady state after a noisy burn-in; every
condition starts from the same starting population, so perturbed cells are compared with control
cells of that population.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.data.interventions import Intervention, check_genes, parse_spec
from perturbode_core.datasets.kinetics import Kinetics
from perturbode_core.datasets.gene_network import GeneNetwork

SIMULATED_TYPES = ("knockout", "knockdown", "overexpression", "shift", "clamp", "activity")


@dataclass(frozen=True)
class TechnicalNoise:
    """Measurement noise that turns levels into UMI counts (SERGIO's technical noise, simplified).

    Attributes
    ----------
    library_size
        Mean total counts per cell (of an average control-like cell).
    library_sigma
        Log-normal spread of each cell's capture efficiency (library size effect).
    dropout_midpoint
        Percentile of log-levels at which a value has a 50 % chance of an extra dropout; None for
        no dropout beyond Poisson sampling.
    dropout_shape
        Steepness of the logistic dropout curve.
    target_sum
        Counts per cell after ``normalize_total`` (followed by ``log1p``).
    """

    library_size: float = 2000.0
    library_sigma: float = 0.3
    dropout_midpoint: float | None = None
    dropout_shape: float = 8.0
    target_sum: float = 1e4


def _as_interventions(cond, genes: list[str]) -> list[Intervention]:
    if isinstance(cond, Intervention):
        ivs = [cond]
    elif isinstance(cond, str):
        ivs = parse_spec(cond, where="simulated condition")
    else:
        ivs = list(cond)
    for iv in ivs:
        check_choice("simulated intervention type", iv.kind, SIMULATED_TYPES)
    check_genes(ivs, genes, where=f"simulated condition {ivs[0].gene if ivs else ''}")
    return ivs


def _labels(conds: list[list[Intervention]]) -> tuple[list[str], list[str]]:
    """Condition labels and intervention-type column, readable by :func:`perturbode_core.data.dataset.from_anndata`.

    When the whole screen uses one type, labels are bare gene names (``A``, ``A+B``) and the type
    sits in ``intervention_type``; otherwise knockouts stay bare and other types are written into
    the label (``Gata1:overexpression``) so that the same gene can be perturbed in two ways.
    """
    kinds = {iv.kind for ivs in conds for iv in ivs}
    plain = next(iter(kinds)) if len(kinds) == 1 else "knockout"
    labels, types = [], []
    for ivs in conds:
        parts = []
        for iv in ivs:
            if iv.kind == plain and iv.value is None:
                parts.append(iv.gene)
            else:
                parts.append(iv.gene + ":" + iv.kind + ("" if iv.value is None else f"={iv.value:g}"))
        labels.append("+".join(parts))
        own = {iv.kind for iv in ivs}
        types.append(own.pop() if len(own) == 1 else plain)
    if len(set(labels)) != len(labels):
        dup = pd.Index(labels)[pd.Index(labels).duplicated()].tolist()
        raise PerturbODEError(f"Condition(s) listed twice: {', '.join(dup)}", where="conditions",
                              fix="List each perturbation once")
    return labels, types


def default_conditions(network: GeneNetwork, kinds=("knockout",)) -> list[str]:
    """One single-gene condition per regulator of ``network`` and per type in ``kinds``."""
    out = []
    for kind in kinds:
        out += [f"{g}:{kind}" for g in network.regulators]
    return out


def simulate_screen(
    network: GeneNetwork,
    *,
    conditions=None,
    cells_per_condition: int = 100,
    cell_types: list[str] | None = None,
    time_points: list[float] | None = None,
    t_end: float | None = None,
    dt: float | None = None,
    intrinsic_noise: float = 0.1,
    technical_noise: bool | TechnicalNoise | None = True,
    start: str = "auto",
    initial_jitter: float = 0.05,
    overexpression_fold: float = 2.0,
    knockdown_fraction: float = 0.5,
    control_label: str = "control",
    seed: int = 0,
):
    """Simulate a single-cell perturbation screen on a known network.

    Parameters
    ----------
    network
        The ground-truth network with its kinetics.
    conditions
        Perturbations: specs such as ``"Gata1"`` (knockout), ``"Gata1:overexpression=3"``,
        ``"A:knockout+B:knockdown=0.7"``, or lists of :class:`~perturbode_core.data.interventions.Intervention`.
        Default: a knockout of every regulator. The control is always added first.
    cells_per_condition
        Cells sampled per condition (split evenly over cell types and time points).
    cell_types
        Cell types to simulate (rows of ``network.basal``); default all. Cells of a condition are
        dealt round-robin over them; ``obs["cell_type"]`` is written when there are several.
    time_points
        Sample cells along the path at these times after the intervention (``obs["time"]``);
        default: one steady-state snapshot at ``t_end``.
    t_end
        Length of the run after the intervention; default ``15 / min(decay)`` (steady state).
    dt
        Euler-Maruyama step; default ``0.1 / max(decay)`` (the deterministic fixed point of
        Euler is exact; the noise variance is biased by about ``gamma dt / 2``, 5 %).
    intrinsic_noise
        Scale ``s`` of the chemical Langevin noise (0 = deterministic ODE).
    technical_noise
        True (default :class:`TechnicalNoise`), a :class:`TechnicalNoise`, or False/None.
        With noise, ``layers["counts"]`` holds UMI counts and ``X`` their ``normalize_total`` +
        ``log1p``; without, ``X`` holds the simulated levels themselves.
    start
        ``"initial"`` (the network's progenitor state plus jitter), ``"steady"`` (the control
        steady state after a noisy burn-in) or ``"auto"`` (initial when the network has one).
    initial_jitter
        Standard deviation of the per-cell jitter around the progenitor state (level units).
    overexpression_fold
        Fold of overexpression targets that give no value.
    knockdown_fraction
        Fraction removed by knock-down targets that give no value.
    control_label
        Label of the control cells in ``obs["perturbation"]``.
    seed
        Seed of every random draw: the same seed gives identical data.

    Returns
    -------
    AnnData
        Cells x genes, with ``obs["perturbation"]``, ``obs["intervention_type"]`` (optional
        ``cell_type``, ``time``), the ground truth in ``uns["true_edges"]`` (source, target, sign)
        and the settings in ``uns["simulation"]``.
    """
    check_choice("start", start, ("auto", "initial", "steady"))
    if cells_per_condition < 1:
        raise PerturbODEError(f"cells_per_condition must be >= 1, not {cells_per_condition}",
                              where="cells_per_condition", fix="Give e.g. 100")
    genes = network.genes
    p = len(genes)
    rng = np.random.default_rng(seed)
    kin = Kinetics(network)
    decay = network.decay
    t_end = float(15.0 / decay.min() if t_end is None else t_end)
    dt = float(0.1 / decay.max() if dt is None else dt)
    if dt <= 0 or t_end <= 0:
        raise PerturbODEError("t_end and dt must be positive", where="simulate_screen", fix="Give e.g. dt=0.05")

    if conditions is None:
        conditions = default_conditions(network)
    conds = [_as_interventions(c, genes) for c in conditions]
    labels, types = _labels(conds)
    if control_label in labels:
        raise PerturbODEError(f"A condition is labelled like the control ({control_label!r})",
                              where="conditions", fix="Rename the control label")
    all_conds = [[]] + conds
    all_labels = [control_label] + labels
    all_types = ["control"] + types

    type_names = list(network.cell_types)
    cell_types, type_rows = _cell_type_rows(network, cell_types)
    times = sorted(float(t) for t in time_points) if time_points else [t_end]
    if times[0] < 0:
        raise PerturbODEError("Time points must be >= 0", where="time_points", fix="Give times after the intervention")
    t_end = max(t_end, times[-1]) if time_points else t_end

    # one starting population, shared by every condition (cell j of each condition starts alike)
    n = cells_per_condition
    cell_type_idx = type_rows[np.arange(n) % len(type_rows)]
    basal_pop = network.basal[cell_type_idx]
    use_initial, x0 = _start_population(network, kin, start, n, basal_pop, cell_type_idx, type_rows, t_end, dt,
                                        intrinsic_noise, initial_jitter, rng)

    n_cond = len(all_conds)
    iv = _intervention_arrays(all_conds, genes, n, network.max_production(), knockdown_fraction=knockdown_fraction,
                              overexpression_fold=overexpression_fold)
    # which time point each cell is read at
    per_cell_time = np.tile(np.arange(n) % len(times), n_cond)
    out = _run(np.tile(x0, (n_cond, 1)), np.tile(basal_pop, (n_cond, 1)), iv, kin, decay, per_cell_time,
               [int(round(t / dt)) for t in times], dt, intrinsic_noise, rng)

    obs = pd.DataFrame({
        "perturbation": np.repeat(all_labels, n),
        "intervention_type": np.repeat(all_types, n),
    })
    if len(cell_types) > 1:
        obs["cell_type"] = np.array(type_names, dtype=object)[np.tile(cell_type_idx, n_cond)]
    if time_points:
        obs["time"] = np.asarray(times)[per_cell_time]
    settings = {
        "network": network.name, "network_source": network.source, "seed": int(seed),
        "cells_per_condition": int(cells_per_condition), "t_end": t_end, "dt": dt,
        "intrinsic_noise": float(intrinsic_noise), "start": "initial" if use_initial else "steady",
        "overexpression_fold": float(overexpression_fold), "knockdown_fraction": float(knockdown_fraction),
        "control_label": control_label, "cell_types": list(cell_types),
    }
    return _screen_anndata(network, out, obs, settings, technical_noise, rng)


def _cell_type_rows(network: GeneNetwork, cell_types) -> tuple[list[str], np.ndarray]:
    """The cell types to simulate (default all) and their rows of ``network.basal``."""
    type_names = list(network.cell_types)
    if cell_types is None:
        cell_types = type_names
    unknown = [c for c in cell_types if c not in type_names]
    if unknown:
        raise PerturbODEError(f"Unknown cell type(s) {', '.join(map(str, unknown))}", where=network.name,
                              fix=f"Use some of: {', '.join(type_names)}")
    return list(cell_types), np.array([type_names.index(c) for c in cell_types])


def _start_population(network, kin, start, n, basal_pop, cell_type_idx, type_rows, t_end, dt, intrinsic_noise,
                      initial_jitter, rng) -> tuple[bool, np.ndarray]:
    """``(from the progenitor state?, n start cells)``: the network's progenitor state plus jitter,
    or the control steady state after a noisy burn-in."""
    use_initial = start == "initial" or (start == "auto" and network.initial is not None)
    if not use_initial:
        return False, _steady_start(kin, network, basal_pop, cell_type_idx, type_rows, t_end, dt, intrinsic_noise,
                                    rng)
    if network.initial is None:
        raise PerturbODEError(f"Network {network.name!r} has no progenitor (initial) state",
                              where="start='initial'", fix="Use start='steady'")
    return True, np.clip(network.initial + initial_jitter * rng.standard_normal((n, len(network.genes))), 0.0, None)


def _intervention_arrays(all_conds, genes, n, max_prod, *, knockdown_fraction, overexpression_fold) -> dict:
    """Per-cell arrays (rows: condition blocks of ``n`` cells) that apply each condition's
    interventions to the kinetics: production ``scale`` and ``add``, ``clamp`` masks and levels,
    and activity factors (None when no condition has one)."""
    N, p = len(all_conds) * n, len(genes)
    scale, add = np.ones((N, p)), np.zeros((N, p))
    clamp, clamp_val = np.zeros((N, p), dtype=bool), np.zeros((N, p))
    activity = None
    for c, ivs in enumerate(all_conds):
        rows = slice(c * n, (c + 1) * n)
        for iv in ivs:
            g = genes.index(iv.gene)
            if iv.kind == "knockout":
                scale[rows, g] = 0.0
                clamp[rows, g], clamp_val[rows, g] = True, 0.0
            elif iv.kind == "knockdown":
                f = knockdown_fraction if iv.value is None else iv.value
                scale[rows, g] *= 1.0 - f
            elif iv.kind == "overexpression":
                fold = overexpression_fold if iv.value is None else iv.value
                add[rows, g] += max(fold - 1.0, 0.0) * max_prod[g]
                if fold < 1:
                    scale[rows, g] *= fold
            elif iv.kind == "shift":
                add[rows, g] += iv.resolved_value
            elif iv.kind == "clamp":
                clamp[rows, g], clamp_val[rows, g] = True, iv.resolved_value
            elif iv.kind == "activity":
                if activity is None:
                    activity = np.ones((N, p))
                activity[rows, g] = iv.resolved_value
    return {"scale": scale, "add": add, "clamp": clamp, "clamp_val": clamp_val, "activity": activity}


def _run(x, basal, iv: dict, kin, decay, per_cell_time, record_steps, dt, intrinsic_noise, rng) -> np.ndarray:
    """Euler-Maruyama from ``x`` under the interventions; each cell is read at its time point."""
    clamp, clamp_val = iv["clamp"], iv["clamp_val"]
    x = x.copy()
    x[clamp] = clamp_val[clamp]
    n_steps = max(record_steps)
    out = np.empty_like(x)
    sq = intrinsic_noise * np.sqrt(dt)
    for step in range(n_steps + 1):
        for k, s in enumerate(record_steps):
            if s == step:
                rows = per_cell_time == k
                out[rows] = x[rows]
        if step == n_steps:
            break
        prod = kin.production(x, basal, iv["activity"]) * iv["scale"] + iv["add"]
        x = _em_step(x, prod, decay, dt, sq, rng)
        x[clamp] = clamp_val[clamp]
    return out


def _screen_anndata(network, out, obs, settings: dict, technical_noise, rng):
    """The simulated levels as an AnnData: measured with technical noise (counts in a layer,
    log-normalised ``X``) or as they are, with the truth and the settings in ``uns``."""
    import anndata as ad

    genes = network.genes
    obs.index = [f"cell{i}" for i in range(len(obs))]
    var = pd.DataFrame(index=pd.Index(genes))
    n_targets = network.edges.groupby("source").size()
    n_regs = network.edges.groupby("target").size()
    var["n_targets"] = [int(n_targets.get(g, 0)) for g in genes]
    var["n_regulators"] = [int(n_regs.get(g, 0)) for g in genes]
    layers = {}
    if technical_noise:
        noise = TechnicalNoise() if technical_noise is True else technical_noise
        counts = _measure(out, noise, rng)
        X = _log_normalise(counts, noise.target_sum)
        layers["counts"] = counts
        settings["technical_noise"] = {k: ("none" if v is None else v) for k, v in asdict(noise).items()}
        settings["units"] = "log1p(normalize_total counts)"
    else:
        X = out.astype(np.float32)
        settings["units"] = "simulated levels"
    truth = network.truth_edges()
    adata = ad.AnnData(X=X, obs=obs, var=var, layers=layers or None)
    adata.uns["true_edges"] = {
        "source": truth["source"].to_numpy(dtype=str),
        "target": truth["target"].to_numpy(dtype=str),
        "sign": truth["sign"].to_numpy(dtype=np.int64),
    }
    adata.uns["simulation"] = settings
    return adata


def _em_step(x, prod, decay, dt, sq, rng):
    """One Euler-Maruyama step of the chemical Langevin equation, levels kept non-negative."""
    deg = decay * x
    x = x + (prod - deg) * dt
    if sq > 0:
        x = x + sq * np.sqrt(np.maximum(prod + deg, 0.0)) * rng.standard_normal(x.shape)
    return np.maximum(x, 0.0)


def _steady_start(kin, network, basal_pop, cell_type_idx, type_rows, t_end, dt, noise, rng):
    """Control steady state of each cell type (noise-free), then a noisy burn-in per cell."""
    basal_types = network.basal[type_rows]
    x = np.tile(network._typical_levels(), (len(type_rows), 1))
    for _ in range(int(round(2 * t_end / dt))):
        x = _em_step(x, kin.production(x, basal_types), network.decay, dt, 0.0, rng)
    row_of = {r: i for i, r in enumerate(type_rows)}
    x = x[[row_of[r] for r in cell_type_idx]]
    burn = int(round(5.0 / network.decay.min() / dt))
    sq = noise * np.sqrt(dt)
    for _ in range(burn):
        x = _em_step(x, kin.production(x, basal_pop), network.decay, dt, sq, rng)
    return x


def _measure(levels: np.ndarray, noise: TechnicalNoise, rng) -> np.ndarray:
    """UMI counts: library-size effect, optional logistic dropout, Poisson sampling."""
    total = levels.sum(axis=1).mean()
    if total <= 0:
        raise PerturbODEError("Every simulated level is zero; nothing to measure", where="technical noise",
                              fix="Check the network's basal rates")
    lib = np.exp(noise.library_sigma * rng.standard_normal(levels.shape[0]) - 0.5 * noise.library_sigma ** 2)
    mu = levels / total * noise.library_size * lib[:, None]
    if noise.dropout_midpoint is not None:
        logx = np.log1p(mu)
        mid = np.percentile(logx, noise.dropout_midpoint)
        keep_prob = 1.0 / (1.0 + np.exp(-noise.dropout_shape * (logx - mid)))
        mu = mu * (rng.random(mu.shape) < keep_prob)
    return rng.poisson(mu).astype(np.int32)


def _log_normalise(counts: np.ndarray, target_sum: float) -> np.ndarray:
    """scanpy's ``normalize_total(target_sum)`` + ``log1p`` (cells with no counts stay 0)."""
    totals = counts.sum(axis=1, keepdims=True).astype(float)
    scaled = np.divide(counts * target_sum, totals, out=np.zeros(counts.shape), where=totals > 0)
    return np.log1p(scaled).astype(np.float32)
