"""Gene-set libraries, GMT parsing, hypergeometric test, BH FDR, planted-module recovery, plots."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from perturbode_core.tools import enrichment as E
from perturbode_core.errors import PerturbODEError


# --------------------------------------------------------------------------- libraries and GMT
@pytest.mark.parametrize("name, n_sets", [("go_bp", 6036), ("hallmark", 50), ("mouse_go_bp", 3469),
                                          ("yeast_goslim_bp", 100)])
def test_shipped_libraries_load(name, n_sets):
    lib = E.load_library(name)
    assert len(lib) == n_sets
    assert lib.membership.shape == (n_sets, len(lib.vocabulary))
    assert (E.GENESET_DIR / "PROVENANCE.md").is_file()


def test_unknown_library_lists_choices():
    with pytest.raises(PerturbODEError, match="go_bp"):
        E.load_library("go_mf")


def _write(tmp_path, text, name="x.gmt", mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_read_gmt_plain_gz_and_quirks(tmp_path):
    text = ("# comment\nSET_A\tdesc\tG1\tG2\tg2\tG3\t\t\n\nSET_B\t\tG4,1.0\tG5\n"
            "SET_A\tagain\tG1\tG2\tG3\n")  # identical duplicate: kept once
    lib = E.read_gmt(_write(tmp_path, text))
    assert lib.terms == ("SET_A", "SET_B")
    assert lib.genes[0] == ("G1", "G2", "g2", "G3")  # as written; case-folded only for matching
    assert lib.genes[1] == ("G4", "G5")  # Enrichr weight stripped
    assert lib.membership[0].sum() == 3  # G2/g2 count once
    gz = tmp_path / "y.gmt.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert E.load_library(str(gz)).to_dict() == lib.to_dict()


@pytest.mark.parametrize("text, line, pattern", [
    ("OK\td\tG1\nBAD only two\tfields\n", 2, "2 tab-separated"),
    ("OK\td\tG1\nEMPTY\td\t\t \n", 2, "no genes"),
    ("\n\nOK\td\tG1\n\td\tG2\n", 4, "empty set name"),
    ("A\td\tG1\tG2\nB\td\tG3\nA\td\tG9\n", 3, "appears twice"),
])
def test_malformed_gmt_names_file_and_line(tmp_path, text, line, pattern):
    p = _write(tmp_path, text, name="bad.gmt")
    with pytest.raises(PerturbODEError, match=pattern) as info:
        E.read_gmt(p)
    assert f"line {line}" in str(info.value) and "bad.gmt" in str(info.value)


def test_non_utf8_and_missing_file(tmp_path):
    p = _write(tmp_path, b"A\td\tG1\nB\td\tGEN\xe9\n", name="latin.gmt", mode="wb")
    with pytest.raises(PerturbODEError, match="not UTF-8.*line 2|line 2.*UTF-8"):
        E.read_gmt(p)
    with pytest.raises(PerturbODEError, match="not found"):
        E.read_gmt(tmp_path / "nope.gmt")
    with pytest.raises(PerturbODEError, match="no gene sets"):
        E.read_gmt(_write(tmp_path, "# only a comment\n", name="empty.gmt"))


def test_case_insensitive_matching_report():
    lib = E.GeneSetLibrary.from_dict({"S1": ["GATA1", "SPI1", "TAL1"], "S2": ["CEBPA", "XYZ"]}, name="toy")
    m = E.match_genes(["Gata1", "spi1", "Foo", "CEBPA"], lib)
    assert (m.n_genes, m.n_matched, m.n_sets, m.n_sets_with_any) == (4, 3, 2, 2)
    assert m.unmatched_examples == ("Foo",)
    assert "3 of 4 genes" in m.summary()
    # mouse-style names against the upper-case mouse library
    mouse = E.match_genes(["Gata1", "Bmp4", "Notagene"], "mouse_go_bp")
    assert mouse.n_matched == 2


# --------------------------------------------------------------------------- statistics
def test_benjamini_hochberg_known_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # by hand: sorted 0.005 0.01 0.03 0.04 0.5 -> *5/rank = .025 .025 .05 .05 .5, cummin from the end
    expected = np.array([0.025, 0.05, 0.05, 0.025, 0.5])
    np.testing.assert_allclose(E.benjamini_hochberg(p), expected)
    # extra tests with p = 1 only enlarge m
    np.testing.assert_allclose(E.benjamini_hochberg(p, n_tests=10), np.minimum(
        E.benjamini_hochberg(np.r_[p, np.ones(5)])[:5], 1))
    import statsmodels.stats.multitest as sm  # installed with scanpy
    rng = np.random.default_rng(1)
    x = rng.uniform(size=200) ** 3
    np.testing.assert_allclose(E.benjamini_hochberg(x), sm.multipletests(x, method="fdr_bh")[1])


def test_hypergeometric_pvalues_match_scipy():
    background = [f"G{i}" for i in range(40)]
    sets = {"S_small": background[:6], "S_big": background[::3], "S_mixed": background[5:25],
            "S_out": ["NOT_A_MODEL_GENE"] * 1 + background[30:37]}
    lists = {"m1": background[:10], "m2": background[20:35], "m3": [g.lower() for g in background[3:8]]}
    lib = E.GeneSetLibrary.from_dict(sets, name="toy")
    res = E.over_representation(lists, background, lib, min_size=1, max_size=100)
    N = 40
    for _, r in res.iterrows():
        s = {g.casefold() for g in sets[r["term"]]} & {g.casefold() for g in background}
        m = {g.casefold() for g in lists[r["module"]]}
        k = len(s & m)
        assert (r["overlap"], r["set_size"], r["module_size"], r["background"]) == (k, len(s), len(m), N)
        assert r["pvalue"] == pytest.approx(hypergeom.sf(k - 1, N, len(s), len(m)), rel=1e-9)
        assert sorted(r["genes"].split(";")) == sorted(g for g in background if g.casefold() in s & m)
    assert res.attrs["n_tests"] == 3 * 4
    # the set restricted to the background: the foreign gene does not count
    assert set(res.loc[res["term"] == "S_out", "set_size"]) == {7}
    # odds ratio of one row by hand
    r = res[(res["module"] == "m1") & (res["term"] == "S_small")].iloc[0]
    a, b, c, d = 6, 4, 0, 30
    assert r["odds_ratio"] == pytest.approx((a + .5) * (d + .5) / ((b + .5) * (c + .5)))
    np.testing.assert_allclose(res["qvalue"], E.benjamini_hochberg(res["pvalue"], n_tests=12))
    assert list(res.columns) == E.RESULT_COLUMNS


def test_size_filters_and_max_q():
    bg = [f"G{i}" for i in range(100)]
    lib = E.GeneSetLibrary.from_dict({"tiny": bg[:2], "mid": bg[:10], "huge": bg[:90]}, name="toy")
    res = E.over_representation({"a": bg[:10]}, bg, lib, min_size=3, max_size=50)
    assert set(res["term"]) == {"mid"} and res.attrs["n_tests"] == 1
    assert E.over_representation({"a": bg[:10]}, bg, lib, min_size=3, max_size=50, max_q=1e-30).empty
    with pytest.raises(PerturbODEError, match="max_size"):
        E.over_representation({"a": bg[:10]}, bg, lib, min_size=10, max_size=5)


def test_no_gene_matches_is_a_clear_error():
    lib = E.load_library("hallmark")
    with pytest.raises(PerturbODEError, match="species"):
        E.over_representation({"a": ["YAL001C"]}, ["YAL001C", "YAL002W"], lib)


# --------------------------------------------------------------------------- planted module
def _planted(seed=0, p=2000, K=20):
    """A model whose module 7's targets are exactly one GO set (restricted to the model's genes)."""
    rng = np.random.default_rng(seed)
    lib = E.load_library("go_bp")
    term = "negative regulation of angiogenesis (GO:0016525)"
    planted = [g for g in lib.genes[lib.terms.index(term)]]
    others = np.setdiff1d(lib.vocabulary.astype(str), [g.casefold() for g in planted])
    genes = planted[:40] + [g.upper() for g in rng.choice(others, p - 40, replace=False)]
    genes = list(np.asarray(genes)[rng.permutation(p)])
    A = rng.normal(0, 0.05, (p, K))
    B = rng.normal(0, 0.05, (K, p))
    idx = [genes.index(g) for g in planted[:40]]
    A[:, 7] = rng.normal(0, 0.05, p)
    A[idx, 7] = rng.choice([-1, 1], 40) * rng.uniform(1, 2, 40)  # module 7 drives exactly these genes
    return A, B, np.ones(K), genes, term, lib


def test_planted_module_is_found_first():
    A, B, alpha, genes, term, lib = _planted()
    weights = {"A": A, "B": B, "alpha": alpha, "b": np.zeros(B.shape[0]), "gene_names": genes}
    res = E.enrich_modules(weights, lib, top_n=40)
    best = res.iloc[0]
    assert (best["module"], best["term"]) == (7, term)
    assert best["qvalue"] < 0.01 and best["overlap"] == 40
    assert res.attrs["match"].n_matched == len(genes)
    # the background is the model: the restricted set size is at most the model's genes
    assert (res["set_size"] <= len(genes)).all() and (res["background"] == len(genes)).all()


def test_over_representation_is_fast():
    import time

    A, B, alpha, genes, term, lib = _planted(K=200)
    weights = {"A": A, "B": B, "alpha": alpha, "b": np.zeros(200), "gene_names": genes}
    E.enrich_modules(weights, lib, top_n=50)
    t = time.perf_counter()
    res = E.enrich_modules(weights, lib, top_n=50)
    elapsed = time.perf_counter() - t
    assert res.attrs["n_tests"] > 200 * 1000
    assert elapsed < 2.0  # ~0.05 s alone; generous for loaded CI machines


# --------------------------------------------------------------------------- plots
def test_enrichment_plots():
    from perturbode_core.plots import module_plots as P

    A, B, alpha, genes, term, lib = _planted(K=12)
    res = E.enrich_modules({"A": A, "B": B, "alpha": alpha, "b": np.zeros(12), "gene_names": genes}, lib, top_n=40)
    fig = P.enrichment_dotplot(res, n_terms=3, max_q=None)
    assert [t.type for t in fig.data] == ["scatter"]
    assert term in list(fig.data[0].y) and "M7" in list(fig.data[0].x)
    hm = P.enrichment_heatmap(res, n_terms=2, max_q=None)
    assert [t.type for t in hm.data] == ["heatmap"]
    assert np.asarray(hm.data[0].z).shape == (len(hm.data[0].y), len(hm.data[0].x))
    empty = P.enrichment_dotplot(res, max_q=0.0)
    assert len(empty.data) == 1 and len(empty.data[0].x) == 0
    assert isinstance(P.enrichment_dotplot(pd.DataFrame()).to_dict(), dict)


# --------------------------------------------------------------------------- species and aliases
def test_species_is_read_from_how_the_genes_are_written():
    from perturbode_core.datasets import load_dataset
    from perturbode_core.tools.gene_names import detect_species

    myeloid = list(load_dataset("myeloid").var_names)  # Gata1, Pu.1, SCL, ...
    assert detect_species(myeloid).species == "mouse"
    assert detect_species(["GATA1", "SPI1", "TAL1", "STAT1"]).species == "human"
    assert detect_species(["YAL027W", "YBR112C", "YDL005C-A"]).species == "yeast"
    assert E.default_library(myeloid)[0] == "mouse_go_bp" and E.default_library(["STAT1", "JAK2"])[0] == "go_bp"


def test_aliases_let_the_myeloid_names_match_a_library():
    """Pu.1, SCL, Fog1, EKLF, cJun, EgrNab are not official symbols; through the alias table all 11
    myeloid factors are found (5 of 11 were, in human GO, before)."""
    from perturbode_core.datasets import load_dataset

    genes = list(load_dataset("myeloid").var_names)
    match = E.match_genes(genes, "auto")
    assert match.library == "mouse_go_bp" and match.n_matched == 11, match.summary()
    lib = E.GeneSetLibrary.from_dict({"myeloid": ["SPI1", "CEBPA", "GFI1", "JUN", "EGR1"],
                                      "erythroid": ["GATA1", "KLF1", "TAL1", "ZFPM1", "GATA2"]})
    res = E.over_representation({"m1": ["Pu.1", "Cebpa", "cJun"]}, genes, lib, min_size=2)
    hit = res.set_index("term").loc["myeloid"]
    assert hit["overlap"] == 3 and set(hit["genes"].split(";")) == {"Pu.1", "Cebpa", "cJun"}  # the data's names


def test_an_empty_result_is_said_in_words_not_drawn_as_empty_axes():
    from perturbode_core.plots import module_plots as P

    A, B, alpha, genes, term, lib = _planted(K=12)
    res = E.enrich_modules({"A": A, "B": B, "alpha": alpha, "b": np.zeros(12), "gene_names": genes}, lib, top_n=40)
    assert E.empty_result_message(res, 0.05) is None
    text = E.empty_result_message(res, 1e-300)
    assert text.startswith("No gene set is enriched at q ≤ 1e-300") and term in text  # names the best one
    fig = P.enrichment_dotplot(res, max_q=1e-300)
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert "No gene set is enriched" in fig.layout.annotations[0].text
    nothing = E.empty_result_message(pd.DataFrame(columns=E.RESULT_COLUMNS), 0.05)
    assert nothing.startswith("No gene set could be tested")
