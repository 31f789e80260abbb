"""Metrics against hand-computed answers (issue 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.edges import edge_table, read_edge_list
from perturbode_core.tools.metrics import (consensus_edges, energy_distance, interventional_check, metric_spread,
                                           metrics_frame, mmd, network_metrics, score_prediction, score_predictions,
                                           w2_distance)
from perturbode_core.tools.metrics.interventional import _wasserstein_columns

GENES = ["A", "B", "C", "D"]
TRUTH = pd.DataFrame({"source": ["A", "B", "C"], "target": ["B", "C", "D"], "sign": [1, -1, 1]})


def _ranked_matrix(true_high: bool) -> np.ndarray:
    """4 x 4 G with distinct |scores|: the 3 true edges on top (or at the bottom) of the 12 pairs."""
    G = np.zeros((4, 4))
    off = [(i, j) for i in range(4) for j in range(4) if i != j]
    true = {(1, 0), (2, 1), (3, 2)}  # G[target, source]
    others = [e for e in off if e not in true]
    order = (sorted(true) + others) if true_high else (others + sorted(true))
    for rank, (i, j) in enumerate(order):
        G[i, j] = 12 - rank  # 12 .. 1, all distinct
    return G


# ----------------------------------------------------------------------------- network metrics
def test_perfect_ranking_gives_aupr_and_auroc_one():
    m = network_metrics(_ranked_matrix(True), TRUTH, GENES)
    assert m["aupr"] == pytest.approx(1.0)
    assert m["auroc"] == pytest.approx(1.0)
    assert m["early_precision"] == pytest.approx(1.0)
    assert (m["n_true_edges"], m["n_candidates"]) == (3, 12)
    assert m["aupr_ratio"] == pytest.approx(1.0 / (3 / 12))
    assert m["precision"] == m["recall"] == m["f1"] == pytest.approx(1.0)


def test_reversed_ranking_gives_the_minimum():
    m = network_metrics(_ranked_matrix(False), TRUTH, GENES)
    # positives at ranks 10, 11, 12 of 12: AP = (1/10 + 2/11 + 3/12) / 3
    assert m["aupr"] == pytest.approx((1 / 10 + 2 / 11 + 3 / 12) / 3)
    assert m["auroc"] == pytest.approx(0.0)
    assert m["early_precision"] == pytest.approx(0.0)


def test_early_precision_hand_case_and_ties():
    G = _ranked_matrix(False)
    G[1, 0] = 100.0  # A -> B (true) now first; top 3 = {A->B, two false}
    m = network_metrics(G, TRUTH, GENES)
    assert m["early_precision"] == pytest.approx(1 / 3)
    # an all-zero prediction: every pair tied, expected precision = edge density, not index order
    z = network_metrics(np.zeros((4, 4)), TRUTH, GENES)
    assert z["early_precision"] == pytest.approx(3 / 12)
    assert z["auroc"] == pytest.approx(0.5)


def test_precision_recall_f1_at_cut():
    G = _ranked_matrix(True)  # true edges have scores 12, 11, 10; next best is 9
    m = network_metrics(G, TRUTH, GENES, top_k=2)
    assert (m["precision"], m["recall"]) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert m["f1"] == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
    m = network_metrics(G, TRUTH, GENES, threshold=9)  # 4 called, 3 true
    assert m["n_called"] == 4
    assert (m["precision"], m["recall"]) == (pytest.approx(0.75), pytest.approx(1.0))
    m = network_metrics(G, TRUTH, GENES, density=0.5)  # 6 of 12 called
    assert m["n_called"] == 6 and m["precision"] == pytest.approx(0.5)
    with pytest.raises(PerturbODEError, match="at most one"):
        network_metrics(G, TRUTH, GENES, top_k=2, threshold=1.0)


def test_sign_accuracy_hand_case():
    truth = pd.DataFrame({"source": ["A", "B", "C", "A"], "target": ["B", "C", "D", "D"],
                          "sign": ["+", "-", "activation", ""]})
    G = np.zeros((4, 4))
    G[1, 0] = 0.5   # A -> B, true +, predicted +: right
    G[2, 1] = 0.3   # B -> C, true -, predicted +: wrong
    # C -> D, true +, predicted 0: wrong (no sign); A -> D sign unknown: not counted
    G[3, 0] = -2.0
    m = network_metrics(G, truth, GENES)
    assert m["n_signed_true"] == 3
    assert m["sign_accuracy"] == pytest.approx(1 / 3)


def test_regulator_restriction_and_dropped_truth():
    truth = pd.concat([TRUTH, pd.DataFrame({"source": ["X", "A"], "target": ["A", "A"], "sign": [1, 1]})])
    m = network_metrics(_ranked_matrix(True), truth, GENES, regulators=["A", "B"])
    assert m["n_truth_dropped"] == 1          # X is not a model gene
    assert m["n_truth_self_loops"] == 1       # A -> A ignored
    assert m["n_truth_outside_regulators"] == 1  # C -> D: C not perturbed
    assert m["n_true_edges"] == 2 and m["n_candidates"] == 2 * 3 and m["n_regulators"] == 2
    assert m["aupr"] == pytest.approx(1.0)


def test_edge_table_input_matches_matrix():
    G = _ranked_matrix(False)
    G[2, 1] *= -1
    table = edge_table(G, GENES, nonzero=True)[["source", "target", "weight"]]
    assert list(table.columns) == ["source", "target", "weight"]
    assert table.iloc[0]["weight"] == 12 and len(table) == 12
    a = network_metrics(G, TRUTH, GENES)
    b = network_metrics(table, TRUTH, GENES)
    assert a == pytest.approx(b, nan_ok=True)
    row = metrics_frame(a, method="x")
    assert row.shape[0] == 1 and row.columns[0] == "method"


def test_network_metrics_rejects_bad_matrix():
    with pytest.raises(PerturbODEError, match="gene names"):
        network_metrics(np.zeros((4, 4)), TRUTH, GENES[:3])
    with pytest.raises(PerturbODEError, match="NaN"):
        network_metrics(np.full((4, 4), np.nan), TRUTH, GENES)


# ----------------------------------------------------------------------------- edge lists
def test_read_edge_list_accepts_sign_spellings(tmp_path):
    f = tmp_path / "edges.csv"
    f.write_text("Source,Target,Sign\nA,B,+1\nB,C,-1\nC,D,activation\nA,D,repression\nD,A,+\nB,D,-\n"
                 "C,A,\nA,B,+\n")
    t = read_edge_list(f)
    assert list(t.columns) == ["source", "target", "sign"]
    assert len(t) == 7  # the repeated A,B collapses
    assert t["sign"].tolist()[:6] == [1, -1, 1, -1, 1, -1] and np.isnan(t["sign"].iloc[6])
    tsv = tmp_path / "edges.tsv"
    tsv.write_text("regulator\ttarget\nA\tB\n")
    t = read_edge_list(tsv)
    assert t[["source", "target"]].values.tolist() == [["A", "B"]] and t["sign"].isna().all()


def test_conflicting_signs_become_unknown(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("source,target,sign\nA,B,+\nA,B,-\n")
    assert np.isnan(read_edge_list(f)["sign"].iloc[0])


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("source,target\n", "no edges"),
    ("from_gene,to_gene\nA,B\n", "Missing column"),
    ("source,weight\nA,1\n", "Missing column\\(s\\) target"),
    ("source,target,sign\nA,B,maybe\n", "Unrecognised sign 'maybe'.*line 2"),
    ("source,target\nA,B\n,C\n", "empty source.*line 3"),
    ("source,target\nA,B,C,D\n\"x\n", "Could not parse"),
])
def test_bad_edge_lists_give_clear_errors(tmp_path, content, message):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(PerturbODEError, match=message) as info:
        read_edge_list(f)
    assert str(f) in str(info.value)


def test_edge_list_missing_or_binary_file(tmp_path):
    with pytest.raises(PerturbODEError, match="not found"):
        read_edge_list(tmp_path / "nope.csv")
    f = tmp_path / "bin.csv"
    f.write_bytes(b"\xff\xfe\x00\x81\x82" * 20)
    with pytest.raises(PerturbODEError):
        read_edge_list(f)


# ----------------------------------------------------------------------------- distances
def test_w2_identical_zero_and_translation_exact():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    assert w2_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    m = np.array([1.0, -2.0, 0.5, 0.0, 2.0])
    # a translation's optimal coupling is the identity: W2 = |m| exactly
    assert w2_distance(x, x + m) == pytest.approx(np.linalg.norm(m), rel=1e-9)


def test_w2_between_shifted_gaussians_matches_formula():
    rng = np.random.default_rng(1)
    m = np.array([3.0, 0.0])
    x = rng.standard_normal((600, 2))
    y = rng.standard_normal((600, 2)) + m
    # W2(N(0, I), N(m, I)) = |m|; finite samples add a small positive bias
    w = w2_distance(x, y)
    assert 3.0 <= w <= 3.2
    # exact identity for any two samples: W2^2 = |mean difference|^2 + W2^2 of the centred samples
    centred = w2_distance(x - x.mean(0), y - y.mean(0))
    assert w**2 == pytest.approx(np.sum((y.mean(0) - x.mean(0)) ** 2) + centred**2, rel=1e-6)
    # subsampling is seeded: same answer twice
    assert w2_distance(x, y, max_cells=100, seed=3) == w2_distance(x, y, max_cells=100, seed=3)


def test_w2_one_gene_matches_sorted_coupling():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((50, 1)), rng.exponential(size=(50, 1))
    expected = np.sqrt(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2))
    assert w2_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_energy_and_mmd_zero_identical_positive_shifted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 4))
    y = x + np.array([1.5, 0, 0, 0])
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, y) > 0.5
    assert mmd(x, y) > 0.05
    assert mmd(x, x + 3.0) > mmd(x, y)  # grows with the shift
    assert abs(mmd(x, rng.standard_normal((150, 4)), unbiased=True)) < 0.02


def test_energy_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(80), rng.standard_normal(70) + 1.0
    ours = energy_distance(x[:, None], y[:, None], max_cells=None)
    # scipy's 1-D energy distance is sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|), the same statistic
    assert ours == pytest.approx(scipy.stats.energy_distance(x, y), rel=1e-9)


def test_score_prediction_hand_case():
    rng = np.random.default_rng(5)
    control = rng.standard_normal((100, 30))
    delta = np.zeros(30)
    delta[:3] = [2.0, -1.0, 0.5]
    obs = control + delta
    perfect = score_prediction(obs, obs, control, top_n=3)
    assert perfect["w2"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["pearson_delta"] == pytest.approx(1.0)
    assert perfect["pearson_delta_top"] == pytest.approx(1.0)
    assert perfect["mse_mean"] == pytest.approx(0.0, abs=1e-20)
    half = score_prediction(control + delta / 2, obs, control, top_n=3)
    assert half["pearson_delta"] == pytest.approx(1.0)  # right direction, wrong size
    assert half["mse_mean"] == pytest.approx(np.mean((delta / 2) ** 2))
    assert half["mse_mean_top"] == pytest.approx(np.mean((delta[:3] / 2) ** 2))
    assert half["w2"] == pytest.approx(np.linalg.norm(delta / 2), rel=1e-9)
    flipped = score_prediction(control - delta, obs, control, top_n=3)
    assert flipped["pearson_delta_top"] == pytest.approx(-1.0)
    none = score_prediction(control, obs, control)
    assert np.isnan(none["pearson_delta"])  # a constant predicted change has no correlation
    with pytest.raises(PerturbODEError, match="genes"):
        score_prediction(control[:, :5], obs, control)
    with pytest.raises(PerturbODEError, match="NaN or infinite"):
        score_prediction(np.full_like(obs, np.inf), obs, control)


# ----------------------------------------------------------------------------- data-based
def test_wasserstein_columns_matches_scipy():
    rng = np.random.default_rng(6)
    u, v = rng.standard_normal((40, 3)), rng.exponential(size=(25, 3))
    expected = [scipy.stats.wasserstein_distance(u[:, k], v[:, k]) for k in range(3)]
    assert _wasserstein_columns(u, v) == pytest.approx(expected, rel=1e-10)


def test_interventional_check_true_edges_beat_random(sem_data):
    data, truth = sem_data()
    edges = truth.assign(weight=truth["sign"].astype(float))
    summary, table = interventional_check(data, edges, n_random=40, seed=0, return_table=True)
    assert summary["n_tested"] == 4
    assert summary["share_supported"] == 1.0
    assert summary["random_share_supported"] < 0.4
    assert summary["mean_wasserstein"] > 5 * summary["random_mean_wasserstein"]
    assert summary["sign_agreement"] == 1.0  # knockouts lower activators' targets, raise repressors'
    assert set(table.columns) >= {"p_value", "q_value", "wasserstein", "supported"}
    # wrong edges (reversed direction: children do not move parents) are not supported
    rev = interventional_check(data, edges.rename(columns={"source": "target", "target": "source"}))
    assert rev["share_supported"] <= 0.25
    # a matrix works too; unperturbed regulators are not tested
    G = np.zeros((10, 10))
    G[1, 0] = 1.0
    G[0, 9] = 1.0  # g9 was never perturbed
    m = interventional_check(data, G, data.gene_names)
    assert (m["n_edges"], m["n_tested"]) == (2, 1)


def test_interventional_check_needs_single_perturbations(sem_data):
    data, truth = sem_data()
    only_double = data.subset_conditions(["g0+g2"])
    with pytest.raises(PerturbODEError, match="single-gene perturbation"):
        interventional_check(only_double, truth)


def test_score_predictions_table(sem_data):
    data, _ = sem_data()
    obs = {c: data.X[data.cells_of(c)] for c in ["g0", "g2"]}
    table = score_predictions(obs, data)
    assert table["condition"].tolist() == ["g0", "g2", "mean"]
    assert table["w2"].iloc[:2].to_numpy() == pytest.approx([0, 0], abs=1e-6)
    with pytest.raises(PerturbODEError, match="No prediction"):
        score_predictions(obs, data, ["g0", "g4"])
    with pytest.raises(PerturbODEError, match="not in the data"):
        score_predictions({"zz": obs["g0"]}, data)


# ----------------------------------------------------------------------------- stability
def test_consensus_edges_hand_case():
    genes = ["A", "B", "C"]
    g1 = np.array([[0, 5, 0], [0, 0, 0], [0, -4, 0]], float)   # B->A 5, B->C -4
    g2 = np.array([[0, 6, 0], [1, 0, 0], [0, 0, 0]], float)    # B->A 6, A->B 1
    g3 = np.array([[0, 4, 0], [0, 0, 0], [0, -3, 0]], float)   # B->A 4, B->C -3
    t = consensus_edges([g1, g2, g3], genes, top_k=2)
    rows = {(r.source, r.target): r for r in t.itertuples()}
    assert rows[("B", "A")].frequency == 1.0 and rows[("B", "A")].mean_weight == pytest.approx(5.0)
    assert rows[("B", "C")].frequency == pytest.approx(2 / 3)
    assert rows[("B", "C")].mean_weight == pytest.approx(-7 / 3)
    assert rows[("A", "B")].frequency == pytest.approx(1 / 3)
    assert set(rows) == {("B", "A"), ("B", "C"), ("A", "B")}
    assert t.iloc[0][["source", "target"]].tolist() == ["B", "A"]


def test_top_k_share_is_the_one_seed_support_both_consensus_tables_read():
    """Ties at the cut are kept, zeros and self-loops never count; the stability table's
    frequency and the ensemble's confidence are the same numbers."""
    from perturbode_core.tools.metrics.stability import top_k_share
    from perturbode_core.train.ensemble import consensus_edge_table

    g1 = np.array([[9, 5, 0], [0, 0, 0], [0, -4, 0]], float)   # a self-loop of 9 never counts
    g2 = np.array([[0, 6, 0], [1, 0, 0], [0, 1, 0]], float)    # A->B and B->C tie at the cut: both kept
    share = top_k_share(np.stack([g1, g2]), 2)
    assert share.tolist() == [[0, 1, 0], [0.5, 0, 0], [0, 1, 0]]
    assert top_k_share(np.stack([g1]), 100)[0, 0] == 0 and top_k_share(np.stack([g1]), 100)[2, 1] == 1
    genes = ["A", "B", "C"]
    freq = consensus_edges([g1, g2], genes, top_k=2).set_index(["source", "target"])["frequency"]
    conf = consensus_edge_table([g1, g2], genes, keep=2).set_index(["source", "target"])["confidence"]
    assert freq.to_dict() == {k: v for k, v in conf.to_dict().items() if v > 0}


def test_metric_spread():
    s = metric_spread([{"aupr": 1.0, "note": "x"}, {"aupr": 2.0}, {"aupr": 3.0}])
    assert s.loc["aupr", "mean"] == pytest.approx(2.0)
    assert s.loc["aupr", "std"] == pytest.approx(1.0)
    assert (s.loc["aupr", "min"], s.loc["aupr", "max"], s.loc["aupr", "n"]) == (1.0, 3.0, 3)
    assert "note" not in s.index


def test_member_checkpoints_find_a_runs_seeds_in_numeric_order(tmp_path):
    from perturbode_core.train.ensemble import member_checkpoints

    run = tmp_path / "run"
    for name in ("model.pt", "seed_10/model.pt", "seed_9/model.pt", "seed_x/model.pt", "seed_11/other.pt"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"")
    assert member_checkpoints(run / "model.pt") == [run / "seed_9" / "model.pt", run / "seed_10" / "model.pt"]
    assert member_checkpoints(run / "seed_10" / "model.pt") == [run / "seed_10" / "model.pt"]  # one seed, named
    assert member_checkpoints(run / "seed_11" / "other.pt") == [run / "seed_11" / "other.pt"]
    single = tmp_path / "single"
    for name in ("model.pt", "seed_3/model.pt"):  # one member is no ensemble
        (single / name).parent.mkdir(parents=True, exist_ok=True)
        (single / name).write_bytes(b"")
    assert member_checkpoints(single / "model.pt") == [single / "model.pt"]
