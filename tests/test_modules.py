"""Module membership, strength, activity, condition ranking, module network and gene view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbode_core.tools import modules as M
from perturbode_core.errors import PerturbODEError

GENES = ["a", "b", "c", "d"]
# module 0 reads b (+3), c (-1), d (+0.5); module 1 reads all four equally
B = np.array([[0.0, 3.0, -1.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
# module 0 writes a (+2), c (+1); module 1 writes b (-1, doubled by alpha)
A = np.array([[2.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 0.0]])
ALPHA = np.array([1.0, 2.0])


def _members(**kw):
    t = M.module_members(A, B, ALPHA, GENES, **kw)
    return {(r.module, r.role): [g for g in t[(t.module == r.module) & (t.role == r.role)].gene]
            for r in t.itertuples()}, t


def test_top_n_selection_with_signs_and_ranks():
    sel, t = _members(method="top_n", top_n=2)
    assert sel[(0, "regulator")] == ["b", "c"]
    assert sel[(0, "target")] == ["a", "c"]  # zero-weight genes never members
    assert sel[(1, "regulator")] == ["a", "b"]  # ties broken by gene order
    assert sel[(1, "target")] == ["b"]
    row = t[(t.module == 1) & (t.role == "target")].iloc[0]
    assert (row.weight, row.sign, row["rank"]) == (-2.0, -1, 1)  # alpha_k * A[g, k]
    assert list(t.columns) == ["module", "role", "gene", "weight", "abs_weight", "sign", "rank"]


def test_share_and_threshold_selection():
    sel, _ = _members(method="share", share=0.7)
    assert sel[(0, "regulator")] == ["b", "c"]  # 3 + 1 >= 0.7 * 4.5
    assert sel[(1, "regulator")] == ["a", "b", "c"]  # 3 of 4 equal weights reach 70%
    sel, _ = _members(method="share", share=1.0)
    assert sel[(0, "regulator")] == ["b", "c", "d"]
    sel, _ = _members(method="threshold", threshold=1.0)
    assert sel[(0, "regulator")] == ["b", "c"] and sel[(1, "regulator")] == ["a", "b", "c", "d"]
    sel, _ = _members(method="top_n", top_n=1, role="targets")
    assert set(k[1] for k in sel) == {"target"}
    with pytest.raises(PerturbODEError, match="share"):
        M.module_members(A, B, ALPHA, GENES, method="share", share=1.5)
    with pytest.raises(PerturbODEError, match="top_n|method"):
        M.module_members(A, B, ALPHA, GENES, method="largest")


def test_strength_and_summary():
    s = M.module_strength(A, B, ALPHA)
    np.testing.assert_allclose(s, [np.sqrt(5) * np.sqrt(10.25), 2 * 1 * 2])
    assert list(M.strongest_modules(A, B, ALPHA, 1)) == [0]
    summ = M.module_summary(A, B, ALPHA, GENES, n_genes=2)
    assert summ.iloc[0]["module"] == 0 and summ.iloc[0]["top_regulators"] == "b+;c-"


def test_shape_errors():
    with pytest.raises(PerturbODEError, match="B has shape"):
        M.module_members(A, B.T, ALPHA, GENES)
    with pytest.raises(PerturbODEError, match="gene names"):
        M.module_members(A, B, ALPHA, GENES[:3])


def test_activity_and_condition_ranking():
    Z = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 2, 0, 0.0]])
    bias = np.array([0.0, -1.0])
    H = M.module_activity(Z, B, bias)
    np.testing.assert_allclose(H, 1 / (1 + np.exp(-(Z @ B.T + bias))))
    act = M.condition_activity(Z, ["control", "control", "KO", "KO"], B, bias)
    assert list(act["n_cells"]) == [2, 2]
    ranked = M.rank_modules_by_condition(act)
    top = ranked[ranked["rank"] == 1].iloc[0]
    assert (top["condition"], top["module"]) == ("KO", 0)  # b feeds module 0 with weight 3
    exp = np.mean(1 / (1 + np.exp(-np.array([3.0, 6.0])))) - 0.5
    assert top["delta"] == pytest.approx(exp)
    with pytest.raises(PerturbODEError, match="control"):
        M.rank_modules_by_condition(act, control="ctrl")
    w = M.ModuleWeights(A, B, ALPHA, bias, GENES, mean=np.ones(4), scale=2 * np.ones(4))
    np.testing.assert_allclose(w.standardize(np.full((1, 4), 3.0)), np.ones((1, 4)))


def test_module_network_and_gene_view():
    # module 0 targets a, c; module 1 reads a, c (among others): edge 0 -> 1 through a and c
    G = M.module_network(A, B, ALPHA, GENES, top_n=4, self_loops=False)
    assert G.has_edge(0, 1)
    e = G.edges[0, 1]
    assert e["genes"] == ["a", "c"]
    assert e["weight"] == pytest.approx(2 * 1 + 1 * 1)
    assert e["signed_weight"] == pytest.approx(3.0) and e["sign"] == 1
    # module 1 targets b (-2); module 0 reads b (+3): 1 -> 0 repressing, weight 6
    assert G.edges[1, 0]["weight"] == pytest.approx(6.0) and G.edges[1, 0]["sign"] == -1
    assert not G.has_edge(0, 0)
    view = M.gene_view("B", A, B, ALPHA, GENES, top_n=4)  # case-insensitive
    assert view.attrs["gene"] == "b"
    up = view[view["direction"] == "upstream"]
    assert list(up["module"]) == [1] and up.iloc[0]["partners"] == "a+;c+;d+"
    down = view[view["direction"] == "downstream"]
    assert set(down["module"]) == {0, 1}
    with pytest.raises(PerturbODEError, match="Did you mean"):
        M.gene_view("bb", A, B, ALPHA, GENES)


def test_weights_from_model_adapter():
    import torch

    class Fake:
        def module_weights(self):
            return {"A": torch.tensor(A), "B": torch.tensor(B), "alpha": torch.tensor(ALPHA), "b": np.zeros(2),
                    "gene_names": GENES, "mean": np.zeros(4), "scale": np.ones(4), "activation": "sigmoid",
                    "gamma": np.ones(4)}

    w = M.weights_from_model(Fake())
    assert w.n_modules == 2 and w.gene_names == GENES
    with pytest.raises(PerturbODEError, match="no module weights"):
        M.weights_from_model(object())


def test_module_network_plot():
    from perturbode_core.plots.module_plots import module_activity_heatmap, module_network_figure

    G = M.module_network(A, B, ALPHA, GENES, top_n=4)
    fig = module_network_figure(G)
    assert [t.name for t in fig.data] == ["activating", "repressing", "arrows", "modules"]
    assert sorted(fig.data[3].text) == ["M0", "M1"]
    assert len(fig.data[2].x) == G.number_of_edges()
    act = M.condition_activity(np.zeros((2, 4)), ["control", "KO"], B, np.zeros(2))
    hm = module_activity_heatmap(act)
    assert hm.data[0].type == "heatmap" and list(hm.data[0].y) == ["KO", "control"]


def test_cli_modules_and_enrich(tmp_path, capsys):
    import torch

    from perturbode_core.io import checkpoint
    from perturbode_core.cli.main import main
    from perturbode_core.tools.enrichment import load_library
    from perturbode_core.model import ModelConfig, PerturbODE

    lib = load_library("hallmark")
    term = "HALLMARK_ANGIOGENESIS"
    planted = list(lib.genes[lib.terms.index(term)])
    rng = np.random.default_rng(0)
    rest = sorted(set(lib.vocabulary.astype(str)) - {g.casefold() for g in planted})
    genes = planted + [g.upper() for g in rng.choice(rest, 300, replace=False)]
    K = 6
    model = PerturbODE(genes, ModelConfig(n_modules=K), seed=0)
    with torch.no_grad():
        model.A.mul_(0.01)
        model.A[: len(planted), 2] = 1.0  # module 2 drives exactly the hallmark angiogenesis genes
    path = checkpoint.save_checkpoint(tmp_path / "model.pt", model)
    out = tmp_path / "modules.csv"
    assert main(["modules", "--checkpoint", str(path), "--out", str(out), "--top-n", "5",
                 "--summary", str(tmp_path / "summary.csv")]) == 0
    table = pd.read_csv(out)
    assert len(table) == K * 2 * 5 and set(table["role"]) == {"regulator", "target"}
    assert pd.read_csv(tmp_path / "summary.csv").iloc[0]["module"] == 2
    enr = tmp_path / "enrichment.csv"
    assert main(["enrich", "--checkpoint", str(path), "--library", "hallmark", "--out", str(enr),
                 "--top-n", str(len(planted)), "--max-q", "0.05"]) == 0
    res = pd.read_csv(enr)
    assert (res.iloc[0]["module"], res.iloc[0]["term"]) == (2, term)
    assert f"M2: {term}" in capsys.readouterr().out
    assert main(["enrich", "--checkpoint", str(path), "--library", "nope", "--out", str(enr)]) == 2
    assert "Unknown gene-set library" in capsys.readouterr().err
