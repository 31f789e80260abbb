"""Network files that scale: the default edge count of grn.csv, ``--top-k all``, the whole matrix as .npz."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from perturbode_core.errors import PerturbODEError
from perturbode_core.io import edges as edge_io
from perturbode_core.io.checkpoint import load_model, save_checkpoint
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.tools import grn


def cli(*args):
    return subprocess.run([sys.executable, "-m", "perturbode_core", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_default_edge_count_rule():
    # every ordered pair up to ~316 genes (the ranking AUPR needs), then max(20 p, 100,000)
    assert edge_io.default_top_k(12) == 12 * 11
    assert edge_io.default_top_k(316) == 316 * 315 == 99_540
    assert edge_io.default_top_k(317) == 100_000 < 317 * 316
    assert edge_io.default_top_k(2_000) == 100_000
    assert edge_io.default_top_k(10_000) == 200_000


def test_train_writes_every_pair_of_a_small_network_and_the_matrix_on_request(teacher_h5ad, tmp_path):
    run = tmp_path / "run"
    out = cli("train", "--data", teacher_h5ad, "--out", run, "--epochs", 1, "--quiet", "--matrix", "--device", "auto")
    assert out.returncode == 0, out.stderr
    assert "done on CPU" in out.stdout or torch_sees_a_gpu()
    p = 12
    edges = pd.read_csv(run / "grn.csv")
    assert len(edges) == p * (p - 1) and edges["rank"].tolist() == list(range(1, p * (p - 1) + 1))
    G, genes = edge_io.read_matrix_npz(run / "grn_matrix.npz")
    model = load_model(run / "model.pt")
    assert genes == model.gene_names
    np.testing.assert_allclose(G, grn.grn_matrix(model), rtol=1e-6, atol=1e-7)
    # the default (combined) reading: weight is the score that ranks the edges, G the direct effect
    assert model.response_evidence is not None
    S, _ = edge_io.read_matrix_npz(run / "grn_matrix.npz", array="score")
    np.testing.assert_allclose(S, grn.network_matrix(model), rtol=1e-6, atol=1e-7)
    rows, cols = edges["target"].map(genes.index), edges["source"].map(genes.index)
    np.testing.assert_allclose(edges["G"], G[rows, cols], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(edges["weight"], S[rows, cols], rtol=1e-5, atol=1e-7)
    assert (np.diff(edges["weight"].abs().to_numpy()) <= 1e-6).all()  # strongest score first
    assert (np.sign(edges["weight"]) == np.sign(edges["G"])).all() and (edges["sign"] == np.sign(edges["G"])).all()
    five = cli("train", "--data", teacher_h5ad, "--out", tmp_path / "run5", "--epochs", 1, "--quiet", "--top-k", 5)
    assert five.returncode == 0, five.stderr
    assert len(pd.read_csv(tmp_path / "run5" / "grn.csv")) == 5


def torch_sees_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory):
    """An (untrained) 400-gene model: 159,600 ordered pairs, more than the default keeps."""
    p = 400
    model = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=16), seed=0)
    return save_checkpoint(tmp_path_factory.mktemp("big") / "model.pt", model), model


def test_grn_command_default_all_and_npz(big_checkpoint, tmp_path):
    path, model = big_checkpoint
    p = model.n_genes
    out = cli("grn", "--checkpoint", path, "--out", tmp_path / "top.csv")
    assert out.returncode == 0, out.stderr
    top = pd.read_csv(tmp_path / "top.csv")
    assert len(top) == 100_000 < p * (p - 1)
    out = cli("grn", "--checkpoint", path, "--out", tmp_path / "all.csv", "--top-k", "all")
    assert out.returncode == 0, out.stderr
    every = pd.read_csv(tmp_path / "all.csv")
    assert len(every) == p * (p - 1) == 159_600
    pd.testing.assert_frame_equal(every.head(100_000), top)  # the default is the head of the full ranking
    assert not (every["source"] == every["target"]).any()
    out = cli("grn", "--checkpoint", path, "--out", tmp_path / "G.npz")
    assert out.returncode == 0, out.stderr
    G, genes = edge_io.read_matrix_npz(tmp_path / "G.npz")
    assert G.shape == (p, p) and genes == model.gene_names
    np.testing.assert_allclose(G, grn.grn_matrix(model), rtol=1e-6, atol=1e-8)
    assert (tmp_path / "G.npz").stat().st_size < 0.3 * (tmp_path / "all.csv").stat().st_size


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_bad_top_k_is_refused_with_a_message(big_checkpoint, tmp_path, bad):
    out = cli("grn", "--checkpoint", big_checkpoint[0], "--out", tmp_path / "e.csv", "--top-k", bad)
    assert out.returncode == 2 and "positive number of edges or 'all'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "e.csv").exists()


def test_a_file_that_is_no_matrix_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(PerturbODEError, match="Not a network matrix"):
        edge_io.read_matrix_npz(bad)
