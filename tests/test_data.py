"""Reading, validating, describing and splitting perturbation data; one message per bad input."""


import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from perturbode_core.data.dataset import describe, from_anndata, guess_control_label, guess_perturbation_key, load
from perturbode_core.io.h5ad import read_h5ad
from perturbode_core.data.splits import split_conditions
from perturbode_core.errors import PerturbODEError, PerturbODEWarning
from perturbode_core.data.interventions import parse_spec


def _adata(labels, genes=("A", "B", "C"), X=None, **obs):
    n = len(labels)
    X = np.random.default_rng(0).random((n, len(genes))).astype(np.float32) if X is None else X
    frame = pd.DataFrame({"perturbation": labels, **obs}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=X, obs=frame, var=pd.DataFrame(index=list(genes)))


LABELS = ["control"] * 4 + ["A"] * 3 + ["B+C"] * 3


def test_valid_data_with_combinations_and_types():
    a = _adata(LABELS, intervention_type=["control"] * 4 + ["CRISPRi"] * 3 + ["CRISPRa"] * 3)
    d = from_anndata(a)
    assert d.conditions == ["control", "A", "B+C"]
    assert [(iv.gene, iv.kind) for iv in d.interventions["A"]] == [("A", "knockdown")]
    assert [(iv.gene, iv.kind) for iv in d.interventions["B+C"]] == [("B", "overexpression"), ("C", "overexpression")]
    s = describe(d)
    assert (s["n_cells"], s["n_genes"], s["n_perturbations"], s["n_combinations"]) == (10, 3, 2, 1)
    assert s["per_condition"].cells.tolist() == [4, 3, 3]


def test_per_target_types_in_label_and_sparse_matrix_accepted():
    a = _adata(["control"] * 3 + ["A:knockout+B:shift=0.5"] * 2)
    a.X = sp.csr_matrix(a.X)
    d = from_anndata(a)
    assert [(iv.gene, iv.kind, iv.value) for iv in d.interventions["A:knockout+B:shift=0.5"]] == [
        ("A", "knockout", None), ("B", "shift", 0.5)]
    assert isinstance(d.X, np.ndarray)


@pytest.mark.parametrize("make, message", [
    (lambda: _adata(LABELS).copy()[:, []], "empty"),
    (lambda: _adata(LABELS, genes=("A", "A", "C")), "Duplicated gene names: A"),
    (lambda: _adata(LABELS).obs.drop(columns="perturbation") is None or _drop_col(), "No perturbation column 'perturbation'"),
    (lambda: _adata(["ctrl"] * 4 + ["A"] * 3 + ["B"] * 3), "Control label 'control' does not occur; did you mean 'ctrl'"),
    (lambda: _adata(LABELS, X=np.full((10, 3), np.nan, np.float32)), "NaN or infinite"),
    (lambda: _adata(LABELS, X=np.where(np.eye(10, 3) > 0, np.inf, 1.0).astype(np.float32)), "NaN or infinite"),
    (lambda: _adata(["control"] * 4 + ["A"] * 3 + [""] * 3), "empty perturbation label"),
    (lambda: _adata(["control"] * 4 + ["A"] * 3 + ["A++B"] * 3), "Empty target"),
    (lambda: _adata(LABELS, intervention_type=["x"] * 4 + ["teleport"] * 3 + ["ko"] * 3), "Unknown intervention type 'teleport'"),
])
def test_each_invalid_input_gets_its_message(make, message):
    with pytest.raises(PerturbODEError, match=message) as info:
        from_anndata(make(), source="screen.h5ad")
    assert "screen.h5ad" in str(info.value)  # says where
    assert info.value.fix  # and how to fix it


def _drop_col():
    a = _adata(LABELS, condition=LABELS)
    del a.obs["perturbation"]
    return a


def test_missing_column_suggests_the_likely_one():
    with pytest.raises(PerturbODEError, match="column 'condition' looks like one"):
        from_anndata(_drop_col())


def test_one_cell_condition_is_a_warning_not_an_error():
    with pytest.warns(PerturbODEWarning, match="single cell"):
        d = from_anndata(_adata(["control"] * 4 + ["A"] * 3 + ["B"]))
    assert len(d.cells_of("B")) == 1


def test_raw_counts_warn_and_normalise_on_request():
    X = np.random.default_rng(0).poisson(30, (10, 3)).astype(np.float32)
    X[0, 0] = 500
    with pytest.warns(PerturbODEWarning, match="raw counts"):
        from_anndata(_adata(LABELS, X=X))
    d = from_anndata(_adata(LABELS, X=X), normalize=True)
    assert d.X.max() < 15  # log1p of counts per 10k
    with pytest.raises(PerturbODEError, match="negative values"):
        from_anndata(_adata(LABELS, X=-X), normalize=True)


def test_files_not_found_not_hdf5_truncated(tmp_path):
    with pytest.raises(PerturbODEError, match="File not found"):
        read_h5ad(tmp_path / "nope.h5ad")
    (tmp_path / "text.h5ad").write_text("gene,cell\n")
    with pytest.raises(PerturbODEError, match="Not an HDF5"):
        read_h5ad(tmp_path / "text.h5ad")
    (tmp_path / "empty.h5ad").write_bytes(b"")
    with pytest.raises(PerturbODEError, match="empty"):
        read_h5ad(tmp_path / "empty.h5ad")
    good = tmp_path / "good.h5ad"
    _adata(LABELS).write_h5ad(good)
    data = good.read_bytes()
    (tmp_path / "cut.h5ad").write_bytes(data[: len(data) // 2])
    with pytest.raises(PerturbODEError, match="damaged or truncated|Not an HDF5"):
        read_h5ad(tmp_path / "cut.h5ad")
    d = load(good)
    assert d.source == "good.h5ad" and d.n_cells == 10
    backed = load(good, backed=True)
    np.testing.assert_array_equal(backed.X, d.X)


def test_guesses():
    obs = pd.DataFrame({"guide_identity": ["ctrl", "A"], "x": [1, 2]})
    assert guess_perturbation_key(obs) == "guide_identity"
    assert guess_control_label(["A", "Non-Targeting", "B"]) == "Non-Targeting"
    assert guess_control_label(["A", "B"]) is None


def test_split_is_seeded_and_never_holds_out_control():
    d = from_anndata(_adata(["control"] * 2 + [g for g in "ABC" for _ in range(2)], genes=tuple("ABC")))
    a = split_conditions(d, 1, seed=1)
    assert a == split_conditions(d, 1, seed=1)
    assert a[0][0] == "control" and len(a[1]) == 1 and "control" not in a[1]
    assert split_conditions(d, ["B"]) == (["control", "A", "C"], ["B"])
    with pytest.raises(PerturbODEError, match="not in the data: Z"):
        split_conditions(d, ["Z"])
    with pytest.raises(PerturbODEError, match="Cannot hold out 3"):
        split_conditions(d, 3)


def test_a_random_split_keeps_unmeasured_targets_in_training_and_a_named_one_needs_a_training_twin():
    from perturbode_core.errors import PerturbODEInfo

    # X and Y are not among the measured genes (latent regulators); Y is also perturbed with A
    labels = ["control"] * 2 + [g for g in ("A", "B", "C", "X", "Y", "A+Y") for _ in range(2)]
    d = from_anndata(_adata(labels, genes=tuple("ABC")), strict_targets=False)
    for seed in range(10):
        with pytest.warns(PerturbODEInfo, match="3 condition.s. whose targets are not among the measured genes stay"):
            train, held = split_conditions(d, 0.4, seed=seed)
        assert len(held) == 1 and held[0] in ("A", "B", "C")  # 40 % of the 3 drawable, X, Y, A+Y kept
        assert {"X", "Y", "A+Y"} <= set(train)
    # by name: Y is perturbed in training by A+Y, so its model knows it; X is seen nowhere else
    assert split_conditions(d, ["Y"])[1] == ["Y"]
    with pytest.raises(PerturbODEError, match="target X, which are not measured and not perturbed by any training"):
        split_conditions(d, ["X"])


def test_time_column():
    a = _adata(LABELS, time=[0.0] * 2 + [1.0] * 2 + [1.0] * 3 + [2.0] * 3)
    d = from_anndata(a)
    assert d.times is not None and len(d.control_cells()) == 2
    a.obs["time"] = ["x"] * 10
    with pytest.raises(PerturbODEError, match="not numeric"):
        from_anndata(a)


def test_spec_parser_messages():
    assert [iv.to_spec() for iv in parse_spec("A:kd=0.7+B:oe")] == ["A:knockdown=0.7", "B:overexpression"]
    for bad, msg in [("A:knockdown=2", "outside"), ("A:shift=abc", "not a number"), ("A+A", "twice"), ("", "Empty")]:
        with pytest.raises(PerturbODEError, match=msg):
            parse_spec(bad)


def test_unknown_layer_is_a_clear_error_and_a_named_layer_is_read():
    a = _adata(LABELS)
    with pytest.raises(PerturbODEError, match="No layer 'counts'") as info:
        from_anndata(a, layer="counts", source="screen.h5ad")
    assert "screen.h5ad" in str(info.value) and "X (no layers)" in info.value.fix
    a.layers["other"] = np.full(a.shape, 2.5, np.float32)
    d = from_anndata(a, layer="other")
    np.testing.assert_array_equal(d.X, np.full(a.shape, 2.5, np.float32))
