"""The dashboard on the built-in real screen: the Data page's choice, knockout efficiency and set-aside
cells; unmeasured regulators on the Network page; literature support on the Evaluate page."""

from __future__ import annotations

import pytest

from perturbode_ui import loaders
from perturbode_ui.state import STATE_KEY

NAME = "papalexi2021"


@pytest.fixture(scope="module")
def app(start_app):
    at = start_app()
    assert loaders.builtin_datasets()[:2] == ["myeloid", NAME]  # the two demos first: a choice
    at.selectbox(key="data_builtin_name").set_value(NAME).run()
    at.button(key="data_builtin_load").click().run()
    assert not at.exception, at.exception
    return at


def test_the_data_page_offers_the_simulated_demo_and_the_real_screen(app):
    labels = [loaders.dataset_label(n) for n in loaders.builtin_datasets()[:2]]
    assert "simulated, known network" in labels[0] and "real screen" in labels[1]
    assert any(labels[1] in c.value for c in app.caption)  # said under the choice
    state = app.session_state[STATE_KEY]
    assert state.dataset_name == NAME and state.truth is None
    assert state.model is not None and state.model_source == "demo checkpoint"  # its own trained model
    assert state.model.latent_names == state.data.unmeasured_targets


def test_the_data_page_shows_knockout_efficiency_and_what_was_set_aside(app):
    assert not app.exception and not app.error
    assert "Knockout efficiency" in [s.value for s in app.subheader]
    tables = [df.value for df in app.dataframe]
    eff = next(t for t in tables if "efficiency" in t.columns)
    row = eff.set_index("condition").loc["IFNGR1"]
    assert row["status"] == "classified" and 0.6 < row["efficiency"] < 1
    assert any("unmeasured regulators: ATF2" in c.value for c in app.caption)
    assert any("several guides" in " ".join(map(str, t.get("reason", []))) for t in tables)


def test_the_network_page_marks_unmeasured_regulators(app):
    app.switch_page("pages/network_page.py").run()
    assert not app.exception and not app.error
    assert any("and the unmeasured regulators" in c.value for c in app.caption)  # 299 genes: modules first
    app.radio(key="net_view_True").set_value("genes").run()
    assert not app.exception and not app.error
    fig = next(c for c in app.get("plotly_chart"))
    assert '"not measured"' in fig.proto.spec  # the diamonds' legend entry
    assert any("Not measured (open diamonds)" in c.value for c in app.caption)
    table = app.dataframe[0].value
    latent = table[~table["measured"]]
    assert len(latent) and set(latent["source"]) <= set(app.session_state[STATE_KEY].model.latent_names)


def test_the_evaluate_page_scores_literature_support(app):
    app.switch_page("pages/evaluate_page.py").run()
    assert not app.exception
    assert "Literature support" in [h.value for h in app.header]
    lit = next(df.value for df in app.dataframe if "random_precision" in df.value.columns)
    assert set(lit["reference"]) == {"collectri", "trrust"}
    assert lit["random_precision"].between(0, 1).all() and lit["p_value"].between(0, 1).all()
    assert any("degree" in c.value for c in app.caption)  # the null is said in words


def test_an_uploaded_screen_gets_guides_escapees_and_gene_selection_from_the_data_page(start_app, tmp_path):
    import numpy as np

    from perturbode_core.datasets import load_dataset

    at = start_app()
    adata = load_dataset(NAME)
    small = adata[np.sort(np.random.default_rng(0).choice(adata.n_obs, 6000, replace=False))].copy()
    path = tmp_path / "screen.h5ad"
    small.write_h5ad(path)
    at.file_uploader(key="data_upload").upload("screen.h5ad", path.read_bytes()).run()
    assert at.selectbox(key="data_guides").options == ["(none)", "guide_counts", "guide"]
    at.checkbox[0].check()  # normalise raw counts
    at.selectbox(key="data_guides").set_value("guide_counts")
    at.radio(key="data_escapees").set_value("flag")
    at.number_input(key="data_hvg").set_value(150)
    at.button(key="data_use").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    data = at.session_state[STATE_KEY].data
    assert data.preprocessing == {"normalized": True, "genes_in_file": 299, "hvg": 150, "hvg_flavor": "seurat",
                                  "targets_kept": 9, "escapees": "flag"}
    assert "counts" in data.layers and "assigned_guide" in data.obs and data.escape is not None
    assert "Knockout efficiency" in [s.value for s in at.subheader]
    # the on-target check: each knockout's own level beside its control level (JAK2 keeps 22 %)
    assert "On-target levels" in [s.value for s in at.subheader]
    assert any("knockouts left" in c.value and "of their targets' level in all" in c.value for c in at.caption)


def test_the_train_and_simulate_pages_say_what_a_knockout_leaves(app):
    from perturbode_core.data.knockout_level import describe_knockout_level

    level = app.session_state[STATE_KEY].model.config.knockout_level  # the demo's: 0.61
    assert 0.5 < level < 0.75
    app.switch_page("pages/train_page.py").run()
    assert not app.exception and not app.error
    assert any(describe_knockout_level(level) in c.value for c in app.caption)
    app.switch_page("pages/simulate_page.py").run()
    assert not app.exception and not app.error
    app.text_input(key="sim_spec").set_value("STAT2:knockout").run()
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    said = [c.value for c in app.caption if "of its own level, as this screen's training knockouts" in c.value]
    assert said and said[0].startswith(f"The knockout of STAT2 leaves {100 * level:.0f} %")
