"""Network extraction, binarisation, exports and simulation outputs."""

import networkx as nx
import numpy as np
import pytest

from perturbode_core.io import edges as edge_io
from perturbode_core.tools import grn
from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.simulate import effect_table, predict_anndata, trajectories, trajectories_anndata


def test_edge_table_ranking_and_binarisation():
    G = np.array([[0.0, -3.0, 0.1], [2.0, 0.0, 0.0], [0.5, -0.2, 9.0]])
    genes = ["a", "b", "c"]
    e = edge_io.edge_table(G, genes)
    assert len(e) == 6  # self-loops excluded
    assert e.iloc[0][["source", "target", "weight", "sign"]].tolist() == ["b", "a", -3.0, -1]
    assert e.iloc[1][["source", "target"]].tolist() == ["a", "b"]
    assert len(edge_io.edge_table(G, genes, top_k=2)) == 2
    assert len(edge_io.edge_table(G, genes, sparsity=0.5)) == 3
    assert set(edge_io.edge_table(G, genes, threshold=0.4).weight) == {-3.0, 2.0, 0.5}
    assert len(edge_io.edge_table(G, genes, self_loops=True)) == 9
    with pytest.raises(PerturbODEError, match="one of top_k"):
        edge_io.edge_table(G, genes, top_k=1, threshold=1)


def test_grn_matrix_is_A_alpha_B_and_jacobian_mode(trained, teacher_data):
    m = trained.model
    W = m.module_weights()
    np.testing.assert_allclose(grn.grn_matrix(m), (W["A"] * W["alpha"]) @ W["B"], rtol=1e-5, atol=1e-7)
    cells = teacher_data.control_cells()
    J = grn.grn_matrix(m, alpha_mode="jacobian", cells=cells)
    assert J.shape == (12, 12) and np.abs(J).sum() < np.abs(grn.grn_matrix(m)).sum()  # sigma' <= 1/4
    # known answer: alpha_eff = alpha * mean over cells of sigma'(B z + b), z standardised
    z = (cells - W["mean"]) / W["scale"]
    s = 1.0 / (1.0 + np.exp(-(z @ W["B"].T + W["b"])))
    alpha_eff = W["alpha"] * (s * (1 - s)).mean(0)
    np.testing.assert_allclose(J, (W["A"] * alpha_eff) @ W["B"], rtol=1e-4, atol=1e-6)
    with pytest.raises(PerturbODEError, match="needs cells"):
        grn.grn_matrix(m, alpha_mode="jacobian")


def test_grn_orientation_is_the_jacobian_of_the_field(trained, teacher_data):
    """At one cell, the Jacobian-mode network is d f_i / d z_j of the vector field minus the decay
    diagonal: row i is the target, column j the regulator (the export's source)."""
    import torch

    m = trained.model
    x = teacher_data.control_cells()[:1]
    z = m.standardize(x)[0]
    jac = torch.autograd.functional.jacobian(lambda v: m.vector_field(v[None])[0], z).numpy()  # [i, j] = df_i/dz_j
    G = grn.grn_matrix(m, alpha_mode="jacobian", cells=x)
    np.testing.assert_allclose(G - np.diag(m.gamma.detach().numpy()),
                               jac, rtol=1e-4, atol=1e-5)
    e = edge_io.edge_table(G, m.gene_names, top_k=1)
    i, j = np.unravel_index(np.argmax(np.abs(G - np.diag(np.diag(G)))), G.shape)
    assert (e.source[0], e.target[0]) == (m.gene_names[j], m.gene_names[i])


def test_exports_csv_and_graphml_round_trip(trained, tmp_path):
    e = grn.model_edges(trained.model, top_k=15)
    edge_io.write_edges_csv(e, tmp_path / "e.csv")
    edge_io.write_graphml(e, tmp_path / "e.graphml", genes=trained.model.gene_names)
    import pandas as pd

    back = pd.read_csv(tmp_path / "e.csv")
    assert list(back.columns[:4]) == ["source", "target", "weight", "sign"] and len(back) == 15
    g = nx.read_graphml(tmp_path / "e.graphml")
    assert g.number_of_edges() == 15 and g.number_of_nodes() == 12
    s, t, w = e.iloc[0][["source", "target", "weight"]]
    assert g.edges[s, t]["weight"] == pytest.approx(w) and g.edges[s, t]["sign"] == np.sign(w)
    assert g.edges[s, t]["rank"] == 1 and "confidence" not in g.edges[s, t]
    # a seed consensus's confidence travels into GraphML (Cytoscape can style edges by it)
    e["confidence"] = np.linspace(1.0, 0.3, len(e))
    edge_io.write_graphml(e, tmp_path / "c.graphml", genes=trained.model.gene_names)
    g = nx.read_graphml(tmp_path / "c.graphml")
    assert g.edges[s, t]["confidence"] == pytest.approx(1.0)
    last = e.iloc[-1]
    assert g.edges[last.source, last.target]["confidence"] == pytest.approx(0.3)


def test_trajectories_and_effect_table(trained, teacher_data, teacher):
    cells = teacher_data.control_cells()[:10]
    out = trajectories(trained.model, cells, ["control", "G001", "G001+G002:overexpression"], n_times=5)
    assert out["states"].shape == (5, 3, 10, 12) and out["labels"][0] == "control"
    np.testing.assert_allclose(out["states"][0, 1], cells, atol=1e-6)  # starts at the given cells
    table = effect_table(trained.model, cells, "G001")
    top = table.iloc[0]
    assert top.gene == "G001" and top.mean_change < -1.0 and top.targeted  # knocked out gene falls most
    # the simulated knockout moves genes like the teacher's knockout does
    teacher_change = teacher.simulate(cells, ["G001"])[-1, 0].mean(0) - teacher.simulate(cells, ["control"])[-1, 0].mean(0)
    model_change = table.set_index("gene").loc[trained.model.gene_names, "mean_change"].to_numpy()
    assert np.corrcoef(teacher_change, model_change)[0, 1] > 0.9
    a = trajectories_anndata(trained.model, cells, "G001", n_times=4)
    assert a.shape == (40, 12) and set(a.obs.time) == set(np.linspace(0, 10, 4))
    p = predict_anndata(trained.model, cells, ["control", "G001"])
    assert p.shape == (20, 12) and p.obs.perturbation.tolist().count("G001:knockout") == 10


def test_simulation_bad_inputs(trained):
    with pytest.raises(PerturbODEError, match="shape"):
        trajectories(trained.model, np.zeros((3, 5)), ["G001"])
    with pytest.raises(PerturbODEError, match="Horizon must be positive"):
        trajectories(trained.model, np.zeros((3, 12)), ["G001"], horizon=-1)
    with pytest.raises(PerturbODEError, match="NOPE"):
        effect_table(trained.model, np.zeros((3, 12)), "NOPE:knockout")


def test_effect_table_reuses_given_trajectories(trained, teacher_data):
    cells = teacher_data.control_cells()[:8]
    traj = trajectories(trained.model, cells, ["control", "G001"], n_times=6)
    np.testing.assert_allclose(effect_table(trained.model, cells, "G001", trajectories=traj).sort_values("gene").mean_change,
                               effect_table(trained.model, cells, "G001").sort_values("gene").mean_change, atol=1e-6)
    with pytest.raises(PerturbODEError, match="exactly the control and the perturbation"):
        effect_table(trained.model, cells, "G001", trajectories=trajectories(trained.model, cells, ["G001"]))
