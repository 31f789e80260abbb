"""Figure builders: the right traces, counts and styles, without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from perturbode_core import plots
from perturbode_core.io import edges as edge_io
from perturbode_core.tools import grn, modules, network_view
from perturbode_core.errors import PerturbODEError


@pytest.fixture()
def edges():
    return pd.DataFrame({"source": ["A", "A", "B", "C", "D"], "target": ["B", "C", "C", "D", "A"],
                         "weight": [2.0, -1.0, 0.5, -0.2, 1.5]}).assign(
        sign=lambda d: np.sign(d["weight"]).astype(int), rank=lambda d: np.arange(1, 6))


def _names(fig):
    return [t.name for t in fig.data]


def test_network_figure_sign_width_direction(edges):
    fig = plots.network_figure(edges)
    assert isinstance(fig, go.Figure)
    assert fig.layout.meta["n_edges"] == 5 and fig.layout.meta["n_genes"] == 4
    lines = [t for t in fig.data if t.mode == "lines"]
    act = [t for t in lines if t.legendgroup == "activation"]
    rep = [t for t in lines if t.legendgroup == "repression"]
    assert act and rep
    assert {t.line.color for t in act} == {plots.SIGN_COLORS[1]}
    assert {t.line.color for t in rep} == {plots.SIGN_COLORS[-1]}
    # the strongest edge is drawn wider than the weakest
    widths = {t.line.width for t in lines}
    assert max(widths) > min(widths)
    # one arrow marker per edge, carrying the hover text with the direction
    arrows = next(t for t in fig.data if t.name == "edges")
    assert arrows.marker.symbol == "arrow" and len(arrows.x) == 5
    assert any("A → B" in h for h in arrows.hovertext)


def test_network_figure_module_colours_and_focus(edges):
    groups = {"A": "M0", "B": "M0", "C": "M1", "D": "M2"}
    fig = plots.network_figure(edges, node_groups=groups, focus="C")
    node_traces = [t for t in fig.data if t.mode and "markers" in t.mode and t.name in {"M0", "M1", "M2"}]
    assert {t.name for t in node_traces} == {"M0", "M1", "M2"}
    assert len({t.marker.color for t in node_traces}) == 3
    m1 = next(t for t in node_traces if t.name == "M1")
    assert m1.marker.line.color[0] == "black"  # the focused gene is outlined


def test_network_figure_empty_and_bad_input():
    fig = plots.network_figure(pd.DataFrame(columns=["source", "target", "weight"]))
    assert fig.layout.annotations and "No edges" in fig.layout.annotations[0].text
    with pytest.raises(PerturbODEError):
        plots.network_figure(pd.DataFrame({"gene_a": ["A"], "gene_b": ["B"]}))
    # the usual aliases are one edge-table format everywhere (as in known-network files)
    assert len(plots.network_figure(pd.DataFrame({"from": ["A"], "to": ["B"]})).data) > 0


def test_truth_overlay_classifies_edges(edges):
    truth = pd.DataFrame({"source": ["A", "C", "B", "A"], "target": ["B", "D", "D", "A"]})  # A->A self loop ignored
    cls = network_view.classify_edges(edges, truth)
    status = dict(zip(zip(cls["source"], cls["target"]), cls["status"]))
    assert status[("A", "B")] == "true positive" and status[("C", "D")] == "true positive"
    assert status[("A", "C")] == "false positive"
    assert status[("B", "D")] == "missed"
    assert ("A", "A") not in status
    fig = plots.truth_overlay_figure(edges, truth)
    groups = {t.legendgroup for t in fig.data if t.mode == "lines"}
    assert groups == {"true positive", "false positive", "missed"}
    dashes = {t.legendgroup: t.line.dash for t in fig.data if t.mode == "lines"}
    assert dashes["true positive"] != dashes["false positive"] != dashes["missed"]
    assert fig.layout.meta["n_edges"] == 5  # missed edges are not counted as shown predictions


def test_neighbourhood(edges):
    up = network_view.neighbourhood_edges(edges, "C", hops=1, direction="upstream")
    assert set(zip(up["source"], up["target"])) == {("A", "C"), ("B", "C")}
    down = network_view.neighbourhood_edges(edges, "c", hops=2, direction="downstream")  # case-insensitive
    assert set(zip(down["source"], down["target"])) == {("C", "D"), ("D", "A")}
    both = network_view.neighbourhood_edges(edges, "B", hops=1)
    assert {("A", "B"), ("B", "C")} <= set(zip(both["source"], both["target"]))
    assert network_view.neighbourhood_edges(edges, "ZZZ").empty
    with pytest.raises(PerturbODEError):
        network_view.neighbourhood_edges(edges, "A", direction="sideways")


def test_dominant_module_and_layouts(teacher):
    w = teacher.module_weights()
    mods = modules.dominant_module(w["A"], w["alpha"], teacher.gene_names)
    assert set(mods) == set(teacher.gene_names)
    assert all(v.startswith("M") or v == "mixed" for v in mods.values())
    e = grn.model_edges(teacher, top_k=15)
    g = edge_io.to_networkx(e)
    for method in ("spring", "kamada_kawai", "circular"):
        pos = plots.network_layout(g, method=method)
        assert set(pos) == set(g.nodes)
    assert plots.network_layout(g, seed=3) == plots.network_layout(g, seed=3)  # deterministic


def test_loss_heatmap_metric_effect_figures(trained):
    fig = plots.loss_figure(trained.history, best_epoch=trained.best_epoch)
    assert [t.name for t in fig.data][0] == "training loss"
    assert len(fig.data[0].x) == len(trained.history)
    assert plots.loss_figure(pd.DataFrame()).layout.annotations  # empty history: a note, no crash

    G = grn.grn_matrix(trained.model)
    hm = plots.g_heatmap(G, trained.model.gene_names)
    assert hm.data[0].type == "heatmap" and hm.data[0].zmid == 0
    big = plots.g_heatmap(np.random.default_rng(0).normal(size=(80, 80)), [f"g{i}" for i in range(80)], max_genes=30)
    assert len(big.data[0].x) == 30

    table = pd.DataFrame([{"method": "PerturbODE", "aupr": 0.6, "auroc": 0.8},
                          {"method": "correlation", "aupr": 0.3, "auroc": 0.6},
                          {"method": "genie3", "aupr": 0.4, "auroc": np.nan}])
    bars = plots.metric_bar_figure(table, reference={"aupr": 0.2, "auroc": 0.5})
    assert _names(bars) == ["PerturbODE", "correlation", "genie3"]
    assert bars.data[0].marker.color != bars.data[1].marker.color
    assert bars.data[2].y[1] is None  # NaN shown as a gap, not a zero
    assert len(bars.layout.shapes) == 2
    from_dict = plots.metric_bar_figure({"PerturbODE": {"aupr": 0.5}, "x": {"aupr": 0.1}})
    assert _names(from_dict) == ["PerturbODE", "x"]

    eff = pd.DataFrame({"gene": list("abcde"), "z_change": [3.0, -2.0, 0.1, 1.0, -0.5]})
    fig = plots.effect_figure(eff, top=3)
    assert list(fig.data[0].y) == ["d", "b", "a"]


def test_plots_namespace_exports_every_figure_builder():
    """Every public figure builder of every plots module is reachable as ``plots.<name>``."""
    import importlib
    import inspect
    import pkgutil

    import plotly.graph_objects as go

    import perturbode_core.plots as package

    for info in pkgutil.iter_modules(package.__path__):
        mod = importlib.import_module(f"perturbode_core.plots.{info.name}")
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ == mod.__name__ and not name.startswith("_") and \
                    inspect.signature(fn).return_annotation in (go.Figure, "go.Figure"):
                assert getattr(plots, name, None) is fn, f"plots.{name} is not exported"
