"""Simulation with a trained model: trajectories and per-gene perturbation effects.

Everything is in data units (what the training data held, typically log-normalised expression).
Expression cannot be negative, but a linear extrapolation of the field can reach below zero (a
knockout's targets overshoot): effect tables clip predictions at :data:`FLOOR` and say for each
gene which share of cells was clipped, so a clipped number is never shown as if it were predicted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.data.interventions import Intervention, check_genes, parse_spec
from perturbode_core.data.knockout_level import measured_knockdown


#: The lowest expression a prediction may show (data units): log-normalised data and counts are >= 0.
FLOOR = 0.0
#: Values (conditions x cells x genes) solved per batch by :func:`end_states`: about 80 MB of
#: float32 state, a few copies of which the solver keeps.
BATCH_VALUES = 20_000_000


def as_interventions(perturbation, gene_names, *, default_kind: str = "knockout") -> list[Intervention]:
    """A perturbation (spec string, list of :class:`Intervention`, ``None`` or ``"control"``) as a
    checked list of interventions (empty for the control)."""
    if perturbation is None or (isinstance(perturbation, str) and perturbation.strip().lower() in ("", "control")):
        return []
    ivs = parse_spec(perturbation, default_kind=default_kind) if isinstance(perturbation, str) else list(perturbation)
    check_genes(ivs, gene_names)
    return ivs


def knockdown_is_measured(model, gene: str) -> bool:
    """Whether ``model``'s undosed knock-down of measured ``gene`` follows its screen (its own
    training knock-downs, or the line they show) rather than the library's default 50 %."""
    return measured_knockdown(model.config) or model.measured_share("knockdown", gene)


def target_level_note(model, perturbation) -> str | None:
    """A sentence on what the perturbation's knockouts and undosed knock-downs leave of their
    targets' own level, where the model measured it on its screen (None otherwise: a knockout then
    removes its target, a knock-down without a dose the library's default 50 %)."""
    ivs = [iv for iv in as_interventions(perturbation, model.target_names) if iv.gene in model.gene_index]
    knocked_out = [iv.gene for iv in ivs if iv.kind == "knockout" and model.knockout_share_left(iv.gene) > 0]
    knocked_down = [iv.gene for iv in ivs if iv.kind == "knockdown" and iv.value is None
                    and knockdown_is_measured(model, iv.gene)]
    sentences = []
    for gene in knocked_out:
        own = model.measured_share("knockout", gene)
        sentences.append(f"The knockout of {gene} leaves {100 * model.knockout_share_left(gene):.0f} % of its own level, "
                         + ("as its training knockouts did" if own else "as this screen's training knockouts left of "
                            "their targets") + " (a CRISPR knockout's transcript is only partly degraded); its effect on "
                         "the other genes is that of the protein removed.")
    for gene in knocked_down:
        own = model.measured_share("knockdown", gene)
        sentences.append(f"The knock-down of {gene} removes {100 * (1 - model.knockdown_share_left(gene)):.0f} % of its "
                         "level, " + ("as its training knock-downs did" if own else "as this screen's training "
                                      "knock-downs did") + " (give a dose, GENE:knockdown=0.9, to set it).")
    return " ".join(sentences) or None


def combine_interventions(base, extra) -> list[Intervention]:
    """``base`` with ``extra`` on top: a gene in both takes ``extra``'s intervention.

    Used to keep a start condition's own perturbation on (e.g. simulate a second knockout in the
    cells of a first one as a double knockout).
    """
    extra = list(extra or [])
    genes = {iv.gene for iv in extra}
    return [iv for iv in (base or []) if iv.gene not in genes] + extra


def _start_cells(model, cells) -> np.ndarray:
    x0 = np.asarray(cells, dtype=np.float32)
    if x0.ndim == 1:
        x0 = x0[None, :]
    if x0.ndim != 2 or x0.shape[1] != model.n_genes:
        raise PerturbODEError(f"Start cells have shape {x0.shape}; the model has {model.n_genes} genes",
                              where="start cells", fix="Pass cells x genes in the model's gene order")
    if len(x0) == 0:
        raise PerturbODEError("No start cells", where="start cells", fix="Choose at least one cell")
    return x0


#: Start cells of a quick preview (:func:`trajectories` with ``preview=True``), at most. The effect
#: of a perturbation is a paired difference (the same cells with and without it), which varies far
#: less across cells than the states do: at 2,000 genes, 100 of 1,000 cells gave the full solve's
#: effects within 0.7 % of the largest (benchmarks/results/preview.md).
PREVIEW_CELLS = 200
#: The fewest start cells of a preview (a large model's), so that its mean effect stays stable.
PREVIEW_MIN_CELLS = 64
#: A preview's budget of work, start cells x genes x modules (the sizes of a field evaluation's two
#: matrix products, which are nearly all of its cost): 160 cells of a 2,000-gene, 512-module model
#: in bfloat16, a knockout in about 0.15 s on 2 idle CPU cores with AMX. Larger models get fewer
#: cells (down to :data:`PREVIEW_MIN_CELLS`), so that the preview stays interactive whatever the
#: module count.
PREVIEW_WORK = 160 * 2000 * 512
#: How much faster bfloat16 products ran than float32 in a knockout (2.6x at 512 modules, 4.0x at
#: 2,000; benchmarks/results/preview.md): a float32 preview (CPUs without AMX) gets this much less
#: work, so that it stays as quick.
BFLOAT16_SPEEDUP = 2.5


def preview_cell_count(n_genes: int, n_modules: int, precision: str = "bfloat16") -> int:
    """How many start cells a preview of a model of this size simulates at this ``precision``
    (see :data:`PREVIEW_WORK` and :data:`BFLOAT16_SPEEDUP`)."""
    work = PREVIEW_WORK if precision == "bfloat16" else PREVIEW_WORK / BFLOAT16_SPEEDUP
    fit = int(work // max(1, int(n_genes) * int(n_modules)))
    return int(min(PREVIEW_CELLS, max(PREVIEW_MIN_CELLS, fit)))


def preview_precision(model) -> str:
    """The matrix-product precision of a preview: ``bfloat16`` where its products are fast (a
    model on a GPU; CPUs with AMX tiles, 3.5x float32 there), else ``float32`` (without AMX,
    bfloat16 is slower than float32). Costs ~0.4 % of the largest effect (benchmarks/results/preview.md)."""
    import torch

    if model.A.device.type != "cpu":
        return "bfloat16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence guarded
    return "bfloat16" if amx is not None and amx() else "float32"


def preview_cells(n_cells: int, model=None, precision: str | None = None) -> np.ndarray:
    """Indices of the start cells a preview simulates: all of up to :func:`preview_cell_count`
    for the model at ``precision`` (default :func:`preview_precision`; :data:`PREVIEW_CELLS`
    without a ``model``), else a seeded subsample of that many (the same one every time)."""
    from perturbode_core.tools.embedding import subsample

    if model is None:
        n = PREVIEW_CELLS
    else:
        n = preview_cell_count(model.n_genes, model.n_modules, precision or preview_precision(model))
    return subsample(int(n_cells), n, seed=0)


def trajectories(model, cells, perturbations, *, horizon: float | None = None, n_times: int = 21,
                 preview: bool = False) -> dict:
    """Trajectories of ``cells`` under each perturbation.

    Parameters
    ----------
    model
        A trained PerturbODE.
    cells
        Start states, cells x genes (data units).
    perturbations
        List of perturbations (spec strings like ``"GATA1:knockout+SPI1"``, lists of
        Intervention, or ``"control"``).
    horizon
        End time (default: the model's horizon).
    n_times
        Number of evenly spaced output times.
    preview
        A quick preview for interactive use: a fixed subsample of the start cells
        (:func:`preview_cells`: at most :data:`PREVIEW_CELLS`, fewer for large models) and
        :func:`preview_precision` (fewer cells in float32, where bfloat16 is not fast). At 2,000
        genes and 512 modules a knockout of 1,000 cells takes about 0.15 s instead of 2.7 s on 2
        idle CPU cores with AMX, with effects within 0.5 % of the full solve's largest
        (benchmarks/results/preview.md); the full solve is the same call without ``preview``.

    Returns
    -------
    dict with ``times`` (T,), ``states`` (T, C, n, p) in data units, ``labels`` (C,), ``cells``
    (indices of the start cells simulated) and ``precision``.
    """
    x0 = _start_cells(model, cells)
    precision = preview_precision(model) if preview else "float32"
    used = preview_cells(len(x0), model, precision) if preview else np.arange(len(x0))
    x0 = x0[used]
    ivs = [as_interventions(p, model.target_names) for p in perturbations]
    T = float(horizon if horizon is not None else model.config.horizon)
    if not T > 0:
        raise PerturbODEError(f"Horizon must be positive, got {horizon}", where="horizon", fix="Give e.g. 10")
    times = np.linspace(0.0, T, max(2, int(n_times)))
    states = model.simulate(x0, ivs, times, precision=precision)
    labels = ["+".join(iv.to_spec() for iv in v) or "control" for v in ivs]
    return {"times": times, "states": states, "labels": labels, "cells": used, "precision": precision}


_solve = trajectories  # effect_table's parameter of the same name shadows the function


def end_states(model, cells, perturbations, *, horizon: float | None = None,
               batch_values: int = BATCH_VALUES) -> np.ndarray:
    """End states (C, n, p), data units, of many perturbations from the same cells: the conditions
    are one batch dimension of the solve, split into batches of about ``batch_values`` values so
    that a genome-wide screen fits in memory."""
    x0 = _start_cells(model, cells)
    T = float(horizon if horizon is not None else model.config.horizon)
    per = max(1, int(batch_values // max(1, x0.shape[0] * x0.shape[1])))
    perturbations = list(perturbations)
    out = [model.simulate(x0, perturbations[i:i + per], [0.0, T])[-1] for i in range(0, len(perturbations), per)]
    return np.concatenate(out, axis=0)


def trajectories_anndata(model, cells, perturbation, *, horizon: float | None = None, n_times: int = 21):
    """One perturbation's trajectories as an AnnData (rows: cell x time; obs: cell, time, perturbation)."""
    import anndata as ad

    out = trajectories(model, cells, [perturbation], horizon=horizon, n_times=n_times)
    T, _, n, p = out["states"].shape
    X = out["states"][:, 0].reshape(T * n, p)
    obs = pd.DataFrame({
        "cell": np.tile(np.arange(n), T), "time": np.repeat(out["times"], n),
        "perturbation": out["labels"][0],
    }, index=[f"t{ti}_c{ci}" for ti in range(T) for ci in range(n)])
    return ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=list(model.gene_names)))


def predict(model, cells, perturbation, *, horizon: float | None = None) -> np.ndarray:
    """End states (cells x genes, data units) of ``cells`` under one perturbation."""
    return trajectories(model, cells, [perturbation], horizon=horizon, n_times=2)["states"][-1, 0]


def predict_anndata(model, cells, perturbations, *, horizon: float | None = None):
    """Predicted end states of ``cells`` under each perturbation, stacked into one AnnData.

    ``obs['perturbation']`` holds the perturbation ("control" for the unperturbed simulation).
    """
    import anndata as ad

    out = trajectories(model, cells, list(perturbations), horizon=horizon, n_times=2)
    end = out["states"][-1]  # (C, n, p)
    C, n, p = end.shape
    obs = pd.DataFrame({"perturbation": np.repeat(out["labels"], n)},
                       index=[f"{lab}_{i}" for lab in out["labels"] for i in range(n)])
    return ad.AnnData(X=end.reshape(C * n, p).astype(np.float32), obs=obs,
                      var=pd.DataFrame(index=list(model.gene_names)))


def effect_table(model, cells, perturbation, *, horizon: float | None = None,
                 trajectories: dict | None = None, baseline=None, floor: float | None = FLOOR,
                 preview: bool = False) -> pd.DataFrame:
    """Per-gene effect of a perturbation versus the control simulation of the same cells.

    ``trajectories`` may pass the output of :func:`trajectories` for ``[baseline, perturbation]``
    on the same cells, so a caller that already solved them does not solve twice. ``baseline``
    (default: no intervention) is what the perturbation is compared with, e.g. the start
    condition's own perturbation kept on. Predictions below ``floor`` are clipped to it (None: no
    clipping). ``preview``: solve them as a quick preview (see :func:`trajectories`).

    Columns: gene, control (mean simulated level of the baseline), perturbed (mean under the
    perturbation), mean_change, log2_fold_change (difference of log-scale means / ln 2, the log2
    fold change when the data are log1p-normalised), z_change (change in units of the gene's
    scale), targeted (whether the gene is a target), clipped (share of perturbed cells whose
    prediction fell below ``floor`` and was clipped; flag these). Sorted by |z_change|.
    """
    out = trajectories if trajectories is not None else \
        _solve(model, cells, [baseline or "control", perturbation], horizon=horizon, n_times=2, preview=preview)
    if out["states"].shape[1] != 2:
        raise PerturbODEError("The given trajectories must hold exactly the control and the perturbation",
                              where="effect_table", fix="Pass trajectories(model, cells, ['control', perturbation])")
    ctrl, pert = out["states"][-1, 0], out["states"][-1, 1]
    clipped = np.zeros(pert.shape[1])
    if floor is not None:
        clipped = (pert < floor - 1e-6).mean(0)
        ctrl, pert = np.maximum(ctrl, floor), np.maximum(pert, floor)
    c_mean, p_mean = ctrl.mean(0), pert.mean(0)
    change = p_mean - c_mean
    targets = {iv.gene for iv in as_interventions(perturbation, model.target_names)}
    scale = model.scale.numpy()
    table = pd.DataFrame({
        "gene": list(model.gene_names), "control": c_mean, "perturbed": p_mean, "mean_change": change,
        "log2_fold_change": change / np.log(2.0), "z_change": change / scale,
        "targeted": [g in targets for g in model.gene_names], "clipped": clipped,
    })
    table = table.reindex(table["z_change"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def ensemble_predict_anndata(models, cells, perturbations, *, horizon: float | None = None):
    """:func:`predict_anndata` of a seed ensemble: each start cell's end state is the mean of the
    members' end states (same cells, same order; the obs of one member's prediction). One model:
    its :func:`predict_anndata`.

    Averaging members trained with different seeds removes much of what one run's weights owe to
    chance: on the accuracy benchmark's splits the Pearson of held-out changes rose from 0.633
    (one seed) to 0.700 (3 seeds, 22 runs), the energy distance fell from 1.395 to 1.385. On the small
    networks alone (benchmarks/results/seed_ensemble.md) the Pearson rose but the energy distance
    grew (the mean over members is a narrower population than any member's).
    """
    models = list(models)
    preds = [predict_anndata(m, cells, perturbations, horizon=horizon) for m in models]
    if len(preds) == 1:
        return preds[0]
    out = preds[0].copy()
    out.X = np.mean([p.X for p in preds], axis=0).astype(np.float32)
    return out


def ensemble_effect_table(models, cells, perturbation, *, horizon: float | None = None,
                          floor: float | None = FLOOR) -> pd.DataFrame:
    """:func:`effect_table` of a seed ensemble: the members' means per gene, plus ``change_sd``
    (the spread of ``mean_change`` over members) and ``agreement`` (the share of members whose
    change has the sign of the mean), sorted by |z_change|. One model: its :func:`effect_table`."""
    models = list(models)
    if len(models) == 1:
        return effect_table(models[0], cells, perturbation, horizon=horizon, floor=floor)
    genes = list(models[0].gene_names)
    tables = [effect_table(m, cells, perturbation, horizon=horizon, floor=floor).set_index("gene").loc[genes]
              for m in models]
    numeric = ["control", "perturbed", "mean_change", "log2_fold_change", "z_change", "clipped"]
    table = (sum(t[numeric] for t in tables) / len(tables)).reset_index()
    changes = np.stack([t["mean_change"].to_numpy() for t in tables])
    table["change_sd"] = changes.std(0, ddof=1)
    table["agreement"] = (np.sign(changes) == np.sign(changes.mean(0))[None, :]).mean(0)
    table["targeted"] = tables[0]["targeted"].to_numpy()
    table = table.reindex(table["z_change"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def compare_effects(tables: dict[str, pd.DataFrame], *, value: str = "z_change") -> pd.DataFrame:
    """Effects of several scenarios side by side: one row per gene, one column per scenario.

    Rows are sorted by the largest absolute effect in any scenario.
    """
    cols = {name: t.set_index("gene")[value] for name, t in tables.items()}
    wide = pd.DataFrame(cols)
    wide = wide.loc[wide.abs().max(axis=1).sort_values(ascending=False).index]
    wide.index.name = "gene"
    return wide.reset_index()
