"""The default network reading: G's rank plus the fit-weighted rank of the model's own simulated
responses to its training perturbations (perturbode_core.tools.response_evidence, tools.grn)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata

from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import teacher as synthetic
from perturbode_core.io.checkpoint import load_checkpoint, load_model, save_checkpoint
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.tools import grn
from perturbode_core.tools.response_evidence import ResponseEvidence, response_evidence
from perturbode_core.train import TrainConfig, fit


def hand_model(G_like: np.ndarray) -> PerturbODE:
    """A model whose G = A diag(alpha) B is ``G_like`` exactly (A = G, B = I, alpha = 1)."""
    p = G_like.shape[0]
    model = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=p), seed=0)
    with torch.no_grad():
        model.A.copy_(torch.as_tensor(G_like, dtype=torch.float32))
        model.B.copy_(torch.eye(p))
        model.raw_alpha.fill_(float(np.log(np.e - 1.0)))  # softplus -> 1
    return model


def test_percentile_rank_is_scipys_mean_rank_over_all_entries():
    M = np.array([[0.0, -3.0, 1.0], [0.0, 2.0, 0.0], [1.0, 0.0, -0.5]])
    expected = (rankdata(np.abs(M).ravel()) / M.size).reshape(M.shape)
    np.testing.assert_allclose(grn.percentile_rank(M), expected)
    # by hand: four zeros share ranks 1-4 (2.5), 0.5 is rank 5, the two 1s ranks 6-7 (6.5), 2 rank 8, 3 rank 9
    assert grn.percentile_rank(M)[0, 0] == pytest.approx(2.5 / 9)
    assert grn.percentile_rank(M)[0, 2] == pytest.approx(6.5 / 9)
    assert grn.percentile_rank(M)[0, 1] == pytest.approx(1.0)


def test_the_combined_reading_reorders_edges_by_the_models_responses_as_far_as_they_fit():
    G = np.array([[0.0, 0.9, 0.1], [-0.8, 0.0, 0.05], [0.3, -0.7, 0.0]])
    model = hand_model(G)
    np.testing.assert_allclose(grn.grn_matrix(model), G, atol=1e-6)
    assert grn.network_reading(model) == "direct"  # no evidence: G alone
    np.testing.assert_allclose(grn.network_matrix(model), grn.grn_matrix(model))
    # only gene 2 was perturbed in training; the model's response to it is largest in gene 0
    response = np.array([[5.0], [1.0], [0.0]], dtype=np.float32)
    model.response_evidence = ResponseEvidence(regulators=np.array([2]), response=response, fit=1.0, n_perturbations=1)
    assert grn.network_reading(model) == "combined"
    S = grn.network_matrix(model)
    R = np.zeros((3, 3))
    R[:, 2] = response[:, 0]
    expected = grn.percentile_rank(G) + 1.0 * grn.percentile_rank(R)
    np.testing.assert_allclose(np.abs(S), expected, atol=1e-6)
    assert (np.sign(S) == np.where(G < 0, -1, 1)).all()  # signed by G
    edges = grn.model_edges(model)
    # G ranks g2 -> g0 (|G| 0.1) fifth of six; the largest response lifts it to first: by hand, the
    # percentile ranks (of 9 entries) are 5/9 + 9/9 = 14/9 against 9/9 + 4/9 (7 tied zeros) for g1 -> g0
    assert list(grn.model_edges(model, reading="direct")["source"] + ">" + grn.model_edges(model, reading="direct")["target"]) \
        == ["g1>g0", "g0>g1", "g1>g2", "g0>g2", "g2>g0", "g2>g1"]
    assert list(edges["source"] + ">" + edges["target"])[:2] == ["g2>g0", "g1>g0"]
    assert edges["weight"].iloc[0] == pytest.approx(14 / 9) and edges["weight"].iloc[1] == pytest.approx(13 / 9)
    np.testing.assert_allclose(edges["G"], [G[r, c] for r, c in zip(edges["target"].str[1:].astype(int),
                                                                      edges["source"].str[1:].astype(int))], atol=1e-6)
    # a model that does not reproduce its training responses (fit 0) is ranked by G alone
    model.response_evidence = ResponseEvidence(regulators=np.array([2]), response=response, fit=0.0, n_perturbations=1)
    pd.testing.assert_frame_equal(grn.model_edges(model)[["source", "target"]],
                                  grn.model_edges(model, reading="direct")[["source", "target"]])
    assert "median correlation 0.00" in grn.describe_reading(model)
    with pytest.raises(Exception, match="reading"):
        grn.network_matrix(model, reading="total")


@pytest.fixture(scope="module")
def noiseless():
    """A teacher network and noise-free data it simulated: its own responses are the data's."""
    teacher = synthetic.teacher_model(8, seed=3)
    adata = synthetic.teacher_dataset(teacher, cells_per_condition=20, noise=0.0, seed=3)
    return teacher, from_anndata(adata)


def test_a_model_that_made_the_data_reproduces_them_with_fit_one(noiseless):
    teacher, data = noiseless
    ev = response_evidence(teacher, data)
    assert ev.fit == pytest.approx(1.0, abs=1e-4)
    assert ev.n_perturbations == 8 and ev.regulators.tolist() == list(range(8))
    assert (np.diag(ev.dense(8)) == 0).all() and ev.response.shape == (8, 8)
    # each column: |simulated mean change| of every gene under that knockout, in control-sd units
    ctrl = data.X[data.cells_of(data.control)]
    sims = teacher.simulate(ctrl, ["control", [data.interventions["G002"][0]]])[-1]
    sd = ctrl.std(0) + 1e-6
    manual = np.abs(sims[1].mean(0) - sims[0].mean(0)) / sd
    manual[2] = 0.0
    np.testing.assert_allclose(ev.response[:, 2], manual, rtol=1e-4, atol=1e-3)
    # only the conditions given are looked at
    some = response_evidence(teacher, data, ["control", "G001", "G005"])
    assert some.regulators.tolist() == [1, 5] and some.n_perturbations == 2
    assert response_evidence(teacher, data, ["control"]) is None


def test_the_shared_offset_is_no_regulators_response(noiseless):
    """A model with a perturbation offset: its simulated knockouts move every gene by the offset,
    but the evidence holds the regulators' own responses (the model without it); its fit is that
    of its predictions (with it: worse, on data made without one); the offset is kept."""
    import copy
    import dataclasses

    from perturbode_core.data.interventions import INTERVENTION_TYPES

    teacher, data = noiseless
    shared = copy.deepcopy(teacher)
    shared.config = dataclasses.replace(teacher.config, perturbation_offset="per_type")
    with torch.no_grad():
        # +-0.5 by gene (a uniform shift would leave the correlations of the fit unchanged)
        shared.type_offset[INTERVENTION_TYPES.index("knockout")] = torch.tensor([0.5, -0.5] * 4)
    offset = shared.type_offset.detach().clone()
    ctrl = data.X[data.cells_of(data.control)]
    knockout = [data.interventions["G002"][0]]
    moved = shared.simulate(ctrl, [knockout])[-1, 0].mean(0) - teacher.simulate(ctrl, [knockout])[-1, 0].mean(0)
    assert np.abs(np.delete(moved, 2)).min() > 0.1  # the offset moves every other gene
    ev, own = response_evidence(shared, data), response_evidence(teacher, data)
    np.testing.assert_allclose(ev.response, own.response, atol=1e-5)
    assert own.fit == pytest.approx(1.0, abs=1e-4) and ev.fit < 0.9
    assert torch.equal(shared.type_offset.detach(), offset)


def test_a_model_that_did_not_make_the_data_fits_them_worse(noiseless):
    teacher, data = noiseless
    stranger = synthetic.teacher_model(8, seed=11)
    assert response_evidence(stranger, data).fit < response_evidence(teacher, data).fit - 0.2


def test_the_evidence_travels_in_the_checkpoint_and_damaged_evidence_is_dropped(noiseless, tmp_path):
    teacher, data = noiseless
    teacher.response_evidence = response_evidence(teacher, data)
    path = save_checkpoint(tmp_path / "model.pt", teacher)
    loaded = load_model(path)
    assert loaded.response_evidence.fit == pytest.approx(teacher.response_evidence.fit)
    np.testing.assert_array_equal(loaded.response_evidence.response, teacher.response_evidence.response)
    np.testing.assert_allclose(grn.network_matrix(loaded), grn.network_matrix(teacher))
    # the file holds plain tensors and numbers only (it loads with weights_only=True)
    bundle = torch.load(path, weights_only=True)
    assert set(bundle["response_evidence"]) == {"regulators", "response", "fit", "n_perturbations"}
    bundle["response_evidence"]["response"] = torch.zeros(3, 2)  # does not fit the 8 genes
    torch.save(bundle, tmp_path / "bad.pt")
    assert load_model(tmp_path / "bad.pt").response_evidence is None
    assert grn.network_reading(load_model(tmp_path / "bad.pt")) == "direct"
    teacher.response_evidence = None


def test_training_keeps_the_evidence_of_the_weights_it_returns(teacher_data, tmp_path):
    cfg = TrainConfig(epochs=2, cells_per_condition=16, warmup_steps=20, seed=0)
    train = [c for c in teacher_data.conditions if c != "G004"]
    result = fit(teacher_data, train_config=cfg, train_conditions=train, checkpoint_path=tmp_path / "model.pt")
    ev = result.model.response_evidence
    assert ev is not None and 0.0 <= ev.fit <= 1.0
    assert ev.n_perturbations == 11 and 4 not in ev.regulators.tolist()  # G004 was held out
    expected = response_evidence(result.model, teacher_data, train)
    np.testing.assert_allclose(ev.response, expected.response, rtol=1e-5, atol=1e-6)
    on_disk = load_checkpoint(tmp_path / "model.pt").model
    np.testing.assert_allclose(grn.network_matrix(on_disk), grn.network_matrix(result.model), atol=1e-6)
    # a run that starts from a trained model computes the evidence of its own weights
    again = fit(teacher_data, model=result.model, train_config=TrainConfig(epochs=1, cells_per_condition=16,
                                                                            warmup_steps=0, seed=1),
                train_conditions=["control", "G001", "G002"])
    assert again.model.response_evidence.regulators.tolist() == [1, 2]


def test_a_stopped_run_keeps_the_evidence_too(teacher_data, tmp_path):
    stop = threading.Event()
    stop.set()  # stops after the first step
    result = fit(teacher_data, train_config=TrainConfig(epochs=3, cells_per_condition=16, warmup_steps=0, seed=0),
                 stop=stop, checkpoint_path=tmp_path / "model.pt")
    assert result.stopped and result.model.response_evidence is not None
    assert load_model(tmp_path / "model.pt").response_evidence is not None


def test_the_benchmark_scores_g_alone_beside_the_default_and_its_verdict_ignores_it(teacher_data):
    import importlib.util
    from pathlib import Path

    from perturbode_core.tools.evaluate import DIRECT_NAME, MODEL_NAME, run_benchmark

    truth = synthetic.teacher_edges(synthetic.teacher_model(12, seed=1))
    res = run_benchmark(teacher_data, truth=truth, holdout=0.2, seed=0, log=None,
                        train_config=TrainConfig(epochs=2, cells_per_condition=16, warmup_steps=20),
                        network_baselines=["knockout_zscore"], prediction_baselines=["mean_shift"])
    table = res.table.set_index("method")
    assert table.loc[DIRECT_NAME, "kind"] == "model reading"
    genes = list(teacher_data.gene_names)
    from perturbode_core.tools.metrics import network_metrics

    assert table.loc[MODEL_NAME, "aupr"] == pytest.approx(network_metrics(grn.network_matrix(res.model), truth, genes)["aupr"])
    assert table.loc[DIRECT_NAME, "aupr"] == pytest.approx(network_metrics(grn.grn_matrix(res.model), truth, genes)["aupr"])
    spec = importlib.util.spec_from_file_location("accuracy", Path(__file__).parents[1] / "benchmarks" / "accuracy.py")
    accuracy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(accuracy)
    raw = res.table.assign(dataset="teacher", seed=0)
    raw.loc[raw.method == DIRECT_NAME, "aupr"] = 1.0  # a reading of the model is never "the best baseline"
    verdict = accuracy.verdict(raw).iloc[0]
    assert DIRECT_NAME not in verdict["aupr"] and "knockout_zscore" in verdict["aupr"]


def test_the_cli_readings_are_the_libraries():
    from perturbode_core.cli.common import READINGS

    assert READINGS == grn.NETWORK_READINGS


def test_unmeasured_regulators_edges_share_the_genes_scale():
    """Edges out of an unmeasured regulator (A diag(alpha) W_latent) are ranked in one population
    with the genes' edges, so a table of both (the literature check, the Network page) compares
    like with like."""
    G = np.array([[0.0, 0.9, 0.1], [-0.8, 0.0, 0.05], [0.3, -0.7, 0.0]])
    p = 3
    model = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=p), latent_regulators=["X"], seed=0)
    with torch.no_grad():
        model.A.copy_(torch.as_tensor(G, dtype=torch.float32))
        model.B.copy_(torch.eye(p))
        model.raw_alpha.fill_(float(np.log(np.e - 1.0)))
        model.W_latent.copy_(torch.tensor([[0.2], [0.0], [-0.4]]))  # X's input into the three modules
    L = grn.latent_matrix(model)
    # A diag(alpha) W_latent by hand: (0.9 * 0 + 0.1 * -0.4, -0.8 * 0.2 + 0.05 * -0.4, 0.3 * 0.2)
    np.testing.assert_allclose(L[:, 0], [-0.04, -0.18, 0.06], atol=1e-6)
    # training perturbed g1 and X (index p + 0 of the model's target_names)
    response = np.array([[2.0, 3.0], [0.0, 1.0], [1.0, 0.5]], dtype=np.float32)
    model.response_evidence = ResponseEvidence(regulators=np.array([1, p]), response=response, fit=0.5,
                                               n_perturbations=2)
    D = np.hstack([G, L])
    R = np.zeros((p, p + 1))
    R[:, 1], R[:, p] = response[:, 0], response[:, 1]
    joint = grn.percentile_rank(D) + 0.5 * grn.percentile_rank(R)
    np.testing.assert_allclose(np.abs(grn.network_matrix(model)), joint[:, :p], atol=1e-6)
    lat = grn.latent_edges(model)
    # by hand, ranks among the 12 entries of [G | L] and of R: X -> g1 has |L| 0.18 (rank 8) and a
    # response of 1.0 (tied with g1 -> g2's at ranks 9-10): (8 + 0.5 x 9.5) / 12 = 12.75 / 12, first;
    # X -> g0 (|L| rank 4, response 3.0 rank 12) and X -> g2 (rank 6, response 0.5 rank 8) tie at 10 / 12
    assert joint[1, p] == pytest.approx(12.75 / 12) and joint[0, p] == pytest.approx(10 / 12) == joint[2, p]
    order = np.argsort(-joint[:, p], kind="stable")
    assert list(lat["target"]) == ["g1", "g0", "g2"] == [f"g{i}" for i in order] and (lat["source"] == "X").all()
    np.testing.assert_allclose(lat["weight"].abs(), joint[order, p], atol=1e-6)
    np.testing.assert_allclose(lat["G"], L[order, 0], atol=1e-6)
    assert (lat["sign"] == np.sign(L[order, 0])).all()
    # X's strongest edge outranks some of the genes' own edges once both are on one scale
    assert joint[0, p] > np.sort(joint[:, :p][~np.eye(p, dtype=bool)])[0]
    direct = grn.latent_edges(model, reading="direct")
    np.testing.assert_allclose(direct["weight"], direct["G"])


def test_the_real_screens_evidence_covers_its_unmeasured_regulators():
    from perturbode_core.datasets import demo_checkpoint_path

    model = load_model(demo_checkpoint_path("papalexi2021"))
    ev = model.response_evidence
    assert ev is not None, "rebuild the demo: python scripts/build_datasets.py --demo-only"
    sources = [model.target_names[i] for i in ev.regulators]
    assert "STAT1" in sources and "IRF1" in sources  # IRF1 is perturbed but not among the measured genes
    assert (ev.regulators >= model.n_genes).sum() == model.n_latent == 16
