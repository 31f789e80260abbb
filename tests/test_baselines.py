"""Network and prediction baselines on cases with known answers (issue 4)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbode_core.tools.baselines import (NETWORK_BASELINES, PREDICTION_BASELINES, AdditiveBaseline, LinearBaseline,
                                       MeanShiftBaseline, NoChangeBaseline, correlation_network,
                                       fit_prediction_baselines, genie3_network, knockout_zscore_network)
from perturbode_core.data.dataset import from_anndata
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.metrics import network_metrics, score_prediction


def _data(blocks: dict, genes, **kwargs):
    """PerturbationData from ``{condition: cells x genes array}``."""
    X = np.vstack(list(blocks.values())).astype(np.float32)
    labels = [c for c, b in blocks.items() for _ in range(len(b))]
    adata = ad.AnnData(X, obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(X))]),
                       var=pd.DataFrame(index=genes))
    return from_anndata(adata, **kwargs)


def test_knockout_zscore_hand_case():
    genes = ["A", "B", "C"]
    ctrl = np.repeat(np.arange(1.0, 5.0)[:, None], 3, axis=1) + np.array([10.0, 20.0, 30.0])
    ko_a = ctrl.copy()
    ko_a[:, 0] = 0.0
    ko_a[:, 1] -= 2.0          # A activates B: knocking A out lowers B by 2
    ko_c = ctrl.copy()
    ko_c[:, 2] = 0.0           # C regulates nothing
    data = _data({"control": ctrl, "A": ko_a, "C": ko_c}, genes)
    sd = np.std([1, 2, 3, 4], ddof=1)
    scale = np.sqrt(sd**2 + (0.1 * sd) ** 2)
    for reference in ("control", "median"):
        G = knockout_zscore_network(data, reference=reference)
        assert G[1, 0] == pytest.approx(2.0 / scale, rel=1e-5)  # signed: activation is positive
        assert G[2, 0] == pytest.approx(0.0, abs=1e-5)
        assert np.allclose(G[:, 1], 0) and np.allclose(G[:, 2], 0, atol=1e-5)  # B never perturbed
        assert np.allclose(np.diag(G), 0)
    with pytest.raises(PerturbODEError, match="reference"):
        knockout_zscore_network(data, reference="mean")


def test_knockout_zscore_recovers_sem_edges_with_signs(sem_data):
    data, truth = sem_data()
    G = knockout_zscore_network(data)
    m = network_metrics(G, truth, data.gene_names, regulators=[f"g{k}" for k in range(8)])
    assert m["auroc"] > 0.95
    assert m["sign_accuracy"] == 1.0
    assert G[3, 2] < 0 < G[1, 0]  # g2 represses g3, g0 activates g1


def test_correlation_network_is_absolute_pearson(sem_data):
    data, _ = sem_data()
    G = correlation_network(data)
    C = np.abs(np.corrcoef(data.X.T.astype(np.float64)))
    np.fill_diagonal(C, 0)
    assert G == pytest.approx(C, abs=1e-6)
    signed = correlation_network(data, signed=True)
    assert signed[3, 2] < 0 and np.abs(signed) == pytest.approx(G)
    only = correlation_network(data, regulators=["g0"])
    assert np.count_nonzero(only[:, 1:]) == 0 and only[1, 0] == pytest.approx(G[1, 0])


def test_genie3_ranks_true_edges_first(sem_data):
    data, truth = sem_data()
    G = genie3_network(data, n_estimators=20, max_cells=400, seed=0)
    m = network_metrics(G, truth, data.gene_names)
    assert m["auroc"] > 0.9 and m["early_precision"] >= 0.5
    assert G[3, 2] < 0 < G[1, 0]  # signed by correlation
    again = genie3_network(data, n_estimators=20, max_cells=400, seed=0)
    assert np.array_equal(G, again)  # seeded
    restricted = genie3_network(data, regulators=["g0", "g2"], n_estimators=10, max_cells=200)
    assert np.count_nonzero(restricted[:, 3:]) == 0 and np.count_nonzero(restricted[:, 1]) == 0


def test_network_registry(sem_data):
    assert set(NETWORK_BASELINES) == {"correlation", "knockout_zscore", "knockout_zscore_control", "genie3"}
    data, _ = sem_data(n=20)
    for name, f in NETWORK_BASELINES.items():
        G = f(data, seed=0) if name != "genie3" else f(data, seed=0, n_estimators=5, max_cells=100)
        assert G.shape == (10, 10) and np.all(np.diag(G) == 0), name


# ----------------------------------------------------------------------------- prediction baselines
def _additive_data(seed=0, n=40, p=6):
    rng = np.random.default_rng(seed)
    genes = [f"g{k}" for k in range(p)]
    C = 4 + rng.standard_normal((n, p))
    dA, dB, dD = rng.standard_normal(p), rng.standard_normal(p), rng.standard_normal(p)
    blocks = {"control": C, "g0": C + dA, "g1": C + dB, "g0+g1": C + dA + dB, "g3": C + dD}
    return _data(blocks, genes, default_intervention="shift"), dA, dB, dD


def test_additive_baseline_is_exact_on_additive_effects():
    data, dA, dB, _ = _additive_data()
    model = AdditiveBaseline().fit(data, ["control", "g0", "g1", "g3"])
    pred = model.predict("g0+g1")
    obs = data.X[data.cells_of("g0+g1")]
    assert pred.shape == obs.shape and pred.dtype == np.float32
    assert np.allclose(pred, obs, atol=1e-5)
    scores = score_prediction(pred, obs, data.control_cells())
    assert scores["w2"] < 1e-3 and scores["pearson_delta"] == pytest.approx(1.0)
    # a target without a training single falls back on the linear baseline
    lin = LinearBaseline().fit(data, ["control", "g0", "g1", "g3"])
    expected = model.effects["g0"] + lin.predict_change("g4:shift")
    assert model.predict_change("g0:shift+g4:shift") == pytest.approx(expected)


def test_no_change_and_mean_shift_hand_case():
    data, dA, dB, dD = _additive_data()
    train = ["control", "g0", "g1", "g3"]
    ctrl = data.control_cells()
    assert np.array_equal(NoChangeBaseline().fit(data, train).predict("g0+g1"), ctrl)
    ms = MeanShiftBaseline().fit(data, train).predict("g0+g1")
    assert ms == pytest.approx(ctrl + (dA + dB + dD) / 3, abs=1e-4)
    x0 = ctrl[:5] + 1.0
    assert MeanShiftBaseline().fit(data, train).predict("g0", x0=x0) == pytest.approx(x0 + (dA + dB + dD) / 3,
                                                                                       abs=1e-4)


def test_linear_baseline_generalises_to_unseen_targets():
    """Effects of a rank-2 linear system: perturbing j moves genes by -V V[j]."""
    rng = np.random.default_rng(0)
    p, n = 20, 30
    V = rng.standard_normal((p, 2))
    Y = -V @ V.T
    C = 5 + 0.2 * rng.standard_normal((n, p))
    genes = [f"g{k}" for k in range(p)]
    blocks = {"control": C, **{genes[j]: C + Y[:, j] for j in range(12)}}
    data = _data(blocks, genes, default_intervention="shift")
    train = ["control"] + genes[2:12]
    lin = LinearBaseline().fit(data, train)
    mean_shift = MeanShiftBaseline().fit(data, train)
    for j in (0, 1):
        off = np.arange(p) != j  # the target's own change is set by the own-change rule
        pc = lin.predict_change(genes[j])
        assert np.corrcoef(pc[off], Y[off, j])[0, 1] > 0.99
        assert np.abs(pc[off] - Y[off, j]).max() < 0.1
        assert np.corrcoef(mean_shift.predict_change(genes[j])[off], Y[off, j])[0, 1] < 0.5


def test_linear_baseline_knockout_target_goes_to_zero(sem_data):
    data, _ = sem_data()
    train = ["control"] + [f"g{k}" for k in range(1, 8)]
    lin = LinearBaseline().fit(data, train)
    change = lin.predict_change("g0")
    observed = data.X[data.cells_of("g0")].mean(0) - data.control_cells().mean(0)
    assert change[0] == pytest.approx(observed[0], abs=0.1)  # ~ -3: the knocked-out gene itself


def test_prediction_baseline_errors():
    data, *_ = _additive_data()
    with pytest.raises(PerturbODEError, match="not fitted"):
        MeanShiftBaseline().predict("g0")
    with pytest.raises(PerturbODEError, match="at least one training perturbation"):
        MeanShiftBaseline().fit(data, ["control"]).predict("g0")
    model = LinearBaseline().fit(data, ["control", "g0", "g1"])
    with pytest.raises(PerturbODEError, match="not in the model's genes"):
        model.predict("NOPE")
    with pytest.raises(PerturbODEError, match="x0 has shape"):
        model.predict("g0", x0=np.zeros((3, 2)))
    with pytest.raises(PerturbODEError, match="not in the data"):
        LinearBaseline().fit(data, ["g0", "zz"])


def test_prediction_registry_and_fit_all():
    data, *_ = _additive_data()
    assert set(PREDICTION_BASELINES) == {"no_change", "mean_shift", "linear", "additive"}
    fitted = fit_prediction_baselines(data, ["control", "g0", "g1"])
    for name, model in fitted.items():
        pred = model.predict("g0+g1")
        assert pred.shape == (len(data.control_cells()), data.n_genes), name
        assert model.train_conditions == ["control", "g0", "g1"]
    with pytest.raises(PerturbODEError, match="Unknown prediction baseline"):
        fit_prediction_baselines(data, ["control", "g0"], names=["deep"])


def test_additive_never_uses_a_single_of_another_type():
    """A held-out knockout must not borrow the observed effect of the same gene's overexpression."""
    data, dA, dB, dD = _additive_data()
    model = AdditiveBaseline().fit(data, ["control", "g0", "g1", "g3"])  # all are shifts
    lin = LinearBaseline().fit(data, ["control", "g0", "g1", "g3"])
    knockout = model.predict_change("g0:knockout")
    assert not np.allclose(knockout, model.effects["g0"])
    assert knockout == pytest.approx(lin.predict_change("g0:knockout"))
    # another dose of the same type still uses the observed single
    assert model.predict_change("g0:shift=2") == pytest.approx(model.effects["g0"])
