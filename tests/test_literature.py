"""Literature support: inferred edges against published TF networks, beside a degree-preserving null."""

import numpy as np
import pandas as pd
import pytest

from perturbode_core.errors import PerturbODEError
from perturbode_core.tools.metrics.literature import literature_support, load_reference


def test_shipped_references_restricted_to_the_genes_present():
    full = load_reference("collectri")
    assert len(full) == 43178 - 462 and set(full["sign"]) <= {-1, 1}  # self-loops (autoregulation) dropped
    trrust = load_reference("trrust")
    assert len(trrust) == 8403  # 9,396 lines: 969 pairs listed twice, 24 self-loops dropped
    sub = load_reference("collectri", ["stat1", "IRF1", "JAK2", "Psmb9", "CXCL10"])
    assert set(sub["source"]) <= {"stat1", "IRF1", "JAK2", "Psmb9", "CXCL10"}  # spelled as given
    assert ("stat1", "IRF1") in set(zip(sub["source"], sub["target"]))
    with pytest.raises(PerturbODEError, match="Unknown reference"):
        load_reference("string")


def _ranked(pairs, weights=None):
    w = np.linspace(1.0, 0.5, len(pairs)) if weights is None else weights
    return pd.DataFrame({"source": [s for s, _ in pairs], "target": [t for _, t in pairs], "weight": w})


def test_reference_edges_score_far_above_the_degree_preserving_expectation():
    ref = load_reference("collectri")
    tfs = ["STAT1", "IRF1", "MYC", "SPI1", "STAT3"]
    true = ref[ref["source"].isin(tfs)].groupby("source").head(10)
    genes = sorted(set(true["source"]) | set(true["target"]))
    table = literature_support(_ranked(list(zip(true["source"], true["target"]))), genes, references=["collectri"],
                               top_k=[50], n_permutations=500)
    row = table.iloc[0]
    assert (row["scored"], row["supported"], row["precision"]) == (50, 50, 1.0)
    # these TFs share many targets, so even shuffles hit often; the true wiring is still far above them
    assert row["random_precision"] < 0.7 and row["p_value"] < 0.01 and row["fold"] > 1.5


def test_the_same_targets_attached_to_the_wrong_tfs_score_at_the_random_level():
    """The null keeps every gene's degree: a network that only knows which genes are hubs is not
    supported (its precision falls inside the shuffles' spread)."""
    ref = load_reference("collectri")
    tfs = ["STAT1", "IRF1", "MYC", "SPI1", "STAT3"]
    true = ref[ref["source"].isin(tfs)].groupby("source").head(10)
    genes = sorted(set(true["source"]) | set(true["target"]))
    shuffled = true["target"].to_numpy()[np.random.default_rng(3).permutation(len(true))]
    table = literature_support(_ranked(list(zip(true["source"], shuffled))), genes, references=["collectri"],
                               top_k=[50], n_permutations=500)
    row = table.iloc[0]
    assert abs(row["precision"] - row["random_precision"]) < 3 * row["random_sd"] and row["p_value"] > 0.01


def test_edges_out_of_genes_no_reference_knows_are_not_scored():
    table = literature_support(_ranked([("GENE1", "GENE2"), ("GENE2", "GENE3")]), ["GENE1", "GENE2", "GENE3"])
    assert table.empty and table.attrs["empty"] == ["collectri", "trrust"]
