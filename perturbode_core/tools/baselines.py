"""Baselines that every PerturbODE number is shown beside (issue 4).

Network baselines
    Functions ``f(data, *, conditions=None, regulators=None, seed=0, ...) -> G`` returning a p x p
    score matrix with ``G[i, j]`` = score of the edge regulator j -> target i (the same convention
    as the model's ``G``), self-loops 0. Registry: :data:`NETWORK_BASELINES`.

Prediction baselines
    Classes with ``fit(data, train_conditions) -> self`` and ``predict(condition, x0=None) ->
    cells x genes``: they shift the control cells (or ``x0``) by a predicted mean change, so their
    populations keep the control cells' spread. Registry: :data:`PREDICTION_BASELINES`.

Only training conditions' cells are used in ``fit``; the interventions (targets and types) of
held-out conditions are metadata and may be looked up at predict time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.data.interventions import PERFECT_TYPES, Intervention, check_genes, parse_spec

#: Sign of the change an intervention type makes to its own target. Types missing here (clamp,
#: activity) take the observed sign of the target's own change.
DIRECTION = {"knockout": -1.0, "knockdown": -1.0, "overexpression": 1.0, "shift": 1.0}


# ============================================================================ helpers
def _condition_means(data, conditions) -> tuple[list[str], np.ndarray]:
    """Mean expression of each condition (conditions x genes), by one sort of the labels."""
    conditions = [c for c in conditions]
    codes = pd.Categorical(data.labels, categories=conditions).codes
    keep = codes >= 0
    sums = np.zeros((len(conditions), data.n_genes))
    np.add.at(sums, codes[keep], data.X[keep].astype(np.float64))
    n = np.bincount(codes[keep], minlength=len(conditions)).astype(float)
    if (n == 0).any():
        empty = [c for c, k in zip(conditions, n) if k == 0]
        raise PerturbODEError(f"Condition(s) without cells: {', '.join(map(str, empty[:5]))}",
                              where=data.source, fix="Choose conditions that were measured")
    return conditions, sums / n[:, None]


def _check_conditions(data, conditions, *, where: str) -> list[str]:
    if conditions is None:
        return list(data.conditions)
    conditions = list(conditions)
    unknown = [c for c in conditions if c not in set(data.conditions)]
    if unknown:
        raise PerturbODEError(f"Condition(s) not in the data: {', '.join(map(str, unknown[:5]))}",
                              where=where, fix="Use condition labels as in the data")
    if data.control not in conditions:
        conditions = [data.control] + conditions
    return conditions


def _direction(iv: Intervention, own_change: float) -> float:
    """+1 when the intervention raises its target, -1 when it lowers it."""
    if iv.kind in DIRECTION:
        return DIRECTION[iv.kind]
    if iv.kind == "activity":  # an inhibitor (factor < 1) acts like lowering the regulator
        return -1.0 if iv.resolved_value < 1 else 1.0
    return -1.0 if own_change < 0 else 1.0


def _regulator_mask(data, regulators) -> np.ndarray:
    if regulators is None:
        return np.ones(data.n_genes, dtype=bool)
    regs = [str(r) for r in regulators]
    check_genes([Intervention(r) for r in regs], data.gene_names, where="regulators")
    return np.isin(np.asarray(data.gene_names, dtype=object), regs)


def _cell_subset(data, conditions, max_cells, seed) -> np.ndarray:
    idx = np.flatnonzero(np.isin(data.labels, conditions))
    if max_cells is not None and len(idx) > max_cells:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=int(max_cells), replace=False))
    return idx


# ============================================================================ network baselines
def correlation_network(data, *, conditions=None, regulators=None, signed: bool = False,
                        max_cells: int | None = None, seed: int = 0) -> np.ndarray:
    """Pearson correlation between genes over all cells (co-expression, no causal direction).

    Parameters
    ----------
    data
        :class:`~perturbode_core.data.dataset.PerturbationData`.
    conditions
        Use the cells of these conditions (default all).
    regulators
        Keep only columns (regulators) among these genes; other columns are 0.
    signed
        Return the signed correlation instead of its absolute value (default absolute, the usual
        baseline; the ranking by ``|G|`` is the same either way).
    max_cells, seed
        Subsample cells (seeded) for speed.

    Returns
    -------
    numpy.ndarray
        p x p, symmetric before the regulator mask; diagonal 0; constant genes score 0.
    """
    conditions = _check_conditions(data, conditions, where="correlation_network")
    X = data.X[_cell_subset(data, conditions, max_cells, seed)].astype(np.float64)
    Xc = X - X.mean(0)
    sd = np.sqrt((Xc**2).sum(0))
    ok = sd > 1e-12
    Z = np.zeros_like(Xc)
    Z[:, ok] = Xc[:, ok] / sd[ok]
    C = Z.T @ Z
    np.fill_diagonal(C, 0.0)
    C[:, ~_regulator_mask(data, regulators)] = 0.0
    return C if signed else np.abs(C)


def knockout_zscore_network(data, *, conditions=None, regulators=None, reference: str = "median",
                            min_cells: int = 1, seed: int = 0) -> np.ndarray:
    """Score j -> i by how far i's mean moves when j alone is perturbed, in control sd units.

    ``z_ij = (mean_i | perturb j  -  ref_i) / s_i``, multiplied by the direction of the
    intervention (-1 for knockout/knock-down, +1 for overexpression/shift, the observed sign of
    j's own change otherwise), so ``G[i, j] > 0`` means j activates i. Regulators perturbed in
    several single-target conditions get the mean over them; regulators never perturbed alone
    score 0.

    Parameters
    ----------
    data
        :class:`~perturbode_core.data.dataset.PerturbationData`.
    conditions
        Use these conditions (default all); combinations are ignored.
    regulators
        Keep only these regulators' columns.
    reference
        ``"median"`` (default): the median over conditions of the condition means (robust to a
        noisy control and to shifts shared by all perturbations, e.g. batch or cell stress);
        ``"control"``: the control mean.
    min_cells
        Ignore perturbations with fewer cells.
    seed
        Unused (deterministic); accepted for a uniform interface.

    Returns
    -------
    numpy.ndarray
        p x p signed scores, diagonal 0.

    Notes
    -----
    ``s_i`` is the control standard deviation with a small fudge, ``sqrt(sd_i^2 + s0^2)``, ``s0`` =
    10% of the median sd (as in SAM), so genes silent in control do not give infinite scores. With
    fewer than 2 control cells (bulk data) the sd across condition means is used.
    """
    check_choice("reference", reference, ("median", "control"))
    conditions = _check_conditions(data, conditions, where="knockout_zscore_network")
    names, means = _condition_means(data, conditions)
    counts = pd.Series(data.labels).value_counts()
    ctrl = data.X[data.cells_of(data.control)].astype(np.float64)
    mu_c = ctrl.mean(0)
    ref = np.median(means, axis=0) if reference == "median" else mu_c
    sd = ctrl.std(0, ddof=1) if len(ctrl) >= 2 else means.std(0, ddof=1) if len(means) >= 2 else np.ones(data.n_genes)
    pos = sd[sd > 0]
    s0 = 0.1 * float(np.median(pos)) if pos.size else 1.0
    scale = np.sqrt(sd**2 + s0**2)

    index = {g: k for k, g in enumerate(data.gene_names)}
    G = np.zeros((data.n_genes, data.n_genes))
    n_per_reg = np.zeros(data.n_genes)
    for row, cond in enumerate(names):  # a loop over conditions, vectorised over genes
        ivs = data.interventions.get(cond, [])
        if cond == data.control or len(ivs) != 1 or counts.get(cond, 0) < min_cells:
            continue
        j = index[ivs[0].gene]
        z = (means[row] - ref) / scale
        G[:, j] += _direction(ivs[0], means[row, j] - mu_c[j]) * z
        n_per_reg[j] += 1
    hit = n_per_reg > 0
    G[:, hit] /= n_per_reg[hit]
    np.fill_diagonal(G, 0.0)
    G[:, ~_regulator_mask(data, regulators)] = 0.0
    return G


def genie3_network(data, *, conditions=None, regulators=None, method: str = "extratrees",
                   n_estimators: int = 50, max_features="sqrt", max_cells: int | None = 1000,
                   signed: bool = True, seed: int = 0, n_jobs: int = 1) -> np.ndarray:
    """GENIE3-style network: one tree ensemble per target, regulator importances as edge scores.

    Parameters
    ----------
    data
        :class:`~perturbode_core.data.dataset.PerturbationData`.
    conditions
        Use the cells of these conditions (default all).
    regulators
        Candidate regulators (default all genes).
    method
        ``"extratrees"`` (default, faster; as in GENIE3's ET variant) or ``"randomforest"``.
    n_estimators
        Trees per target.
    max_features
        Features tried per split (scikit-learn meaning; GENIE3 uses ``"sqrt"``).
    max_cells
        Subsample cells (seeded) for speed; None uses all.
    signed
        Give each importance the sign of the Pearson correlation of regulator and target (trees
        are unsigned; this only matters for sign accuracy, not for the ranking).
    seed
        Seed of the subsample and the trees.
    n_jobs
        Parallel jobs of each ensemble.

    Returns
    -------
    numpy.ndarray
        p x p, ``G[i, j]`` = importance of regulator j for target i (rows sum to 1 over
        regulators, as scikit-learn normalises importances), diagonal 0.

    Notes
    -----
    Genes are standardised first, as in GENIE3. When fitting target i, cells in which i itself
    was perturbed are left out: their level of i is set by the experiment, not by regulators.
    """
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    check_choice("method", method, ("extratrees", "randomforest"))
    conditions = _check_conditions(data, conditions, where="genie3_network")
    idx = _cell_subset(data, conditions, max_cells, seed)
    X = data.X[idx].astype(np.float64)
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    reg_mask = _regulator_mask(data, regulators)
    # which cells had each gene intervened on (a loop over conditions, not cells)
    index = {g: k for k, g in enumerate(data.gene_names)}
    labels = data.labels[idx]
    intervened = np.zeros((len(idx), data.n_genes), dtype=bool)
    for cond, ivs in data.interventions.items():
        rows = labels == cond
        if rows.any():
            for iv in ivs:
                intervened[rows, index[iv.gene]] = True
    Est = ExtraTreesRegressor if method == "extratrees" else RandomForestRegressor
    G = np.zeros((data.n_genes, data.n_genes))
    for i in range(data.n_genes):
        feats = np.flatnonzero(reg_mask & (np.arange(data.n_genes) != i))
        rows = ~intervened[:, i]
        if feats.size == 0 or rows.sum() < 3 or sd[i] <= 1e-12:
            continue
        model = Est(n_estimators=n_estimators, max_features=max_features, random_state=seed + i, n_jobs=n_jobs)
        model.fit(X[rows][:, feats], X[rows, i])
        G[i, feats] = model.feature_importances_
        if signed:
            r = X[rows][:, feats].T @ X[rows, i]
            G[i, feats] *= np.where(r < 0, -1.0, 1.0)
    return G


#: Network baselines by name: ``f(data, *, conditions, regulators, seed, ...) -> G``.
def knockout_zscore_control_network(data, **kwargs) -> np.ndarray:
    """:func:`knockout_zscore_network` against the control mean (``reference="control"``)."""
    return knockout_zscore_network(data, reference="control", **kwargs)


NETWORK_BASELINES = {
    "correlation": correlation_network,
    "knockout_zscore": knockout_zscore_network,
    "knockout_zscore_control": knockout_zscore_control_network,
    "genie3": genie3_network,
}


# ============================================================================ prediction baselines
class PredictionBaseline:
    """Predict a condition's cells as control cells shifted by a predicted mean change.

    Subclasses implement :meth:`predict_change`. After :meth:`fit`, attributes: ``gene_names``,
    ``x0`` (training control cells), ``control_mean``, ``effects`` (``{training perturbation:
    observed mean change}``), ``train_conditions``.
    """

    name = "baseline"

    def fit(self, data, train_conditions=None) -> "PredictionBaseline":
        """Learn from the training conditions of ``data`` (default: all conditions).

        Parameters
        ----------
        data
            :class:`~perturbode_core.data.dataset.PerturbationData`.
        train_conditions
            Condition labels to learn from (the control is always used).
        """
        conds = _check_conditions(data, train_conditions, where=f"{self.name} baseline")
        self.gene_names = list(data.gene_names)
        self._index = {g: k for k, g in enumerate(self.gene_names)}
        self._all_interventions = dict(data.interventions)
        # targets outside the measured genes (unmeasured regulators of a real screen) are known too
        self._known_targets = self.gene_names + sorted(data.perturbed_genes() - set(self.gene_names))
        self.x0 = np.asarray(data.control_cells(), dtype=np.float64)
        self.control_mean = self.x0.mean(0)
        perts = [c for c in conds if c != data.control]
        names, means = _condition_means(data, perts) if perts else ([], np.zeros((0, data.n_genes)))
        self.train_conditions = [data.control] + names
        self.effects = {c: means[k] - self.control_mean for k, c in enumerate(names)}
        self._train_ivs = {c: data.interventions[c] for c in names}
        self._fit()
        return self

    def _fit(self) -> None:
        """Subclass hook after the common statistics are ready."""

    def _require_fit(self):
        if not hasattr(self, "x0"):
            raise PerturbODEError(f"The {self.name} baseline is not fitted", where=self.name,
                                  fix="Call fit(data, train_conditions) first")

    def _require_perturbations(self):
        if not self.effects:
            raise PerturbODEError(f"The {self.name} baseline needs at least one training perturbation",
                                  where=self.name, fix="Keep some perturbations in the training set")

    def interventions_of(self, condition) -> list[Intervention]:
        """Targets of a condition label (as in the data), a spec ``"A+B:overexpression"``, or a list."""
        if isinstance(condition, (list, tuple)):
            ivs = list(condition)
        elif condition in self._all_interventions:
            ivs = self._all_interventions[condition]
        else:
            ivs = parse_spec(str(condition), where=f"{self.name} baseline")
        check_genes(ivs, self._known_targets, where=f"condition {condition!r}")
        return ivs

    def predict_change(self, condition) -> np.ndarray:
        """The predicted mean change vs control (genes,) of a condition."""
        raise NotImplementedError

    def predict(self, condition, x0=None) -> np.ndarray:
        """Predicted cells (cells x genes, float32): ``x0`` (default: the control cells) shifted.

        Parameters
        ----------
        condition
            A condition label of the data, a perturbation spec, or a list of Intervention.
        x0
            Starting cells (cells x genes); default the training control cells.
        """
        self._require_fit()
        x0 = self.x0 if x0 is None else np.asarray(x0, dtype=np.float64)
        if x0.ndim != 2 or x0.shape[1] != len(self.gene_names):
            raise PerturbODEError(f"x0 has shape {x0.shape}, expected cells x {len(self.gene_names)} genes",
                                  where="x0", fix="Pass cells in the model's gene order")
        return (x0 + self.predict_change(condition)[None, :]).astype(np.float32)


class NoChangeBaseline(PredictionBaseline):
    """No change: the control cells themselves (the 'control mean' baseline)."""

    name = "no_change"

    def predict_change(self, condition) -> np.ndarray:
        """Predicted mean change of ``condition`` versus control: zero for every gene.

        Parameters
        ----------
        condition
            A spec string or a list of Intervention (its targets are still checked).

        Returns
        -------
        numpy.ndarray
            Zeros, one per gene.
        """
        self._require_fit()
        self.interventions_of(condition)  # still check the targets
        return np.zeros(len(self.gene_names))


class MeanShiftBaseline(PredictionBaseline):
    """Control cells plus the average mean change over all training perturbations."""

    name = "mean_shift"

    def _fit(self):
        self.mean_change = np.mean(list(self.effects.values()), axis=0) if self.effects else None

    def predict_change(self, condition) -> np.ndarray:
        """Predicted mean change of ``condition``: the average change over all training perturbations.

        Returns
        -------
        numpy.ndarray
            One value per gene (data units).
        """
        self._require_fit()
        self._require_perturbations()
        self.interventions_of(condition)
        return self.mean_change.copy()


class LinearBaseline(PredictionBaseline):
    """Linear model of perturbation effects on gene embeddings (Ahlmann-Eltze et al. 2024).

    With ``Y`` the genes x training-perturbations matrix of mean changes, ``b`` its row means and
    ``E`` (genes x K) the gene embedding from the top-K principal components of ``Y - b``
    (``E = U_K S_K``: how each gene responds across the training perturbations), a perturbation
    of targets ``S`` with directions ``d_j`` (-1 knockout/knock-down, +1 overexpression/shift) is
    embedded as ``e = sum_j d_j E[j]``, and

        change = b + E W (e - e_mean),   W = argmin |Y - b - E W (P - e_mean)^T|^2 + ridge |W|^2,

    solved in closed form with ``P`` the training perturbations' embeddings (rows) and ``e_mean``
    their mean (centring makes the model affine, so ``b`` is an average perturbation's change). Any gene has an
    embedding, so held-out targets get a prediction. The predicted change of each *target* gene
    itself is then replaced by what training targets of the same type did to themselves: for
    hard types (knockout, knock-down, clamp) a regression of their own change on their control
    mean (a knockout takes a gene to ~0 whatever its level), for soft types the mean own change.
    Targets of a type absent from training keep the linear prediction.

    Parameters
    ----------
    n_components
        K (capped by the number of genes and training perturbations).
    ridge
        Ridge penalty relative to the scale of ``E`` and ``P`` (scale-free).
    """

    name = "linear"

    def __init__(self, n_components: int = 10, ridge: float = 0.01):
        self.n_components = int(n_components)
        self.ridge = float(ridge)

    def _direction_of(self, iv: Intervention) -> float:
        own = self._own_change_of(iv)
        return _direction(iv, own if np.isfinite(own) else 0.0)

    def _embed(self, ivs) -> np.ndarray:
        # an unmeasured target has no gene embedding: it contributes nothing beyond the average change b
        return sum((self._direction_of(iv) * self.E[self._index[iv.gene]] for iv in ivs if iv.gene in self._index),
                   np.zeros(self.E.shape[1]))

    def _fit(self):
        if not self.effects:
            return
        conds = list(self.effects)
        Y = np.stack([self.effects[c] for c in conds], axis=1)  # genes x perts
        self.b = Y.mean(1)
        Yc = Y - self.b[:, None]
        U, S, _ = np.linalg.svd(Yc, full_matrices=False)
        K = int(min(self.n_components, (S > 1e-10 * max(S.max(), 1e-300)).sum()))
        self.E = U[:, :K] * S[:K]
        # own-change model per intervention type (targets of single training perturbations)
        own: dict[str, list] = {}
        for c in conds:
            ivs = self._train_ivs[c]
            if len(ivs) == 1 and ivs[0].gene in self._index:
                j = self._index[ivs[0].gene]
                own.setdefault(ivs[0].kind, []).append((self.control_mean[j], self.effects[c][j]))
        self._own = {}
        for kind, pairs in own.items():
            mu, ch = np.array(pairs).T
            # hard interventions set the target relative to (or regardless of) its control level:
            # regress on it; soft ones add a roughly gene-independent push: use the mean
            if kind in PERFECT_TYPES and len(mu) >= 3 and mu.std() > 1e-8:
                slope, intercept = np.polyfit(mu, ch, 1)
            else:
                slope, intercept = 0.0, float(ch.mean())
            self._own[kind] = (float(slope), float(intercept))
        if K == 0:
            self.W = np.zeros((0, 0))
            return
        P = np.stack([self._embed(self._train_ivs[c]) for c in conds])  # perts x K
        # centre the embeddings so that the model is affine: b is the change of an average
        # perturbation, and E W (e - mean e) the departure from it
        self.p_mean = P.mean(0)
        P = P - self.p_mean
        lam_e = self.ridge * np.trace(self.E.T @ self.E) / K
        lam_p = self.ridge * max(np.trace(P.T @ P) / K, 1e-12)
        left = np.linalg.solve(self.E.T @ self.E + lam_e * np.eye(K), self.E.T @ Yc)  # K x perts
        self.W = np.linalg.solve(P.T @ P + lam_p * np.eye(K), (left @ P).T).T  # K x K

    def _own_change_of(self, iv: Intervention) -> float:
        if not hasattr(self, "_own") or iv.kind not in self._own or iv.gene not in self._index:
            return np.nan
        slope, intercept = self._own[iv.kind]
        return slope * self.control_mean[self._index[iv.gene]] + intercept

    def predict_change(self, condition) -> np.ndarray:
        """Predicted mean change of ``condition`` from the linear model of the training effects.

        Returns
        -------
        numpy.ndarray
            One value per gene (data units).
        """
        self._require_fit()
        self._require_perturbations()
        ivs = self.interventions_of(condition)
        change = self.b.copy()
        if self.W.size:
            change += self.E @ (self.W @ (self._embed(ivs) - self.p_mean))
        for iv in ivs:
            own = self._own_change_of(iv)
            if np.isfinite(own):
                change[self._index[iv.gene]] = own
        return change


class AdditiveBaseline(PredictionBaseline):
    """Sum of single-target effects: exact observed effects where the single is in training.

    For each target of the condition, the observed mean change of the training single-target
    condition(s) with the same gene and type (any dose when none matches the dose) is used; a
    single of the same gene with another type is never used (a knockout is not an overexpression);
    a target never perturbed alone in training falls back to the ``fallback`` baseline's
    single-target prediction (default the linear baseline). The additive baseline is the
    reference for combinations: a model that beats it predicts genetic interactions.

    Parameters
    ----------
    fallback
        Name in :data:`PREDICTION_BASELINES` used for targets without a training single.
    """

    name = "additive"

    def __init__(self, fallback: str = "linear"):
        check_choice("fallback", fallback, ("linear", "mean_shift", "no_change"))
        self.fallback = fallback

    def fit(self, data, train_conditions=None) -> "AdditiveBaseline":
        """Learn the single-target effects of ``data`` (and fit the fallback for unseen targets).

        Parameters
        ----------
        data
            A PerturbationData.
        train_conditions
            Conditions to learn from (default: all).

        Returns
        -------
        AdditiveBaseline
            Itself, fitted.
        """
        super().fit(data, train_conditions)
        self._fallback_model = (PREDICTION_BASELINES[self.fallback]().fit(data, train_conditions)
                                if self.effects else None)
        return self

    def _fit(self):
        self._singles: dict = {}
        for c, ivs in self._train_ivs.items():
            if len(ivs) == 1:
                self._singles.setdefault((ivs[0].gene, ivs[0].kind, ivs[0].value), []).append(self.effects[c])
                self._singles.setdefault((ivs[0].gene, ivs[0].kind, None), []).append(self.effects[c])

    def _single(self, iv: Intervention) -> np.ndarray:
        for key in ((iv.gene, iv.kind, iv.value), (iv.gene, iv.kind, None)):
            if key in self._singles:
                return np.mean(self._singles[key], axis=0)
        self._require_perturbations()
        return self._fallback_model.predict_change([iv])

    def predict_change(self, condition) -> np.ndarray:
        """Predicted mean change of ``condition``: the sum of its targets' single-perturbation effects.

        Returns
        -------
        numpy.ndarray
            One value per gene (data units).
        """
        self._require_fit()
        ivs = self.interventions_of(condition)
        return np.sum([self._single(iv) for iv in ivs], axis=0)


#: Prediction baselines by name (classes; instantiate, then ``fit(data, train)``).
PREDICTION_BASELINES = {
    "no_change": NoChangeBaseline,
    "mean_shift": MeanShiftBaseline,
    "linear": LinearBaseline,
    "additive": AdditiveBaseline,
}


def fit_prediction_baselines(data, train_conditions, *, names=None) -> dict:
    """Fit several prediction baselines on the same training conditions.

    Parameters
    ----------
    data, train_conditions
        As in :meth:`PredictionBaseline.fit`.
    names
        Baselines to fit (default all in :data:`PREDICTION_BASELINES`).

    Returns
    -------
    dict
        ``{name: fitted baseline}``.
    """
    names = list(PREDICTION_BASELINES) if names is None else list(names)
    for n in names:
        check_choice("prediction baseline", n, tuple(PREDICTION_BASELINES))
    return {n: PREDICTION_BASELINES[n]().fit(data, train_conditions) for n in names}
