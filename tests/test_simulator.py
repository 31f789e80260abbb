"""Simulator: analytic fixed points, intervention semantics, time course, noise and seeds."""

import numpy as np
import pandas as pd
import pytest

from perturbode_core.datasets import GeneNetwork, TechnicalNoise, simulate_screen
from perturbode_core.datasets.boolean_rules import BooleanRule
from perturbode_core.datasets.kinetics import multilinear
from perturbode_core.errors import PerturbODEError

B_A, G_A, G_B, G_C, K, H, N = 2.0, 1.0, 0.5, 0.8, 3.0, 1.5, 2.0


def motif():
    """A (master) activates B and represses C, with explicit half-responses."""
    edges = pd.DataFrame({"source": ["A", "A"], "target": ["B", "C"], "sign": [1, -1],
                          "strength": [K, K], "hill": [N, N], "half": [H, H]})
    return GeneNetwork(name="motif", genes=["A", "B", "C"], edges=edges, basal=[[B_A, 0.0, 0.0]],
                       decay=[G_A, G_B, G_C])


def analytic(a):
    act = a ** N / (H ** N + a ** N)
    return np.array([a, K * act / G_B, K * (1 - act) / G_C])


def means(adata):
    df = pd.DataFrame(np.asarray(adata.X), columns=adata.var_names)
    return df.groupby(adata.obs["perturbation"].to_numpy()).mean()


def test_deterministic_steady_state_matches_fixed_point():
    ad = simulate_screen(motif(), conditions=["A:knockdown=0.5", "A:overexpression=2"], cells_per_condition=3,
                         intrinsic_noise=0.0, technical_noise=False, seed=0)
    m = means(ad)
    np.testing.assert_allclose(m.loc["control"], analytic(B_A / G_A), rtol=1e-4)
    # knock-down halves A's production; overexpression x2 adds (2 - 1) x its maximal production
    np.testing.assert_allclose(m.loc["A:knockdown=0.5"], analytic(0.5 * B_A / G_A), rtol=1e-4)
    np.testing.assert_allclose(m.loc["A:overexpression=2"], analytic(2 * B_A / G_A), rtol=1e-4)


def test_noisy_average_matches_fixed_point():
    ad = simulate_screen(motif(), conditions=[], cells_per_condition=3000, intrinsic_noise=0.1,
                         technical_noise=False, seed=3)
    x = np.asarray(ad.X)
    assert x.std(axis=0).min() > 0.02  # the noise is really on
    np.testing.assert_allclose(x.mean(axis=0), analytic(B_A / G_A), rtol=0.03)


def test_knockout_zeroes_gene_and_moves_targets_by_edge_sign():
    ad = simulate_screen(motif(), conditions=["A"], cells_per_condition=200, intrinsic_noise=0.1,
                         technical_noise=False, seed=1)
    m = means(ad)
    ko = np.asarray(ad.X)[ad.obs["perturbation"].to_numpy() == "A"]
    assert np.all(ko[:, 0] == 0.0)
    assert ad.obs.loc[ad.obs["perturbation"] == "A", "intervention_type"].unique().tolist() == ["knockout"]
    assert m.loc["A", "B"] < 0.1 * m.loc["control", "B"]  # activated target falls
    assert m.loc["A", "C"] == pytest.approx(K / G_C, rel=0.05)  # repressed target is released to K / gamma
    assert m.loc["A", "C"] > m.loc["control", "C"] * 1.5


def test_combination_and_mixed_types_are_labelled_readably():
    from perturbode_core.data.dataset import from_anndata

    ad = simulate_screen(motif(), conditions=["A+B", "C:overexpression", "A:knockdown=0.8"], cells_per_condition=5,
                         intrinsic_noise=0.0, technical_noise=False)
    labels = list(dict.fromkeys(ad.obs["perturbation"]))
    assert labels == ["control", "A+B", "C:overexpression", "A:knockdown=0.8"]
    data = from_anndata(ad)
    kinds = {c: [(iv.gene, iv.kind, iv.value) for iv in ivs] for c, ivs in data.interventions.items()}
    assert kinds["A+B"] == [("A", "knockout", None), ("B", "knockout", None)]
    assert kinds["C:overexpression"] == [("C", "overexpression", None)]
    assert kinds["A:knockdown=0.8"] == [("A", "knockdown", 0.8)]
    x = np.asarray(ad.X)[ad.obs["perturbation"].to_numpy() == "A+B"]
    assert np.all(x[:, :2] == 0)


def test_time_points_sample_along_the_path():
    times = [0.0, 0.5, 2.0, 12.0]
    ad = simulate_screen(motif(), conditions=["A"], cells_per_condition=40, time_points=times,
                         intrinsic_noise=0.0, technical_noise=False)
    assert sorted(ad.obs["time"].unique()) == times
    df = pd.DataFrame(np.asarray(ad.X), columns=ad.var_names)
    df["p"], df["t"] = ad.obs["perturbation"].to_numpy(), ad.obs["time"].to_numpy()
    b = df[df.p == "A"].groupby("t")["B"].mean()
    ctrl_b = df[df.p == "control"].groupby("t")["B"].mean()
    np.testing.assert_allclose(ctrl_b, analytic(B_A)[1], rtol=1e-4)  # control stays at steady state
    assert b.loc[0.0] == pytest.approx(analytic(B_A)[1], rel=1e-4)  # the knockout has just begun
    # with A gone, B decays exponentially at rate gamma_B (Euler: (1 - gamma dt)^(t/dt))
    dt = 0.1 / max(G_A, G_B, G_C)
    expect = analytic(B_A)[1] * (1 - G_B * dt) ** (np.array([0.5, 2.0]) / dt)
    np.testing.assert_allclose(b.loc[[0.5, 2.0]], expect, rtol=1e-3)
    assert b.loc[12.0] < 0.01 * b.loc[0.0]


def test_same_seed_same_data_different_seed_different():
    kw = dict(conditions=["A"], cells_per_condition=20)
    a, b, c = (simulate_screen(motif(), seed=s, **kw) for s in (7, 7, 8))
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    np.testing.assert_array_equal(a.layers["counts"], b.layers["counts"])
    assert not np.array_equal(np.asarray(a.X), np.asarray(c.X))


def test_technical_noise_counts_and_scanpy_normalisation():
    import anndata as ad_
    import scanpy as sc

    ad = simulate_screen(motif(), conditions=["A"], cells_per_condition=100, seed=2,
                         technical_noise=TechnicalNoise(library_size=500, dropout_midpoint=30))
    counts = ad.layers["counts"]
    assert counts.dtype.kind == "i" and counts.min() >= 0
    assert 200 < counts[ad.obs["perturbation"].to_numpy() == "control"].sum(axis=1).mean() < 1000
    ref = ad_.AnnData(X=counts.astype(np.float64))
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    np.testing.assert_allclose(np.asarray(ad.X), ref.X, rtol=1e-5, atol=1e-5)
    assert ad.uns["true_edges"]["sign"].tolist() == [1, -1]


def test_cell_types_use_their_own_basal_rates():
    net = motif()
    net2 = GeneNetwork(name="m2", genes=net.genes, edges=net.edges, basal=[[B_A, 0, 0], [2 * B_A, 0, 0]],
                       decay=net.decay, cell_types=["low", "high"])
    ad = simulate_screen(net2, conditions=[], cells_per_condition=10, intrinsic_noise=0.0, technical_noise=False)
    a = pd.Series(np.asarray(ad.X)[:, 0]).groupby(ad.obs["cell_type"].to_numpy()).mean()
    assert a["low"] == pytest.approx(B_A, rel=1e-4) and a["high"] == pytest.approx(2 * B_A, rel=1e-4)


def test_hill_cube_interpolates_the_truth_table():
    rule = BooleanRule.parse("(A or B) and not C")
    corners = np.array([[(r >> 2) & 1, (r >> 1) & 1, r & 1] for r in range(8)], dtype=float)
    np.testing.assert_array_equal(multilinear(rule.table.astype(float), corners), rule.table.astype(float))
    assert multilinear(rule.table.astype(float), np.full((1, 3), 0.5))[0] == pytest.approx(rule.table.mean())


def test_bad_options_raise_clear_errors():
    with pytest.raises(PerturbODEError, match="not in the model's genes"):
        simulate_screen(motif(), conditions=["Z"])
    with pytest.raises(PerturbODEError, match="Unknown cell type"):
        simulate_screen(motif(), conditions=[], cell_types=["nope"])
    with pytest.raises(PerturbODEError, match="start"):
        simulate_screen(motif(), start="sideways")
