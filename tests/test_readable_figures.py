"""Figures fit for a collaborator (issue 15, items 3, 5 and 6): one colour language for signs on
every figure, labels that are never clipped, sign-checked overlays, readable large networks."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from perturbode_core import plots
from perturbode_core.plots import style
from perturbode_core.tools import network_view

BLUE, VERMILLION = style.SIGN_COLORS[1], style.SIGN_COLORS[-1]


def _scale_ends(colorscale):
    return colorscale[0][1], colorscale[-1][1]


def test_one_colour_language_for_signs_on_every_figure():
    """Activation / up is blue and repression / down vermillion everywhere: gene network, module
    network, effect bars, screen bars, G heatmap, module-activity heatmap (issue: module network
    red activating, blue repressing; heatmaps red positive)."""
    edges = pd.DataFrame({"source": ["A", "B"], "target": ["B", "A"], "weight": [1.0, -1.0]})
    net = plots.network_figure(edges)
    assert {t.line.color for t in net.data if t.legendgroup == "activation"} == {BLUE}
    assert {t.line.color for t in net.data if t.legendgroup == "repression"} == {VERMILLION}

    g = nx.DiGraph()
    g.add_node(0, label="M0", strength=1.0)
    g.add_node(1, label="M1", strength=1.0)
    g.add_edge(0, 1, weight=1.0, sign=1, genes=["A"])
    g.add_edge(1, 0, weight=1.0, sign=-1, genes=["B"])
    mod = plots.module_network_figure(g)
    colours = {t.name: t.line.color for t in mod.data if t.mode == "lines"}
    assert colours == {"activating": BLUE, "repressing": VERMILLION}

    eff = plots.effect_figure(pd.DataFrame({"gene": ["up", "down"], "z_change": [1.0, -1.0]}))
    assert dict(zip(eff.data[0].y, eff.data[0].marker.color)) == {"up": BLUE, "down": VERMILLION}
    scr = plots.screen_figure(pd.DataFrame({"rank": [1, 2], "perturbation": ["a", "b"], "effect": [1.0, -1.0]}))
    assert dict(zip(scr.data[0].y, scr.data[0].marker.color)) == {"a": BLUE, "b": VERMILLION}

    hm = plots.g_heatmap(np.array([[0.0, 1.0], [-1.0, 0.0]]), ["A", "B"])
    assert _scale_ends(hm.data[0].colorscale) == (VERMILLION, BLUE)  # negative end, positive end
    act = plots.module_activity_heatmap(pd.DataFrame({0: [0.5, 0.9], 1: [0.5, 0.1]}, index=["control", "x"]))
    assert _scale_ends(act.data[0].colorscale) == (VERMILLION, BLUE)
    # nothing else uses the sign colours for something that is not a sign
    assert style.MODEL_COLOR not in (BLUE, VERMILLION)
    assert not {s["color"] for s in style.TRUTH_STYLES.values()} & {BLUE, VERMILLION}
    assert not set(style.MODULE_PALETTE) & {BLUE, VERMILLION}
    assert not set(style.PALETTE[:6]) & {BLUE, VERMILLION}


@pytest.mark.parametrize("build", [
    lambda: plots.g_heatmap(np.eye(3), ["Gata1", "Pu.1", "Cebpa"]),
    lambda: plots.effect_figure(pd.DataFrame({"gene": ["ENSG00000123456", "Gata1"], "z_change": [1.0, -1.0]})),
    lambda: plots.loss_figure(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]})),
    lambda: plots.metric_bar_figure(pd.DataFrame([{"method": "PerturbODE", "aupr": 0.5}])),
    lambda: plots.screen_figure(pd.DataFrame({"rank": [1], "perturbation": ["GATA1:knockout"], "effect": [1.0]})),
])
def test_axes_make_room_for_their_labels(build):
    """Tick labels and axis titles push the margins out (the report has no Streamlit theme to do it)."""
    fig = build()
    for axis in ("xaxis", "yaxis"):
        assert fig.layout[axis].automargin is True, axis


def test_g_heatmap_names_every_gene_and_effect_bars_keep_full_names():
    genes = [f"GENE{i:02d}" for i in range(40)]
    hm = plots.g_heatmap(np.random.default_rng(0).normal(size=(40, 40)), genes)
    assert list(hm.layout.xaxis.ticktext) == genes and list(hm.layout.yaxis.ticktext) == genes
    eff = plots.effect_figure(pd.DataFrame({"gene": ["NKX2-5", "HNF4A"], "z_change": [2.0, -1.0]}))
    assert set(eff.layout.yaxis.ticktext) == {"NKX2-5", "HNF4A"}


def test_overlay_and_exports_check_signs():
    """A predicted activation of a known repression is not a true positive."""
    pred = pd.DataFrame({"source": ["A", "A", "B"], "target": ["B", "C", "C"], "weight": [1.0, 1.0, -0.5]})
    truth = pd.DataFrame({"source": ["A", "A", "B", "C"], "target": ["B", "C", "C", "A"], "sign": [1, -1, 0, 1]})
    cls = network_view.classify_edges(pred, truth)
    status = dict(zip(zip(cls["source"], cls["target"]), cls["status"]))
    assert status == {("A", "B"): "true positive", ("A", "C"): "wrong sign", ("B", "C"): "true positive",
                      ("C", "A"): "missed"}  # B -> C: the known sign is unknown (0), so direction decides
    assert dict(zip(zip(cls["source"], cls["target"]), cls["true_sign"]))[("A", "C")] == -1
    fig = plots.truth_overlay_figure(pred, truth)
    assert "wrong sign" in {t.legendgroup for t in fig.data if t.mode == "lines"}


def test_focus_reads_the_whole_network_not_the_global_cut():
    """A gene whose edges are all weaker than the hubs' still shows its regulators and targets."""
    rng = np.random.default_rng(0)
    p = 60
    genes = [f"g{i}" for i in range(p)]
    G = rng.normal(scale=0.01, size=(p, p))
    G[:10, 50] = 5.0   # a hub: g50 -> g0..g9, far stronger than anything else
    G[20:26, 30] = 0.2  # g30's own targets, weak
    G[30, 40:44] = -0.1  # g30's regulators, weaker still
    from perturbode_core.io.edges import edge_table

    global_cut = edge_table(G, genes, top_k=10)  # what a focus on the global top-k would filter
    assert "g30" not in set(global_cut["source"]) | set(global_cut["target"])
    view = network_view.focus_edges(G, genes, "g30", hops=1, per_gene=6)
    assert {f"g{i}" for i in range(20, 26)} <= set(view.loc[view["source"] == "g30", "target"])
    assert {f"g{i}" for i in range(40, 44)} <= set(view.loc[view["target"] == "g30", "source"])
    assert list(view["rank"]) == list(range(1, len(view) + 1))
    down = network_view.focus_edges(G, genes, "g30", direction="downstream", per_gene=6)
    assert set(down["source"]) == {"g30"}
    two = network_view.focus_edges(G, genes, "g30", hops=2, per_gene=3)
    assert len(two) > len(network_view.focus_edges(G, genes, "g30", hops=1, per_gene=3))


def test_large_networks_label_the_strongest_genes_and_few_module_colours():
    rng = np.random.default_rng(1)
    src = [f"g{i}" for i in rng.integers(0, 300, 600)]
    tgt = [f"g{i}" for i in rng.integers(0, 300, 600)]
    edges = pd.DataFrame({"source": src, "target": tgt, "weight": rng.normal(size=600)})
    edges = edges[edges.source != edges.target].drop_duplicates(["source", "target"])
    groups = {f"g{i}": f"M{i % 45}" for i in range(300)}
    fig = plots.network_figure(edges, node_groups=groups)
    labelled = [t for trace in fig.data if trace.text is not None for t in trace.text if t]
    assert 0 < len(labelled) <= 40
    names = {t.name for t in fig.data if t.legendgroup and str(t.legendgroup).startswith("node-")}
    assert len(names) <= 11 and "other modules" in names  # 10 strongest modules + the rest


def test_find_gene_search_box():
    genes = ["GATA1", "GATA2", "SPI1", "Pu.1"]
    assert network_view.find_gene("gata1", genes) == "GATA1"
    assert network_view.find_gene("SP", genes) == "SPI1"
    assert network_view.find_gene("GATA", genes) is None  # ambiguous
    assert network_view.find_gene("", genes) is None
