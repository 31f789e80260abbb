"""Evaluation: a model beside the baselines, always on the same data and split.

Two entry points share every piece: :func:`run_benchmark` trains a fresh model on a split and
scores it; :func:`network_comparison` and :func:`prediction_comparison` score a model you already
have (the dashboard's current model, a checkpoint). Network baselines (correlation, knockout
z-score, GENIE3) are scored against the known network with the model's metrics; prediction
baselines (no change, mean shift, linear, additive) predict the same held-out conditions from the
same control cells. Baselines see only the training conditions. :func:`run_stability` and
:func:`stability_summary` measure how much the network depends on the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.data.dataset import PerturbationData
from perturbode_core.data.splits import split_conditions
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import write_text_atomic

#: The model's name in every comparison table (the figures highlight it).
MODEL_NAME = "PerturbODE"
#: the model's direct effects G alone (the default network is the combined reading)
DIRECT_NAME = "PerturbODE, G only"
#: Network metrics shown by default (higher is better).
NETWORK_METRICS = ["aupr", "auroc", "early_precision", "precision", "recall", "f1", "sign_accuracy"]
#: Held-out prediction metrics shown by default (w2, energy, mse: lower is better; pearson: higher).
PREDICTION_METRICS = ["w2", "energy", "mmd", "pearson_delta", "pearson_delta_top", "top_overlap", "mse_mean"]
#: Default network and prediction baselines.
NETWORK_BASELINE_NAMES = ("correlation", "knockout_zscore", "knockout_zscore_control", "genie3")
PREDICTION_BASELINE_NAMES = ("no_change", "mean_shift", "linear", "additive")
#: Columns of the benchmark table.
NETWORK_COLUMNS = ["aupr", "auroc", "aupr_ratio", "early_precision", "sign_accuracy"]
HELDOUT_COLUMNS = ["w2", "energy", "pearson_delta", "pearson_delta_top", "top_overlap", "mse_mean"]


def _check_baselines(names, registry, kind: str) -> None:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise PerturbODEError(f"Unknown {kind} baseline(s): {', '.join(unknown)}", where="evaluation",
                              fix=f"Choose among {', '.join(registry)}")


# ------------------------------------------------------------------------------------- networks
def network_comparison(G, gene_names, truth, *, data=None, baselines=NETWORK_BASELINE_NAMES, regulators=None,
                       conditions=None, seed: int = 0, readings: dict | None = None) -> pd.DataFrame:
    """Network metrics of the model's network and of each network baseline against ``truth``.

    Parameters
    ----------
    G, gene_names
        The model's network scores (``G[i, j]`` = effect of j on i; its default reading,
        :func:`~perturbode_core.tools.grn.network_matrix`) and its genes.
    readings
        Other readings of the same model, ``{method name: matrix}`` (e.g. its direct effects G
        alone), scored as rows of kind ``model reading`` right after the model.
    truth
        Known edges (DataFrame ``source, target[, sign]`` or a dict of columns).
    data
        :class:`~perturbode_core.data.dataset.PerturbationData` for the baselines (none are run without it).
    baselines
        Names in :data:`perturbode_core.tools.baselines.NETWORK_BASELINES`.
    regulators
        Restrict candidate edges to these regulators (e.g. the perturbed genes).
    conditions
        Conditions the baselines may use (default all: the same data the model was trained on).

    Returns
    -------
    pandas.DataFrame
        One row per method (``method``, ``kind``, every metric of
        :func:`~perturbode_core.tools.metrics.network_metrics`, ``seconds`` for the baselines), the
        model first. ``attrs["random"]`` holds the levels of a random predictor (``aupr`` = edge
        density, ``auroc`` = 0.5).
    """
    from perturbode_core.tools.baselines import NETWORK_BASELINES
    from perturbode_core.tools.metrics import network_metrics

    if data is not None:
        _check_baselines(baselines, NETWORK_BASELINES, "network")
    truth = pd.DataFrame(truth) if isinstance(truth, dict) else truth
    genes = list(map(str, gene_names))
    model_row = network_metrics(np.asarray(G), truth, genes, regulators=regulators)
    rows = [{"method": MODEL_NAME, "kind": "model", **model_row}]
    for name, M in (readings or {}).items():
        rows.append({"method": name, "kind": "model reading",
                     **network_metrics(np.asarray(M), truth, genes, regulators=regulators)})
    for name in (baselines if data is not None else ()):
        t0 = time.perf_counter()
        Gb = NETWORK_BASELINES[name](data, conditions=conditions, seed=seed)
        rows.append({"method": name, "kind": "baseline",
                     **network_metrics(Gb, truth, list(map(str, data.gene_names)), regulators=regulators),
                     "seconds": time.perf_counter() - t0})
    table = pd.DataFrame(rows)
    density = model_row.get("edge_density")
    table.attrs["random"] = {"aupr": density, "auroc": 0.5, "early_precision": density, "precision": density}
    return table


def direct_reading(model, *, alpha_mode: str = "plain", cells=None) -> dict:
    """``{DIRECT_NAME: G}`` when the model's default network is not G itself (the ``readings`` of
    :func:`network_comparison` that put the model's weights alone beside its default), else ``{}``."""
    from perturbode_core.tools.grn import grn_matrix, network_reading

    if network_reading(model) == "direct":
        return {}
    return {DIRECT_NAME: grn_matrix(model, alpha_mode=alpha_mode, cells=cells)}


# ---------------------------------------------------------------------------------- predictions
def predict_conditions(model, data, conditions, *, max_start_cells: int = 300, seed: int = 0) -> dict:
    """The model's predicted cells of each condition, from (a seeded subsample of) the control cells,
    all in one batched solve: ``{condition: cells x genes}``."""
    ctrl = _start_cells(data, max_start_cells, seed)
    end = model.simulate(ctrl, [data.interventions[c] for c in conditions],
                         np.array([0.0, model.config.horizon]))[-1]
    return {c: end[i] for i, c in enumerate(conditions)}


def _start_cells(data, max_cells: int, seed: int) -> np.ndarray:
    ctrl = data.control_cells()
    if len(ctrl) > max_cells:
        ctrl = ctrl[np.sort(np.random.default_rng(seed).choice(len(ctrl), max_cells, replace=False))]
    return ctrl


def prediction_comparison(model, data, heldout, *, train_conditions=None, baselines=None, max_start_cells: int = 300,
                          max_cells: int | None = 500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict held-out conditions with the model and with each prediction baseline, and score them.

    Parameters
    ----------
    model
        A trained :class:`~perturbode_core.model.field.PerturbODE`.
    data
        The data with the observed cells of the held-out conditions.
    heldout
        Conditions to predict and score.
    train_conditions
        Conditions the baselines may learn from (default: every condition not in ``heldout``).
    baselines
        Names in :data:`perturbode_core.tools.baselines.PREDICTION_BASELINES` (default all).
    max_start_cells
        Control cells the model and the baselines start from (a seeded subsample above this).
    max_cells
        Cells used by the distribution distances (see :func:`~perturbode_core.tools.metrics.score_prediction`).

    Returns
    -------
    (summary, per_condition)
        ``summary``: one row per method with the mean of each metric over the held-out conditions
        (model first) and ``seconds``; ``per_condition``: one row per (method, condition), with
        the ``support`` of the condition's least supported target in the model's training
        (:func:`~perturbode_core.tools.target_support.weakest_levels`: perturbed in training or not).
    """
    from perturbode_core.tools.baselines import PREDICTION_BASELINES
    from perturbode_core.tools.metrics import score_predictions

    baselines = list(PREDICTION_BASELINES) if baselines is None else list(baselines)
    _check_baselines(baselines, PREDICTION_BASELINES, "prediction")
    heldout = [c for c in heldout if c != data.control]
    if not heldout:
        raise PerturbODEError("No held-out conditions to score", where="prediction_comparison",
                              fix="Choose at least one perturbed condition")
    unknown = [c for c in heldout if c not in set(data.conditions)]
    if unknown:
        raise PerturbODEError(f"Condition(s) not in the data: {', '.join(unknown[:5])}", where="held-out conditions",
                              fix="Choose measured conditions")
    if train_conditions is None:
        train_conditions = [c for c in data.conditions if c not in set(heldout)]
    ctrl = _start_cells(data, max_start_cells, seed)
    t0 = time.perf_counter()
    preds = {MODEL_NAME: predict_conditions(model, data, heldout, max_start_cells=max_start_cells, seed=seed)}
    seconds = {MODEL_NAME: time.perf_counter() - t0}
    for name in baselines:
        t0 = time.perf_counter()
        base = PREDICTION_BASELINES[name]().fit(data, train_conditions)
        preds[name] = {c: base.predict(c, x0=ctrl) for c in heldout}
        seconds[name] = time.perf_counter() - t0
    per, summary = [], []
    for method, p in preds.items():
        s = score_predictions(p, data, heldout, max_cells=max_cells, seed=seed)
        per.append(s[s["condition"] != "mean"].assign(method=method))
        mean = s[s["condition"] == "mean"].drop(columns="condition").iloc[0].to_dict()
        summary.append({"method": method, "kind": "model" if method == MODEL_NAME else "baseline",
                        "n_conditions": len(heldout), **mean, "seconds": seconds[method]})
    per_condition = pd.concat(per, ignore_index=True)
    per_condition = per_condition[["method"] + [c for c in per_condition.columns if c != "method"]]
    # whether each condition's targets were perturbed in training: a prediction for a target that
    # was not is an extrapolation (benchmarks/results/target_support.md), so the scores say which
    from perturbode_core.tools.target_support import weakest_levels

    support = dict(zip(heldout, weakest_levels(model, [data.interventions[c] for c in heldout])))
    per_condition.insert(2, "support", per_condition["condition"].map(support))
    return pd.DataFrame(summary), per_condition


# ------------------------------------------------------------------------------- typed scores
@dataclass
class NetworkScore:
    """The model's network scored beside the network baselines against a known network."""

    table: pd.DataFrame
    truth_name: str = "known network"
    regulators_only: bool = False

    @property
    def title(self) -> str:
        return f"Network against the {self.truth_name}"

    @property
    def note(self) -> str:
        n_true, n_cand = (int(self.table[c].iloc[0]) for c in ("n_true_edges", "n_candidates"))
        return (f"{n_true} known edges among {n_cand} candidate pairs"
                + (" (regulators that were perturbed only)" if self.regulators_only else "")
                + f"; a random ranking has AUPR {self.table['edge_density'].iloc[0]:.3f}.")


@dataclass
class PredictionScore:
    """Predictions of chosen conditions scored beside the prediction baselines, with what the model saw.

    ``fitted`` and ``validation`` are the scored conditions the model was fitted on (in-sample) or
    chose its best epoch with; only the rest are truly held out. :attr:`title` and :attr:`note`
    say so in words, so no in-sample number is ever labelled held-out.
    """

    conditions: list[str]
    summary: pd.DataFrame
    per_condition: pd.DataFrame
    fitted: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)

    @property
    def heldout(self) -> list[str]:
        """Scored conditions the model never saw."""
        seen = set(self.fitted) | set(self.validation)
        return [c for c in self.conditions if c not in seen]

    @property
    def in_sample(self) -> bool:
        """Whether any scored condition was fitted on."""
        return bool(self.fitted)

    @property
    def title(self) -> str:
        if not self.in_sample and not self.validation:
            return "Prediction of held-out conditions"
        if not self.in_sample:
            return "Prediction of validation conditions (chose the best epoch; not fitted)"
        if self.heldout or self.validation:
            return "Prediction of partly in-sample conditions"
        return "Prediction of conditions seen in training (in-sample, not a test)"

    @property
    def note(self) -> str:
        parts = []
        if self.heldout:
            parts.append(f"never shown to the model: {', '.join(self.heldout)}")
        if self.validation:
            parts.append(f"used only to pick the best epoch: {', '.join(self.validation)}")
        if self.fitted:
            parts.append(f"fitted on (in-sample): {', '.join(self.fitted)}")
        return "Conditions " + "; ".join(parts) + ". Baselines learn from every other condition."


@dataclass
class LiteratureScore:
    """The model's edges (measured genes and unmeasured regulators) scored against published TF
    networks, beside a degree-preserving random expectation
    (:func:`~perturbode_core.tools.metrics.literature.literature_support`)."""

    table: pd.DataFrame
    n_edges: int = 0

    title = "Literature support (published TF networks)"

    @property
    def note(self) -> str:
        empty = self.table.attrs.get("empty", [])
        text = ("Share of the strongest edges out of reference TFs that the reference lists (direction counts), "
                "beside the same share when each TF's targets are shuffled keeping every gene's degree "
                f"({self.n_edges} edges ranked, references restricted to the genes present).")
        if empty:
            text += f" No edge of {', '.join(empty)} joins two of these genes."
        return text


def literature_check(model, *, references=("collectri", "trrust"), top_k=(25, 50, 100), n_permutations: int = 1000,
                     seed: int = 0) -> LiteratureScore:
    """:func:`~perturbode_core.tools.metrics.literature.literature_support` of a model's network:
    its gene-to-gene edges and its unmeasured regulators' edges to the measured genes."""
    from perturbode_core.tools import grn
    from perturbode_core.tools.metrics.literature import literature_support

    edges = pd.concat([grn.model_edges(model)[["source", "target", "weight"]],
                       grn.latent_edges(model)[["source", "target", "weight"]]], ignore_index=True)
    table = literature_support(edges, model.target_names, references=references, top_k=top_k,
                               n_permutations=n_permutations, seed=seed)
    return LiteratureScore(table=table, n_edges=len(edges))


def score_predictions_of(model, data, conditions, *, settings=None, max_start_cells: int = 300,
                         seed: int = 0) -> PredictionScore:
    """:func:`prediction_comparison` of ``conditions``, labelled with what the model saw
    (``settings``: a :class:`~perturbode_core.io.checkpoint.TrainedSettings`; unknown counts as seen)."""
    summary, per = prediction_comparison(model, data, conditions, max_start_cells=max_start_cells, seed=seed)
    if settings is None:
        fitted, val = list(data.conditions), []
    else:
        fitted, val = settings.seen_conditions(data)
    return PredictionScore(conditions=list(conditions), summary=summary, per_condition=per,
                           fitted=[c for c in conditions if c in set(fitted)],
                           validation=[c for c in conditions if c in set(val)])


def seed_configs(train_config, n_seeds: int, *, epochs: int | None = None, first_seed: int = 1000) -> list:
    """Training options of ``n_seeds`` reruns that differ only in their seed (and ``epochs`` when given)."""
    import dataclasses

    changes = {} if epochs is None else {"epochs": int(epochs)}
    return [dataclasses.replace(train_config, seed=first_seed + s, **changes) for s in range(int(n_seeds))]


# ------------------------------------------------------------------------------------ benchmark
@dataclass
class BenchmarkResult:
    """The table (one row per method) and what produced it."""

    table: pd.DataFrame
    per_condition: pd.DataFrame
    heldout: list[str]
    train_conditions: list[str]
    model: object = None
    fit: object = None
    notes: list[str] = field(default_factory=list)


def run_benchmark(
    data: PerturbationData,
    *,
    truth: pd.DataFrame | None = None,
    holdout: float | int | list[str] = 0.2,
    seed: int = 0,
    model_config=None,
    train_config=None,
    network_baselines: tuple[str, ...] = NETWORK_BASELINE_NAMES,
    prediction_baselines: tuple[str, ...] = PREDICTION_BASELINE_NAMES,
    restrict_to_perturbed: bool = False,
    callback=None,
    log=print,
) -> BenchmarkResult:
    """Train PerturbODE on one split and score it beside the baselines.

    Parameters
    ----------
    data
        The dataset.
    truth
        Known edges (``source, target[, sign]``) for the network metrics; without it only held-out
        prediction metrics are computed.
    holdout
        Held-out perturbations: a fraction, a number (seeded draw) or a list of names.
    seed
        Seed of the split and of training.
    model_config, train_config
        PerturbODE options (defaults when omitted; the seed is set from ``seed``).
    network_baselines, prediction_baselines
        Names from :data:`perturbode_core.tools.baselines.NETWORK_BASELINES` / ``PREDICTION_BASELINES``.
    restrict_to_perturbed
        Score networks only on edges out of perturbed regulators.
    callback
        Passed to :func:`~perturbode_core.train.fit` (progress).
    log
        Where progress lines go (``print``; ``None`` for silence).

    Returns
    -------
    :class:`BenchmarkResult`; its ``table`` has a ``method`` column (``PerturbODE`` and the
    baselines' names), ``kind``, the network metrics, the held-out metrics prefixed ``heldout_``,
    and ``seconds``.
    """
    import dataclasses

    from perturbode_core.tools.baselines import NETWORK_BASELINES, PREDICTION_BASELINES
    from perturbode_core.tools.grn import network_matrix
    from perturbode_core.train import TrainConfig, fit

    _check_baselines(network_baselines, NETWORK_BASELINES, "network")
    _check_baselines(prediction_baselines, PREDICTION_BASELINES, "prediction")
    say = log or (lambda *a, **k: None)
    train_conditions, heldout = split_conditions(data, holdout, seed=seed)
    regulators = sorted(data.perturbed_genes(train_conditions)) if restrict_to_perturbed else None
    cfg = dataclasses.replace(train_config or TrainConfig(), seed=seed)
    say(f"training PerturbODE on {len(train_conditions) - 1} perturbations ({data.n_genes} genes)...")
    t0 = time.perf_counter()
    result = fit(data, model_config=model_config, train_config=cfg, train_conditions=train_conditions,
                 callback=callback)
    fit_seconds = time.perf_counter() - t0
    say(f"  PerturbODE: {fit_seconds:.1f} s")
    rows: dict[str, dict] = {MODEL_NAME: {"method": MODEL_NAME, "kind": "model", "seconds": fit_seconds}}
    if truth is not None:
        net = network_comparison(network_matrix(result.model), data.gene_names, truth, data=data,
                                 baselines=network_baselines, regulators=regulators, conditions=train_conditions,
                                 seed=seed, readings=direct_reading(result.model))
        for r in net.to_dict("records"):
            row = rows.setdefault(r["method"], {"method": r["method"], "seconds": r.get("seconds"),
                                                "kind": "model reading" if r["kind"] == "model reading"
                                                else "network baseline"})
            row.update({k: r.get(k) for k in NETWORK_COLUMNS})
    notes, per_condition = [], pd.DataFrame()
    if heldout:
        summary, per_condition = prediction_comparison(result.model, data, heldout, train_conditions=train_conditions,
                                                       baselines=prediction_baselines, seed=seed)
        for r in summary.to_dict("records"):
            row = rows.setdefault(r["method"], {"method": r["method"], "kind": "prediction baseline",
                                                "seconds": r.get("seconds")})
            row.update({f"heldout_{k}": r.get(k) for k in HELDOUT_COLUMNS if k in r})
    else:
        notes.append("no held-out conditions: prediction metrics skipped")
    table = pd.DataFrame(list(rows.values()))
    order = ["method", "kind"] + [c for c in NETWORK_COLUMNS if c in table] + \
            [f"heldout_{c}" for c in HELDOUT_COLUMNS if f"heldout_{c}" in table] + ["seconds"]
    return BenchmarkResult(table=table[order], per_condition=per_condition, heldout=heldout,
                           train_conditions=train_conditions, model=result.model, fit=result, notes=notes)


def to_markdown(table: pd.DataFrame, *, digits: int = 3) -> str:
    """A GitHub Markdown table (no extra dependency; NaN shown as '-')."""
    def fmt(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    # row by row through the columns (iterrows would turn the integers of a mixed row into floats)
    for values in zip(*(table[c].tolist() for c in cols)):
        lines.append("| " + " | ".join(fmt(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def write_tables(table: pd.DataFrame, out_dir, *, name: str = "table") -> tuple[Path, Path]:
    """Write ``name.csv`` and ``name.md`` atomically into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.csv", table.to_csv(index=False))
    write_text_atomic(out / f"{name}.md", to_markdown(table))
    return out / f"{name}.csv", out / f"{name}.md"


# ------------------------------------------------------------------------------------ stability
def run_stability(data: PerturbationData, seeds, *, truth: pd.DataFrame | None = None, model_config=None,
                  train_config=None, train_conditions=None, top_k: int | None = None, callback=None,
                  log=print) -> dict:
    """Train with several seeds: a consensus network with edge frequencies and the spread of metrics.

    Parameters
    ----------
    seeds
        The seeds (e.g. ``range(5)``).
    top_k
        Edges counted per run for the frequencies (default: the number of true edges, or 5 x genes).

    Returns
    -------
    dict with ``consensus`` (source, target, frequency, mean_weight, sign_consistency),
    ``metrics`` (one row per seed) and ``spread`` (mean, std, min, max per metric).
    """
    import dataclasses

    from perturbode_core.tools.grn import network_matrix
    from perturbode_core.tools.metrics import consensus_edges, metric_spread, network_metrics
    from perturbode_core.train import TrainConfig, fit

    seeds = list(seeds)
    if len(seeds) < 2:
        raise PerturbODEError("Stability needs at least two seeds", where="seeds", fix="Give e.g. 0,1,2")
    say = log or (lambda *a, **k: None)
    base = train_config or TrainConfig()
    matrices, rows = [], []
    for s in seeds:
        say(f"seed {s}...")
        r = fit(data, model_config=model_config, train_config=dataclasses.replace(base, seed=int(s)),
                train_conditions=train_conditions, callback=callback)
        G = network_matrix(r.model)
        matrices.append(G)
        row = {"seed": int(s), "best_epoch": r.best_epoch}
        if truth is not None:
            m = network_metrics(G, truth, data.gene_names)
            row.update({k: m[k] for k in NETWORK_COLUMNS})
        rows.append(row)
    if top_k is None:
        top_k = len(truth) if truth is not None else 5 * data.n_genes
    metrics = pd.DataFrame(rows)
    spread = metric_spread([{k: v for k, v in r.items() if k not in ("seed", "best_epoch")} for r in rows]) \
        if truth is not None else pd.DataFrame()
    return {"consensus": consensus_edges(matrices, data.gene_names, top_k=top_k), "metrics": metrics,
            "spread": spread}


def stability_summary(matrices, gene_names, *, truth=None, top_k: int | None = None) -> dict:
    """Edge stability over several runs (seeds) of the same model and data.

    Parameters
    ----------
    matrices
        One ``G`` per run.
    truth
        Known edges; when given, the network metrics of every run and their spread are added.
    top_k
        Edges per run for the consensus (default: the number of genes).

    Returns
    -------
    dict
        ``consensus`` (:func:`~perturbode_core.tools.metrics.consensus_edges`), ``frequency_counts``
        (how many edges were found by 1, 2, ... runs), and with ``truth`` ``per_run`` (metrics
        table) and ``spread`` (:func:`~perturbode_core.tools.metrics.metric_spread`).
    """
    from perturbode_core.tools.metrics import consensus_edges, metric_spread, network_metrics

    matrices = [np.asarray(G) for G in matrices]
    if len(matrices) < 2:
        raise PerturbODEError("Stability needs at least two runs", where="stability_summary",
                              fix="Train with two or more seeds")
    cons = consensus_edges(matrices, list(gene_names), top_k=top_k)
    n = len(matrices)
    counts = (cons["frequency"] * n).round().astype(int).value_counts().reindex(range(1, n + 1), fill_value=0)
    out = {"consensus": cons, "n_runs": n,
           "frequency_counts": pd.DataFrame({"runs": counts.index, "edges": counts.to_numpy()})}
    if truth is not None:
        truth = pd.DataFrame(truth) if isinstance(truth, dict) else truth
        per = [network_metrics(G, truth, list(gene_names)) for G in matrices]
        out["per_run"] = pd.DataFrame([{"run": i + 1, **{k: v for k, v in m.items() if k in NETWORK_METRICS}}
                                       for i, m in enumerate(per)])
        out["spread"] = metric_spread([{k: v for k, v in m.items() if k in NETWORK_METRICS} for m in per])
    return out
