"""The training support of a perturbation's targets: by hand, and on the command line on a design
where one protein cannot be moved by any training perturbation (a root of the network)."""

import numpy as np
import pandas as pd
import pytest

from perturbode_core.data.interventions import parse_spec
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.tools.response_evidence import ResponseEvidence
from perturbode_core.tools.target_support import (NOT_PERTURBED, PERTURBED, UNKNOWN, support_note, support_table,
                                                  target_support)
from tests.test_cli import cli


def _model_with_evidence():
    """Genes a..e; training perturbed a and b; a moved c by 2.5 sd and d by 0.4; b moved d by 0.7."""
    model = PerturbODE(list("abcde"), ModelConfig(n_modules=3))
    response = np.array([[0.0, 0.3],   # a (perturbed itself)
                         [0.1, 0.0],   # b (perturbed itself)
                         [2.5, 0.2],   # c: moved by a
                         [0.4, 0.7],   # d: at most 0.7 (under b)
                         [0.0, 0.0]],  # e: never changed
                        dtype=np.float32)
    model.response_evidence = ResponseEvidence(regulators=np.array([0, 1]), response=response, fit=0.9,
                                               n_perturbations=2)
    return model


def test_support_levels_and_largest_change_by_hand():
    model = _model_with_evidence()
    table = support_table(model, parse_spec("a+c+d+e")).set_index("gene")
    assert table["support"].to_dict() == {"a": PERTURBED, "c": NOT_PERTURBED, "d": NOT_PERTURBED, "e": NOT_PERTURBED}
    assert table.loc["c", "largest_change"] == pytest.approx(2.5) and table.loc["c", "under"] == "a"
    assert table.loc["d", "largest_change"] == pytest.approx(0.7) and table.loc["d", "under"] == "b"
    assert table.loc["e", "largest_change"] == 0.0 and table.loc["e", "under"] == ""
    assert np.isnan(table.loc["a", "largest_change"])

    assert support_note(model, parse_spec("a+b:overexpression")) is None  # both perturbed in training: no note
    note = support_note(model, parse_spec("a+d"))
    assert note.startswith("d (moved at most 0.70 control sd by a training perturbation, of b) was not perturbed "
                           "in training")
    assert "; " not in note.split(" was not perturbed")[0]  # only d is named: a was perturbed
    both = support_note(model, parse_spec("c+e"))
    assert both.startswith("c (moved at most 2.50 control sd by a training perturbation, of a); "
                           "e (never moved by a training perturbation) were not perturbed in training")

    model.response_evidence = None  # an older checkpoint: nothing to say, and no false alarm
    assert [s.level for s in target_support(model, parse_spec("c"))] == [UNKNOWN]
    assert support_note(model, parse_spec("c")) is None


def test_an_in_silico_screen_marks_the_candidates_never_perturbed():
    from perturbode_core.tools.insilico_screen import Readout, run_screen
    from perturbode_core.tools.target_support import weakest

    model = _model_with_evidence()
    cells = np.random.default_rng(0).normal(1.0, 0.1, size=(8, 5))
    table = run_screen(model, cells, ["a", "d", "a+d", "b:overexpression"], readout=Readout("gene", "c")).table
    assert table.set_index("perturbation")["support"].to_dict() == {
        "a:knockout": PERTURBED, "d:knockout": NOT_PERTURBED, "a:knockout+d:knockout": NOT_PERTURBED,
        "b:overexpression": PERTURBED}
    assert weakest(model, parse_spec("a+d")).gene == "d"


@pytest.fixture(scope="module")
def drugs_run(tmp_path_factory):
    from perturbode_core.datasets.suite import load_suite_dataset

    tmp = tmp_path_factory.mktemp("drugs")
    adata, edges = load_suite_dataset("drugs", seed=0)  # the accuracy benchmark's signalling design
    adata.write_h5ad(tmp / "drugs.h5ad")
    out = cli("train", "--data", tmp / "drugs.h5ad", "--out", tmp / "run", "--holdout", "PIP3", "--quiet")
    assert out.returncode == 0, out.stderr
    return tmp, edges


def test_simulate_says_when_the_screen_never_moved_a_target(drugs_run):
    tmp, edges = drugs_run
    # PIP3 and Plcg are the roots of this signalling network: no perturbation of another protein moves them
    assert "PIP3" not in set(edges["target"])
    out = cli("simulate", "--checkpoint", tmp / "run" / "model.pt", "--data", tmp / "drugs.h5ad",
              "--perturb", "PIP3:inhibition", "--out", tmp / "pip3.h5ad", "--max-cells", 50)
    assert out.returncode == 0, out.stderr
    assert "note: PIP3 (moved at most" in out.stdout and "was not perturbed in training" in out.stdout
    import anndata as ad

    assert ad.read_h5ad(tmp / "pip3.h5ad").uns["perturbode"]["support_note"].startswith("PIP3 (moved at most")
    # Akt was inhibited in training: its effects are learned from its own perturbation, no note
    out = cli("simulate", "--checkpoint", tmp / "run" / "model.pt", "--data", tmp / "drugs.h5ad",
              "--perturb", "Akt:inhibition", "--out", tmp / "akt.h5ad", "--max-cells", 50)
    assert out.returncode == 0, out.stderr
    assert "note:" not in out.stdout


def test_the_largest_change_tells_a_moved_target_from_a_root(drugs_run):
    """Neither Erk nor PIP3 is perturbed in this screen; the inhibitions of proteins upstream of Erk
    move it by more than a control sd, while PIP3, a root, is hardly moved: the checkpoint's own
    evidence says which training perturbation moved a gene and by how much."""
    from perturbode_core.io.checkpoint import load_model

    import networkx as nx

    tmp, edges = drugs_run
    model = load_model(tmp / "run" / "model.pt")
    table = support_table(model, parse_spec("Erk:inhibition+PIP3:inhibition")).set_index("gene")
    upstream_of_erk = nx.ancestors(nx.from_pandas_edgelist(edges, "source", "target", create_using=nx.DiGraph), "Erk")
    assert (table["support"] == NOT_PERTURBED).all()
    assert table.loc["Erk", "largest_change"] > 1.0 and table.loc["Erk", "under"] in upstream_of_erk
    assert table.loc["PIP3", "largest_change"] < 0.5


def test_the_simulate_page_warns_about_a_target_the_screen_never_moved(start_app):
    import dataclasses

    from perturbode_ui.state import STATE_KEY

    app = start_app()
    state = app.session_state[STATE_KEY]
    app.switch_page("pages/simulate_page.py").run()
    app.text_input(key="sim_spec").set_value("Pu.1:knockout").run()
    app.button(key="sim_run").click().run()
    assert not app.exception and not app.error
    # the demo screen perturbs every one of its genes: nothing to warn about
    assert not any("not perturbed in training" in i.value for i in app.info)
    # the same model, its evidence as if Pu.1 had never been perturbed
    model, ev = state.model, state.model.response_evidence
    pu1 = model.gene_index["Pu.1"]
    keep = [k for k, r in enumerate(ev.regulators) if int(r) != pu1]
    response = ev.response[:, keep].copy()
    response[pu1] = 0.1
    model.response_evidence = dataclasses.replace(ev, regulators=ev.regulators[keep], response=response)
    try:
        app.button(key="sim_run").click().run()
        assert not app.exception and not app.error
        assert any(i.value.startswith("Pu.1 (moved at most 0.10 control sd") for i in app.info)
    finally:
        model.response_evidence = ev  # the demo model may be shared with other tests



def test_held_out_scores_say_whether_each_target_was_perturbed_in_training(trained, teacher_data):
    from perturbode_core.tools.evaluate import prediction_comparison

    # G003 and G007 were held out of training, G001 was knocked out in it (scored here in-sample)
    _, per = prediction_comparison(trained.model, teacher_data, ["G003", "G007", "G001"],
                                   train_conditions=[c for c in teacher_data.conditions if c not in ("G003", "G007")],
                                   baselines=["no_change"])
    support = per[per.method == "PerturbODE"].set_index("condition")["support"]
    assert support.to_dict() == {"G003": NOT_PERTURBED, "G007": NOT_PERTURBED, "G001": PERTURBED}
    # every method's row of a condition carries the same support
    assert (per[per.method == "no_change"].set_index("condition")["support"] == support).all()
