"""The shipped demo checkpoints: safe to load, fit their datasets, and know the network."""

import pytest

from perturbode_core.io.checkpoint import check_genes, load_checkpoint, load_model
from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import demo_checkpoint_path, load_dataset, truth_edges
from perturbode_core.tools.grn import grn_matrix
from perturbode_core.tools.metrics import network_metrics


def test_myeloid_demo_checkpoint_recovers_the_krumsiek_network():
    path = demo_checkpoint_path("myeloid")
    assert path is not None, "run: python scripts/build_datasets.py --demo-only"
    data = from_anndata(load_dataset("myeloid"))
    bundle = load_checkpoint(path)  # weights_only: plain tensors and values
    check_genes(bundle, data.gene_names)
    m = network_metrics(grn_matrix(load_model(path)), truth_edges("myeloid"), data.gene_names)
    # 30 true edges among 110 ordered pairs: a random ranking has AUPR ~0.27
    assert m["aupr_ratio"] > 2.0 and m["auroc"] > 0.75, m
    assert m["sign_accuracy"] > 0.7


def test_knockout_in_demo_model_reproduces_myeloid_fate_effects():
    """Gata1 knockout lowers its erythroid targets; Pu.1 knockout lifts Gata1 (the published rules)."""
    from perturbode_core.tools.simulate import effect_table

    model = load_model(demo_checkpoint_path("myeloid"))
    cells = from_anndata(load_dataset("myeloid")).control_cells()
    gata1 = effect_table(model, cells, "Gata1:knockout").set_index("gene").mean_change
    assert gata1["Fog1"] < 0 and gata1["EKLF"] < 0
    pu1 = effect_table(model, cells, "Pu.1:knockout").set_index("gene").mean_change
    assert pu1["Gata1"] > 0 and pu1["cJun"] < 0


@pytest.mark.parametrize("name", ["human-tf-atlas"])
def test_other_shipped_demo_checkpoints_fit_their_data(name):
    path = demo_checkpoint_path(name)
    if path is None:
        pytest.fail(f"no shipped checkpoint for {name}: run python scripts/build_datasets.py --demo-only")
    check_genes(load_checkpoint(path), from_anndata(load_dataset(name)).gene_names)
