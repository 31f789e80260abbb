"""The shared-response test that turns the perturbation offset on (perturbode_core.data.shared_response)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbode_core.data.dataset import from_anndata
from perturbode_core.data.shared_response import describe_offset, has_shared_response, shared_response_gain
from perturbode_core.model import ModelConfig, PerturbODE

N_GENES, N_KO, CELLS = 12, 6, 30


def screen(shared: float, specific: float, noise: float = 0.1, seed: int = 0, *, as_anndata: bool = False):
    """Knockouts of genes g0..g5: each takes its own gene down by 3, moves the genes of its own
    block (g6..g11, two per knockout, alternating signs) by ``specific`` and every gene it does
    not target by ``shared``; cells are the condition mean plus N(0, ``noise``) noise."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(N_GENES)]
    labels, rows = [], []
    for k in range(-1, N_KO):
        mean = np.full(N_GENES, 2.0)
        if k >= 0:
            mean += shared
            mean[k] -= 3.0 + shared  # the target's own change: the knockout's, not shared
            block = N_KO + (2 * k) % (N_GENES - N_KO)
            mean[block:block + 2] += specific * (1 if k % 2 else -1)
        rows.append(mean + rng.normal(0, noise, (CELLS, N_GENES)))
        labels += ["control" if k < 0 else genes[k]] * CELLS
    adata = ad.AnnData(X=np.vstack(rows).astype(np.float32), obs=pd.DataFrame({"perturbation": labels}),
                       var=pd.DataFrame(index=genes))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    return adata if as_anndata else from_anndata(adata)


def test_a_response_every_knockout_shares_is_found_although_the_targets_own_changes_are_larger():
    data = screen(shared=0.3, specific=0.0, noise=0.5)
    # the others' average predicts every off-target shift but for the noise of the means (30 cells,
    # sd 0.5 against a shared 0.3): gain 0.91. Counted in, the targets' own drops of 3, which the
    # others never predict, made it 0.07 (below the 0.1 the rule asked for then): no offset
    assert shared_response_gain(data) == pytest.approx(0.91, abs=0.03)
    assert has_shared_response(data)
    # without noise the others' average is exact
    assert shared_response_gain(screen(shared=0.3, specific=0.0, noise=0.01)) == pytest.approx(1.0, abs=0.01)


def test_condition_specific_effects_alone_are_no_shared_response():
    data = screen(shared=0.0, specific=1.0)
    # the others' average puts a fifth of each specific effect where there is none: worse than no shift
    assert shared_response_gain(data) < -0.1
    assert not has_shared_response(data)
    # and the rule the model is built with follows it
    assert PerturbODE.from_data(data, ModelConfig()).config.perturbation_offset == "none"
    assert PerturbODE.from_data(screen(0.5, 0.0), ModelConfig()).config.perturbation_offset == "per_type"


def test_only_the_training_conditions_are_looked_at():
    data = screen(shared=0.5, specific=0.0)
    assert np.isnan(shared_response_gain(data, ["control", "g0", "g1"]))  # fewer than three perturbed
    assert shared_response_gain(data, ["g0", "g1", "g2"]) == pytest.approx(1.0, abs=0.05)


def test_the_command_line_says_whether_a_shared_response_is_learned(tmp_path):
    from test_cli import cli

    said = {}
    for name, shared, specific in (("shared", 0.3, 0.0), ("specific", 0.0, 1.0)):
        path = tmp_path / f"{name}.h5ad"
        screen(shared, specific, noise=0.5 if shared else 0.1, as_anndata=True).write_h5ad(path)
        out = cli("train", "--data", path, "--out", tmp_path / name, "--epochs", 1)
        assert out.returncode == 0, out.stderr
        said[name] = out.stderr
    assert describe_offset("per_type") in said["shared"] and "one per intervention type" in said["shared"]
    assert describe_offset("none") in said["specific"] and "is learned" not in said["specific"]
