"""Built-in datasets: registry, validity, the myeloid fate effects, files and the CLI."""

import numpy as np
import pandas as pd
import pytest

from perturbode_core.cli.main import main
from perturbode_core.data.dataset import from_anndata, load
from perturbode_core.datasets import list_datasets, load_dataset, simulate_dataset, truth_edges
from perturbode_core.io.edges import truth_from_uns
from perturbode_core.datasets.registry import ATLAS_TFS, shipped_path
from perturbode_core.errors import PerturbODEError


def condition_means(adata):
    df = pd.DataFrame(np.asarray(adata.X), columns=adata.var_names)
    return df.groupby(adata.obs["perturbation"].astype(str).to_numpy()).mean()


def test_registry_lists_the_datasets():
    table = list_datasets()
    assert table["name"].tolist() == ["myeloid", "human-tf-atlas", "papalexi2021", "sergio-ds1", "sergio-ds2"]
    assert table.set_index("name")["shipped"].to_dict() == {"myeloid": True, "human-tf-atlas": True,
                                                             "papalexi2021": True, "sergio-ds1": False,
                                                             "sergio-ds2": False}
    real = table.set_index("name").loc["papalexi2021"]
    assert (real["kind"], real["genes"], real["cells"], real["conditions"], real["edges"]) == ("real", 299, 20729, 26, 0)
    assert table.set_index("name").loc["myeloid", ["genes", "edges", "conditions"]].tolist() == [11, 30, 23]
    assert (table["description"].str.len() > 20).all()
    with pytest.raises(PerturbODEError, match="Unknown dataset"):
        load_dataset("nope")


def test_dataset_info_reads_the_recipe_alone_and_agrees_with_the_listing():
    from perturbode_core.datasets import dataset_info, registry

    registry._network_cached.cache_clear()
    assert dataset_info("papalexi2021")["kind"] == "real" and dataset_info("sergio-ds2")["kind"] == "simulated"
    assert registry._network_cached.cache_info().currsize == 0  # no network was built for it
    table = list_datasets().set_index("name")
    for name in table.index:
        assert dataset_info(name) == table.loc[name, ["description", "kind"]].to_dict()
    with pytest.raises(PerturbODEError, match="Unknown dataset"):
        dataset_info("nope")


@pytest.mark.parametrize("name,cells", [("myeloid", None), ("human-tf-atlas", None), ("sergio-ds1", 8),
                                        ("sergio-ds2", 3)])
def test_every_dataset_passes_validation(name, cells):
    adata = load_dataset(name, cells_per_condition=cells)
    data = from_anndata(adata, source=name)
    assert data.n_genes == adata.n_vars and np.isfinite(data.X).all()
    assert data.control == "control" and len(data.perturbations) == len(data.conditions) - 1
    truth = truth_edges(name)
    assert list(truth.columns) == ["source", "target", "sign"]
    pd.testing.assert_frame_equal(truth_from_uns(adata), truth)
    assert set(truth.source) | set(truth.target) <= set(adata.var_names)
    if cells:
        assert (adata.obs["perturbation"].value_counts() == cells).all()


def test_myeloid_fate_effects_in_shipped_data():
    m = condition_means(load_dataset("myeloid"))
    ctrl = m.loc["control"]
    gata1_ko, pu1_ko = m.loc["Gata1"] - ctrl, m.loc["Pu.1"] - ctrl
    # Gata1 KO removes the erythroid / megakaryocyte programme
    assert (gata1_ko[["Fog1", "EKLF", "SCL"]] < -1.0).all(), gata1_ko
    # Pu.1 KO removes the monocyte programme and lifts Pu.1's repression of Gata1 and Gata2
    assert (pu1_ko[["cJun", "EgrNab"]] < -1.0).all(), pu1_ko
    assert (pu1_ko[["Gata1", "Gata2"]] > 1.0).all(), pu1_ko
    # knockouts read as 0 and overexpression raises the factor
    assert m.loc["Gata1", "Gata1"] == 0 and m.loc["Pu.1:overexpression", "Pu.1"] > ctrl["Pu.1"] + 0.5


def test_myeloid_fate_effects_hold_for_another_seed_on_levels():
    adata = simulate_dataset("myeloid", cells_per_condition=60, seed=11, technical_noise=False)
    m = condition_means(adata)
    ctrl = m.loc["control"]
    assert (m.loc["Gata1", ["Fog1", "EKLF", "SCL"]] < 0.5 * ctrl[["Fog1", "EKLF", "SCL"]]).all()
    assert (m.loc["Pu.1", ["cJun", "EgrNab"]] < 0.5 * ctrl[["cJun", "EgrNab"]]).all()
    assert (m.loc["Pu.1", ["Gata1", "Gata2"]] > 1.5 * ctrl[["Gata1", "Gata2"]]).all()


def test_shipped_myeloid_is_the_recipe():
    shipped = load_dataset("myeloid")
    fresh = simulate_dataset("myeloid")
    np.testing.assert_array_equal(np.asarray(shipped.X), np.asarray(fresh.X))
    np.testing.assert_array_equal(shipped.layers["counts"], fresh.layers["counts"])
    assert shipped_path("myeloid").stat().st_size < 1e6 and shipped_path("human-tf-atlas").stat().st_size < 3e6


def test_human_atlas_has_real_tfs_and_overexpression():
    adata = load_dataset("human-tf-atlas")
    genes = set(adata.var_names)
    for tf in ["ETV2", "ERG", "FLI1", "SOX17", "TAL1", "GATA2", "NEUROG2", "ASCL1", "MYOD1", "FOXA2", "HNF4A",
               "GATA4", "GATA6", "POU5F1", "SOX2", "NANOG"]:
        assert tf in genes
    assert 200 <= adata.n_vars <= 400
    assert set(adata.obs["intervention_type"]) == {"control", "overexpression"}
    m = condition_means(adata)
    tfs = [tf for group in ATLAS_TFS.values() for tf in group]
    assert sorted(m.index.drop("control")) == sorted(tfs)
    lift = np.array([m.loc[tf, tf] - m.loc["control", tf] for tf in tfs])
    assert (lift > 0.5).all()
    # direct targets move more than other genes (the network is in the data)
    truth = truth_edges("human-tf-atlas")
    on, off = [], []
    for tf in tfs:
        d = (m.loc[tf] - m.loc["control"]).drop(tf)
        targets = [t for t in truth.loc[truth.source == tf, "target"] if t != tf]
        on.append(d[targets].abs().mean())
        off.append(d.drop(targets).abs().mean())
    assert np.mean(on) > 2 * np.mean(off)


def test_cli_writes_readable_dataset(tmp_path, capsys):
    out = tmp_path / "demo" / "myeloid.h5ad"
    assert main(["dataset", "myeloid", "--out", str(out)]) == 0
    data = load(out)
    assert data.n_genes == 11 and len(data.conditions) == 23
    edges = pd.read_csv(tmp_path / "demo" / "myeloid_edges.csv")
    assert list(edges.columns) == ["source", "target", "sign"] and len(edges) == 30
    assert main(["dataset", "sergio-ds1", "--out", str(tmp_path / "s1.h5ad"), "--cells-per-condition", "4"]) == 0
    assert load(tmp_path / "s1.h5ad").n_cells == 11 * 4
    assert main(["dataset", "--list"]) == 0
    assert "human-tf-atlas" in capsys.readouterr().out
    assert main(["dataset", "nope", "--out", str(tmp_path / "x.h5ad")]) == 2
    assert main(["dataset", "myeloid", "--out", str(tmp_path / "x.csv")]) == 2
    assert "does not end in .h5ad" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
