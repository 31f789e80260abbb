"""Simulate page: a knockout yields a ranked effect table; unknown genes are named; scenarios compare."""

from __future__ import annotations


import pandas as pd
import pytest


from perturbode_core.tools.simulate import compare_effects
from perturbode_ui.state import STATE_KEY


@pytest.fixture(scope="module")
def app(start_app):
    at = start_app()
    at.switch_page("pages/simulate_page.py").run()
    assert not at.exception and not at.error
    return at


def test_knockout_effect_table(app):
    state = app.session_state[STATE_KEY]
    gene = state.data.perturbations[0].split("+")[0].split(":")[0]
    app.multiselect(key="sim_genes").set_value([gene]).run()
    assert app.selectbox(key=f"sim_kind_{gene}").value == "knockout"
    app.toggle(key="sim_quick").set_value(False)  # the full solve (the preview: tests/test_preview.py)
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    sc = state.last_simulation
    top = sc.effects.head(3)
    assert gene in set(top["gene"])
    row = sc.effects.set_index("gene").loc[gene]
    assert row["mean_change"] < 0 and row["targeted"]
    assert sc.measured == gene  # the demo measured this knockout: shown beside the simulation
    assert sc.mean.shape == (len(sc.times), 2, state.model.n_genes) and sc.coords.shape[-1] == 2
    assert app.dataframe and app.get("download_button")  # table and CSV download
    # the page's table is the core's simulate.effect_table for the same start cells
    from perturbode_core.tools import simulate
    from perturbode_core.tools.embedding import subsample
    from perturbode_ui.simulation import start_cells

    idx, _ = start_cells(state.data)
    idx = idx[subsample(len(idx), state.settings.max_sim_cells, seed=0)]
    direct = simulate.effect_table(state.model, state.data.X[idx], f"{gene}:knockout")
    pd.testing.assert_frame_equal(direct, sc.effects, atol=1e-5)
    app.button(key="sim_save").click().run()
    assert list(state.simulations) == [sc.name]


def test_unknown_gene_is_named(app):
    app.text_input(key="sim_spec").set_value("NOTAGENE+" + app.session_state[STATE_KEY].model.gene_names[0]).run()
    assert not app.exception
    assert "NOTAGENE" in " ".join(e.value for e in app.error)
    assert app.button(key="sim_run").disabled
    app.text_input(key="sim_spec").set_value("").run()


def test_combination_and_comparison(app):
    state = app.session_state[STATE_KEY]
    g = list(state.model.gene_names)
    app.text_input(key="sim_spec").set_value(f"{g[0]}:overexpression=2+{g[1]}:knockdown=0.5").run()
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    app.button(key="sim_save").click().run()
    assert len(state.simulations) == 2
    app.run()
    assert not app.exception
    assert app.multiselect(key=f"sim_compare_{len(state.simulations)}").value == list(state.simulations)
    assert len(app.get("plotly_chart")) >= 4  # effects, trajectories, cells, comparison
    tables = {n: s.effects for n, s in state.simulations.items()}
    wide = compare_effects(tables)
    assert list(wide.columns) == ["gene", *tables] and len(wide) == len(g)
    app.text_input(key="sim_spec").set_value("").run()


def test_subset_start_cells(app):
    state = app.session_state[STATE_KEY]
    cond = state.data.perturbations[1]
    app.selectbox(key="sim_start").set_value(cond).run()
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    # the start condition's own perturbation stays on by default, and the page says so
    spec = "+".join(iv.to_spec() for iv in state.data.interventions[cond])
    assert state.last_simulation.start == f"cells of {cond}, {spec} kept on"
    assert state.last_simulation.reference == spec
    app.checkbox(key="sim_keep_start").uncheck().run()
    app.button(key="sim_run").click().run()
    assert state.last_simulation.start == f"cells of {cond}" and state.last_simulation.reference == "control"
    app.selectbox(key="sim_start").set_value(state.data.control).run()
