"""Loading real screens (issue 11): unmeasured targets, conditions beyond the target's name, guides,
escaping cells, gene selection; every bad input named once."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from perturbode_core.cli.common import data_flags, data_options
from perturbode_core.cli.main import build_parser
from perturbode_core.data.dataset import from_anndata
from perturbode_core.data.escapees import classify_escapees
from perturbode_core.data.interventions import ACTIVATION_FACTOR, parse_spec
from perturbode_core.errors import PerturbODEError, PerturbODEInfo, PerturbODEWarning


def _adata(labels, genes=("A", "B", "C"), X=None, **obs):
    n = len(labels)
    X = np.random.default_rng(0).random((n, len(genes))).astype(np.float32) if X is None else X
    frame = pd.DataFrame({"perturbation": labels, **obs}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=X, obs=frame, var=pd.DataFrame(index=list(genes)))


# ------------------------------------------------------------------------- unmeasured targets
def test_targets_outside_the_genes_are_kept_as_unmeasured_regulators():
    a = _adata(["control"] * 4 + ["A"] * 3 + ["ZZZ"] * 3 + ["A+QQ"] * 2)
    with pytest.warns(PerturbODEInfo, match="2 target\\(s\\) are not among the 3 measured genes.*QQ, ZZZ"):
        d = from_anndata(a, source="screen.h5ad")
    assert d.conditions == ["control", "A", "A+QQ", "ZZZ"]
    assert d.unmeasured_targets == ["QQ", "ZZZ"]
    assert [iv.gene for iv in d.interventions["A+QQ"]] == ["A", "QQ"]
    with pytest.raises(PerturbODEError, match="not in the model.s genes: QQ, ZZZ") as info:
        from_anndata(a, source="screen.h5ad", strict_targets=True)
    assert "screen.h5ad" in str(info.value) and info.value.fix


def test_the_control_label_inside_a_combination_means_no_second_target():
    # the GEARS / Norman et al. convention: singles of a combination screen are written A+ctrl
    a = _adata(["ctrl"] * 4 + ["A+ctrl"] * 3 + ["ctrl+B"] * 3 + ["A+B"] * 3 + ["C"] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'ctrl' among unmeasured regulators
        d = from_anndata(a, control="ctrl")
    assert d.conditions == ["ctrl", "A+B", "A+ctrl", "C", "ctrl+B"]
    assert {c: [iv.gene for iv in d.interventions[c]] for c in d.conditions if c != "ctrl"} == \
        {"A+B": ["A", "B"], "A+ctrl": ["A"], "C": ["C"], "ctrl+B": ["B"]}
    assert d.unmeasured_targets == []


def test_genes_indexed_by_ids_take_the_symbols_the_targets_use():
    ids = ["ENSG1", "ENSG2", "ENSG3", "ENSG4"]
    a = _adata(["control"] * 4 + ["A"] * 3 + ["B"] * 3, genes=ids)
    a.var["gene_symbols"] = ["A", "B", "B", None]  # a repeated symbol and a gene without one
    a.var["biotype"] = ["protein_coding"] * 4
    with pytest.warns(PerturbODEInfo, match="genes named by var\\['gene_symbols'\\]: 2 of the 2 .*1 repeated"):
        d = from_anndata(a)
    assert d.gene_names == ["A", "B", "B-1", "ENSG4"]
    assert d.unmeasured_targets == []
    # targets already among var_names: the index stays, whatever the columns hold
    b = _adata(["control"] * 4 + ["A"] * 3, genes=("A", "B", "C"))
    b.var["gene_symbols"] = ["x", "A", "y"]
    assert from_anndata(b).gene_names == ["A", "B", "C"]
    # no column names the targets: the index stays and the targets are unmeasured regulators
    c = _adata(["control"] * 4 + ["A"] * 3, genes=("g1", "g2", "g3"))
    c.var["gene_symbols"] = ["x", "y", "z"]
    with pytest.warns(PerturbODEWarning, match="none of the 1 target"):
        assert from_anndata(c).gene_names == ["g1", "g2", "g3"]


def test_combinations_joined_otherwise_than_by_plus_are_pointed_out():
    with pytest.warns(PerturbODEWarning, match="target\\(s\\) A_B are not measured genes but join measured ones"):
        d = from_anndata(_adata(["control"] * 4 + ["A"] * 3 + ["A_B"] * 3 + ["ZZ_A"] * 2))
    assert d.unmeasured_targets == ["A_B", "ZZ_A"]  # read as written; ZZ_A joins an unmeasured name: no hint
    with pytest.warns(PerturbODEWarning, match="target\\(s\\) A_2, B-sg1 look like guides of measured genes"):
        d = from_anndata(_adata(["control"] * 4 + ["A_2"] * 3 + ["B-sg1"] * 3 + ["C_X"] * 2 + ["Q_1"] * 2))
    assert d.unmeasured_targets == ["A_2", "B-sg1", "C_X", "Q_1"]  # C_X: no number; Q_1: Q is no gene


def test_a_target_differing_from_a_gene_only_by_case_is_flagged_as_a_likely_typo():
    with pytest.warns(PerturbODEWarning, match="a \\(gene A\\?\\)"):
        d = from_anndata(_adata(["control"] * 4 + ["a"] * 3))
    assert d.unmeasured_targets == ["a"]


# ---------------------------------------------------------------------- conditions and types
def test_a_label_mixing_inhibition_and_activation_is_split_into_one_condition_each():
    """Phospho-flow drug screens: PKC inhibited in some wells and activated in others."""
    labels = ["control"] * 4 + ["PKC"] * 6
    types = ["control"] * 4 + ["inhibition"] * 3 + ["activation"] * 3
    with pytest.warns(PerturbODEInfo, match="PKC -> PKC:activity=0, PKC:activity=2"):
        d = from_anndata(_adata(labels, genes=("PKC", "RAF", "MEK"), intervention_type=types))  # the default: auto
    assert d.conditions == ["control", "PKC:activity=0", "PKC:activity=2"]
    assert [(iv.kind, iv.value) for iv in d.interventions["PKC:activity=2"]] == [("activity", ACTIVATION_FACTOR)]
    assert d.labels[4:7].tolist() == ["PKC:activity=0"] * 3 and d.labels[7:].tolist() == ["PKC:activity=2"] * 3
    for cond, ivs in d.interventions.items():  # every new label parses back to exactly its interventions
        assert parse_spec(cond) == ivs
    # read as CRISPR words, the same file gives knock-down and overexpression conditions
    d2 = from_anndata(_adata(labels, genes=("PKC", "RAF", "MEK"), intervention_type=types), activity_synonyms="no")
    assert d2.conditions == ["control", "PKC:knockdown=0.5", "PKC:overexpression=1"]
    assert from_anndata(_adata(labels, genes=("PKC", "RAF", "MEK"), intervention_type=types),
                        activity_synonyms=False).conditions == d2.conditions  # the older spelling


def test_inhibition_with_a_dose_is_a_knockdown_without_one_an_activity_change():
    from perturbode_core.data.interventions import Intervention

    assert parse_spec("PKC:inhibition") == [Intervention("PKC", "activity", None)]  # factor 0, the default
    assert parse_spec("PKC:activation") == [Intervention("PKC", "activity", ACTIVATION_FACTOR)]
    assert parse_spec("PKC:inhibition=0.7") == [Intervention("PKC", "knockdown", 0.7)]  # a value: a fraction
    assert parse_spec("PKC:inhibition=0.7", activity_synonyms="yes") == [Intervention("PKC", "activity", 0.7)]
    assert parse_spec("PKC:activation", activity_synonyms="no") == [Intervention("PKC", "overexpression", None)]
    labels = ["control"] * 4 + ["PKC"] * 6
    ad = _adata(labels, genes=("PKC", "RAF", "MEK"), intervention_type=["control"] * 4 + ["inhibition"] * 6)
    ad.obs["dose"] = [0.0] * 4 + [0.3] * 3 + [0.9] * 3
    d = from_anndata(ad, dose_key="dose")  # a dose column: knock-down fractions
    assert sorted(d.conditions) == ["PKC:knockdown=0.3", "PKC:knockdown=0.9", "control"]
    with pytest.raises(PerturbODEError, match="Unknown reading of inhibition"):
        from_anndata(ad, activity_synonyms="maybe")


def test_conditions_keyed_by_their_own_column_let_one_target_appear_twice():
    obs = dict(guide=["NT1", "NT2", "NT1", "NT2", "Ag1", "Ag1", "Ag2", "Ag2", "Bg1", "Bg1"],
               dose=[0, 0, 0, 0, 0.3, 0.3, 0.9, 0.9, 0.5, 0.5])
    labels = ["control"] * 4 + ["A"] * 4 + ["B"] * 2
    d = from_anndata(_adata(labels, **obs), condition_key="guide")
    assert d.conditions == ["control", "Ag1", "Ag2", "Bg1"]  # both non-targeting guides are the control
    assert [iv.gene for iv in d.interventions["Ag1"]] == [iv.gene for iv in d.interventions["Ag2"]] == ["A"]
    # a dose column makes the same target two graded conditions
    d = from_anndata(_adata(labels, **obs), default_intervention="knockdown", dose_key="dose")
    assert d.conditions == ["control", "A:knockdown=0.3", "A:knockdown=0.9", "B"]
    assert d.interventions["A:knockdown=0.9"][0].value == pytest.approx(0.9)


@pytest.mark.parametrize("obs, key, message", [
    (dict(cond=["c"] * 4 + ["x"] * 6), "cond", "Condition 'x' mixes targets A, B"),
    (dict(cond=["c"] * 4 + ["control"] * 6), "cond", "Condition 'control' \\(the control label\\) holds 6"),
    (dict(other=["c"] * 10), "cond", "No condition column 'cond'"),
])
def test_bad_condition_columns_get_one_message(obs, key, message):
    with pytest.raises(PerturbODEError, match=message) as info:
        from_anndata(_adata(["control"] * 4 + ["A"] * 3 + ["B"] * 3, **obs), condition_key=key, source="s.h5ad")
    assert "s.h5ad" in str(info.value) and info.value.fix


# -------------------------------------------------------------------------------------- guides
def _guided(n_ctrl=30, n_a=30, n_b=30, seed=0):
    """Cells with guide UMI counts: clear NT / A / B guides, plus 3 cells with two guides, 2 with
    too few UMIs and 1 with none (all known)."""
    rng = np.random.default_rng(seed)
    names = ["NT1", "NT2", "A_g1", "A_g2", "B_g1"]
    targets = ["non-targeting", "non-targeting", "A", "A", "B"]
    truth = ["NT1"] * (n_ctrl // 2) + ["NT2"] * (n_ctrl - n_ctrl // 2) + ["A_g1"] * (n_a // 2) + \
        ["A_g2"] * (n_a - n_a // 2) + ["B_g1"] * n_b
    G = np.zeros((len(truth) + 6, len(names)), np.float32)
    for i, g in enumerate(truth):
        G[i, names.index(g)] = rng.integers(10, 60)
        G[i, rng.integers(len(names))] += rng.integers(0, 2)  # a stray UMI
    n = len(truth)
    G[n:n + 3, 2], G[n:n + 3, 3], G[n:n + 3, 4] = 20, 15, 20   # top guide < half the UMIs: set aside
    G[n + 3:n + 5, 4] = 2                   # too few UMIs: set aside
    genes = [f"G{i}" for i in range(8)] + ["A", "B"]
    X = rng.poisson(5, (len(G), len(genes))).astype(np.float32)
    obs = pd.DataFrame({"perturbation": ["unknown"] * len(G)}, index=[f"c{i}" for i in range(len(G))])
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    a.obsm["guide_counts"] = sp.csr_matrix(G)
    a.uns["guide_names"], a.uns["guide_targets"] = np.array(names), np.array(targets)
    return a, truth


def test_guides_assigned_from_counts_by_the_documented_rule():
    a, truth = _guided()
    with pytest.warns(PerturbODEWarning, match="set aside cells: 1 no guide, 2 too few guide UMIs, 3 several guides"):
        d = from_anndata(a, control="non-targeting", guides="guide_counts", normalize=True)
    assert d.n_cells == len(truth)
    assert d.conditions == ["non-targeting", "A", "B"]
    assert d.obs["assigned_guide"].tolist() == truth
    assert d.set_aside.set_index("reason")["cells"].to_dict() == {"several guides": 3, "too few guide UMIs": 2,
                                                                  "no guide": 1}
    # kept apart, each guide is its own condition of the same target
    d = from_anndata(a, control="non-targeting", guides="guide_counts", normalize=True, pool_guides=False)
    assert d.conditions == ["non-targeting", "A_g1", "A_g2", "B_g1"]
    assert d.interventions["A_g2"][0].gene == "A"
    # counts kept as a layer, X normalised
    assert "counts" in d.layers and d.layers["counts"].shape == d.X.shape and d.X.max() < 15


def test_guides_from_an_obs_column_and_a_condition_left_empty():
    a, truth = _guided()
    a.obs["guide"] = truth + ["A_g1;B_g1"] * 3 + [""] * 3
    a.obs["perturbation"] = [{"NT": "non-targeting", "A_": "A", "B_": "B"}[g[:2]] for g in truth] + ["A"] * 6
    a.obs.loc[a.obs["guide"] == "B_g1", "guide"] = "B_g1;A_g1"  # every B cell has two guides
    del a.uns["guide_targets"]  # targets learned from the perturbation column
    with pytest.warns(PerturbODEWarning) as caught:
        d = from_anndata(a, control="non-targeting", guides="guide", normalize=True)
    assert "B" not in d.conditions and d.conditions == ["non-targeting", "A"]
    text = " ".join(str(w.message) for w in caught)
    assert "several guides" in text and "no guide" in text


@pytest.mark.parametrize("spoil, message", [
    (lambda a: a.obsm.__setitem__("guide_counts", sp.csr_matrix(np.ones((a.n_obs, 4)))), "4 guide columns"),
    (lambda a: a.uns.__setitem__("guide_targets", np.array(["A"])), "1 guide targets for 5 guides"),
    (lambda a: a.uns.pop("guide_names"), "no guide names"),
    (lambda a: a.obsm.__setitem__("guide_counts", -a.obsm["guide_counts"].toarray()), "non-negative"),
])
def test_a_guide_matrix_that_does_not_match_gets_one_message(spoil, message):
    a, _ = _guided()
    spoil(a)
    with pytest.raises(PerturbODEError, match=message) as info:
        from_anndata(a, control="non-targeting", guides="guide_counts", source="g.h5ad")
    assert "g.h5ad" in str(info.value) and "guide_counts" in str(info.value) and info.value.fix


def test_a_guide_matrix_with_other_cells_is_refused_by_anndata_or_us():
    a, _ = _guided()
    b = ad.AnnData(X=a.X[:-1], obs=a.obs.iloc[:-1], var=a.var)
    b.uns.update(a.uns)
    with pytest.raises((PerturbODEError, ValueError)):
        b.obsm["guide_counts"] = a.obsm["guide_counts"]  # anndata itself refuses a wrong row count
    with pytest.raises(PerturbODEError, match="No guide counts or guide column 'sgRNA'"):
        from_anndata(a, control="non-targeting", guides="sgRNA")


# ----------------------------------------------------------------------------------- escapees
def _escape_screen(seed=0, n_ctrl=300, n_ko=200, efficiency=0.6, n_sig=12, p=40):
    """Knockout 'A' lowers ``n_sig`` genes by 1.5 in a known ``efficiency`` share of its cells;
    knockout 'B' does nothing (no signature); knockout 'C' hits only 15% of its cells."""
    rng = np.random.default_rng(seed)
    genes = ["A", "B", "C"] + [f"G{i}" for i in range(p - 3)]
    n = n_ctrl + 3 * n_ko
    X = rng.normal(3.0, 0.5, (n, p)).astype(np.float32)
    labels = np.array(["control"] * n_ctrl + ["A"] * n_ko + ["B"] * n_ko + ["C"] * n_ko)
    hit = np.zeros(n, bool)
    a_cells = np.flatnonzero(labels == "A")
    hit[a_cells[: int(efficiency * n_ko)]] = True
    c_cells = np.flatnonzero(labels == "C")
    hit[c_cells[: int(0.15 * n_ko)]] = True
    X[np.ix_(hit, np.arange(3, 3 + n_sig))] -= 1.5
    X[labels == "A", 0] -= 1.0
    adata = ad.AnnData(X=X, obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(n)]),
                       var=pd.DataFrame(index=genes))
    return adata, hit


def test_escape_classification_recovers_the_known_efficiency():
    adata, hit = _escape_screen()
    d = from_anndata(adata, escapees="flag")
    table = d.escape.set_index("condition")
    assert table.loc["A", "status"] == "classified"
    assert table.loc["A", "efficiency"] == pytest.approx(0.6, abs=0.05)
    a = d.labels == "A"
    called = d.obs["perturbation_class"].to_numpy()[a] == "perturbed"
    assert (called == hit[a]).mean() > 0.95  # the cells themselves, not just their number
    assert table.loc["B", "status"] == "no detectable signature" and np.isnan(table.loc["B", "efficiency"])
    assert d.n_cells == adata.n_obs  # flag keeps every cell


def test_dropping_escapees_sets_aside_a_knockout_with_too_few_perturbed_cells():
    adata, hit = _escape_screen()
    with pytest.warns(PerturbODEWarning, match="conditions: C \\(fewer than 40 perturbed cells\\)"):
        d = from_anndata(adata, escapees="drop", min_perturbed_cells=40)
    assert d.conditions == ["control", "A", "B"]  # B kept whole: its cells cannot be told apart
    assert (d.obs.loc[d.labels == "A", "perturbation_class"] == "perturbed").all()
    aside = d.set_aside.set_index(["what", "name"])
    assert aside.loc[("cells", "A"), "cells"] == pytest.approx(80, abs=10)
    assert aside.loc[("condition", "C"), "reason"] == "fewer than 40 perturbed cells"
    assert aside.loc[("condition", "C"), "cells"] == pytest.approx(30, abs=5)
    # training goes on without it
    from perturbode_core.train import TrainConfig, fit

    result = fit(d, train_config=TrainConfig(epochs=1, cells_per_condition=16, seed=0))
    assert result.train_conditions == ["control", "A", "B"]


def test_escape_classification_of_raw_counts_is_refused():
    adata, _ = _escape_screen()
    adata.X = np.random.default_rng(0).poisson(40, adata.shape).astype(np.float32)
    with pytest.raises(PerturbODEError, match="log-normalised"):
        from_anndata(adata, escapees="flag")


def test_classify_escapees_alone_needs_enough_controls():
    X = np.zeros((10, 4), np.float32)
    with pytest.raises(PerturbODEError, match="needs at least 20 control cells"):
        classify_escapees(X, np.array(["control"] * 5 + ["A"] * 5), "control", {})


# ------------------------------------------------------------------------------ gene selection
def test_highly_variable_genes_always_keep_the_measured_targets():
    rng = np.random.default_rng(0)
    genes = ["T"] + [f"G{i}" for i in range(59)]
    counts = rng.poisson(rng.gamma(2.0, 5.0, 60), (200, 60)).astype(np.float32)
    counts[:, 0] = 10  # the target never varies: never highly variable on its own
    labels = ["control"] * 100 + ["T"] * 100
    d = from_anndata(_adata(labels, genes=genes, X=counts), normalize=True, hvg=10)
    assert d.n_genes == 11 and "T" in d.gene_names and d.unmeasured_targets == []
    assert d.layers["counts"].shape == (200, 11)
    assert d.preprocessing["hvg"] == 10 and d.preprocessing["genes_in_file"] == 60
    with pytest.raises(PerturbODEError, match="seurat_v3 flavour ranks raw counts"):
        from_anndata(_adata(labels, genes=genes, X=np.log1p(counts)), hvg=10, hvg_flavor="seurat_v3")


# ---------------------------------------------------------------------------------- command line
def test_without_control_flag_the_control_label_is_found_and_named():
    defaults = data_options(build_parser().parse_args(["train", "--data", "x.h5ad", "--out", "run"]))
    assert defaults["control"] is None  # the command line guesses
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the usual label: no note
        assert from_anndata(_adata(["control"] * 4 + ["A"] * 3), control=None).control == "control"
    with pytest.warns(PerturbODEInfo, match="control cells are those labelled 'non-targeting'"):
        d = from_anndata(_adata(["non-targeting"] * 4 + ["A"] * 3), control=None, source="s.h5ad")
    assert d.control == "non-targeting" and d.conditions == ["non-targeting", "A"]
    with pytest.raises(PerturbODEError, match="Could not find the control cells") as info:
        from_anndata(_adata(["wt"] * 4 + ["A"] * 3), control=None)
    assert "--control" in info.value.fix and "wt" in info.value.fix


def test_data_flags_and_options_are_one_table():
    """The flags the demo build writes for a dataset parse back to exactly its load options."""
    options = {"control": "non-targeting", "normalize": True, "guides": "guide_counts", "escapees": "drop",
               "escape_split_key": "replicate", "pool_guides": False, "hvg": 500}
    args = build_parser().parse_args(["train", "--data", "x.h5ad", "--out", "run", *data_flags(options)])
    parsed = data_options(args)
    assert {k: parsed[k] for k in options} == options
    defaults = data_options(build_parser().parse_args(["train", "--data", "x.h5ad", "--out", "run"]))
    assert defaults["pool_guides"] is True and defaults["escapees"] == "keep" and defaults["strict_targets"] is False
    assert defaults["activity_synonyms"] == "auto"
    # a saved older value (a switch then) becomes the flag's spelling now
    assert data_flags({"activity_synonyms": False}) == ["--activity-synonyms", "no"]
    assert data_flags({"activity_synonyms": True}) == ["--activity-synonyms", "yes"]
    assert data_flags({"activity_synonyms": "auto"}) == []
    with pytest.raises(PerturbODEError, match="Unknown data option"):
        data_flags({"colour": "red"})
