"""AppTest of the Network, Modules & enrichment, Evaluate and Report pages on the demo."""

from __future__ import annotations


import pytest



from perturbode_ui.state import STATE_KEY


@pytest.fixture(scope="module")
def app(start_app):
    return start_app()


def _open(app, page):
    app.switch_page(page).run()
    assert not app.exception, f"{page}: {app.exception}"
    assert not app.error, f"{page}: {[e.value for e in app.error]}"
    return app


def _metric(app, label):
    return next(m.value for m in app.metric if m.label == label)


def _downloads(app):
    return [b.proto.label for b in app.get("download_button")]


def test_network_page_slider_focus_truth_downloads(app):
    _open(app, "pages/network_page.py")
    assert app.title[0].value == "Gene regulatory network"
    assert len(app.get("plotly_chart")) == 1
    n0 = int(_metric(app, "Edges shown"))
    app.slider(key="net_topk").set_value(3).run()
    assert int(_metric(app, "Edges shown")) == 3 != n0
    # threshold mode: a higher threshold keeps fewer edges
    app.radio(key="net_mode").set_value("threshold").run()
    thr = app.slider(key="net_thr")
    lo, hi = thr.min, thr.max
    thr.set_value(lo).run()
    n_lo = int(_metric(app, "Edges shown"))
    app.slider(key="net_thr").set_value(hi * 0.9).run()
    n_hi = int(_metric(app, "Edges shown"))
    assert n_hi < n_lo
    # focus on one gene: its neighbourhood only
    app.radio(key="net_mode").set_value("top-k").run()
    app.slider(key="net_topk").set_value(20).run()
    state = app.session_state[STATE_KEY]
    gene = state.network.edges["source"].iloc[0]
    app.selectbox(key="net_focus").set_value(gene).run()
    view = state.network.edges
    assert 0 < len(view) <= 20 and ((view["source"] == gene) | (view["target"] == gene)).any()
    app.radio(key="net_dir").set_value("downstream").run()
    assert (state.network.edges["source"] == gene).any()
    # the demo has a known network: the overlay is offered and draws
    assert "ground truth" in app.radio(key="net_colour").options
    app.radio(key="net_colour").set_value("ground truth").run()
    assert not app.exception
    fig = state.network.figure
    assert {t.legendgroup for t in fig.data if t.mode == "lines"} <= {"true positive", "false positive", "missed"}
    assert _downloads(app) == ["Download edges (CSV)", "Download GraphML (Cytoscape, Gephi)"]
    app.selectbox(key="net_focus").set_value("(whole network)").run()


def test_modules_page_and_enrichment(app):
    _open(app, "pages/modules_page.py")
    assert app.title[0].value == "Modules & enrichment"
    assert len(app.dataframe) >= 3  # summary, regulators, targets
    state = app.session_state[STATE_KEY]
    assert {"regulator", "target"} <= set(state.modules.members["role"])
    app.selectbox(key="enr_lib").set_value("hallmark")
    submit = next(b for b in app.button if b.proto.is_form_submitter)
    submit.click().run()
    assert not app.exception and not app.error
    assert state.modules.enrichment is not None
    assert "Download enrichment (CSV)" in _downloads(app)
    assert "Download membership (CSV)" in _downloads(app)


def test_evaluate_page_model_beside_baselines(app):
    _open(app, "pages/evaluate_page.py")
    state = app.session_state[STATE_KEY]
    net = state.evaluation.network.table
    assert net["method"].iloc[0] == "PerturbODE" and len(net) >= 3  # always with baselines
    score = state.evaluation.prediction
    assert score.summary["method"].iloc[0] == "PerturbODE" and {"no_change", "mean_shift"} <= set(score.summary["method"])
    assert "Download network metrics (CSV)" in _downloads(app)


def test_report_page_builds_report_with_network(app):
    _open(app, "pages/simulate_page.py")
    app.button(key="sim_run").click().run()  # the latest simulation goes into the report too
    assert not app.exception
    _open(app, "pages/report_page.py")
    submit = next(b for b in app.button if b.proto.is_form_submitter)
    submit.click().run()
    assert not app.exception and not app.error
    state = app.session_state[STATE_KEY]
    html = state.report["html"].decode("utf-8")
    assert 'id="network-figure"' in html and 'id="metrics"' in html  # metrics from the Evaluate page
    assert 'id="simulations"' in html and "latest:" in html
    assert "Download report (HTML)" in _downloads(app)
    # a figure as HTML (no browser needed); PNG/SVG are covered by test_report and the browser test
    app.radio(key="rep_fmt").set_value("html").run()
    app.button(key="rep_fig_go").click().run()
    assert state.report["figure"][3] == "html"
    assert any(label.startswith("Download Network") for label in _downloads(app))


def test_network_page_ranks_by_the_combined_reading_and_offers_g_alone(app):
    """The demo model keeps its simulated training responses: the page ranks edges by the combined
    score by default (weight, with G beside), and 'direct' ranks by |G| with weight = G."""
    import numpy as np

    from perturbode_core.tools import grn

    _open(app, "pages/network_page.py")
    state = app.session_state[STATE_KEY]
    assert state.model.response_evidence is not None, "rebuild the demo: python scripts/build_datasets.py --demo-only"
    app.radio(key="net_mode").set_value("top-k").run()
    app.selectbox(key="net_focus").set_value("(whole network)").run()
    app.slider(key="net_topk").set_value(10).run()
    assert app.radio(key="net_reading").value == "combined"
    edges = state.network.edges
    expected = grn.model_edges(state.model, top_k=10)
    assert list(edges["source"] + ">" + edges["target"]) == list(expected["source"] + ">" + expected["target"])
    assert (edges["weight"].abs() <= 2).all() and "G" in edges.columns
    assert any("median correlation" in c.value for c in app.caption)
    app.radio(key="net_reading").set_value("direct").run()
    direct = state.network.edges
    np.testing.assert_allclose(direct["weight"], direct["G"])
    G = grn.grn_matrix(state.model)
    assert abs(direct["weight"].iloc[0]) == np.abs(G * (1 - np.eye(len(G)))).max()
    assert state.network.reading == "direct"
    app.radio(key="net_reading").set_value("combined").run()


def test_network_page_shows_the_seed_runs_confidence(app):
    """After seed runs (Evaluate), the Network page's edges carry each edge's share of runs."""
    import numpy as np

    from perturbode_core.tools import evaluate, grn

    state = app.session_state[STATE_KEY]
    G = grn.network_matrix(state.model)  # the scores the page ranks by (its default reading)
    other = G.copy()
    strongest = np.unravel_index(np.argmax(np.abs(G) * (1 - np.eye(len(G)))), G.shape)
    other[strongest] = 0.0  # the second run lacks the first run's strongest edge
    state.evaluation.stability = evaluate.stability_summary([G, other], state.model.gene_names, top_k=10)
    _open(app, "pages/network_page.py")
    app.radio(key="net_mode").set_value("top-k").run()
    app.selectbox(key="net_focus").set_value("(whole network)").run()
    edges = state.network.edges
    assert "confidence" in edges.columns and edges["confidence"].between(0, 1).all()
    first = edges.iloc[0]  # the strongest edge: kept by one of the two runs
    names = state.model.gene_names
    assert (first.source, first.target) == (names[strongest[1]], names[strongest[0]])
    assert first.confidence == 0.5
    assert (edges["confidence"] == 1.0).any()
    assert any("seed runs" in c.value for c in app.caption)
    state.evaluation.stability = None
