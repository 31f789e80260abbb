"""Network readers: edge counts and signs against the source files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbode_core.datasets import (read_bnet, read_boolode, read_collectri, read_gt_grn, read_krumsiek11,
                                      read_sergio, read_sergio_dataset)
from perturbode_core.datasets.boolean_rules import BooleanRule
from perturbode_core.datasets.network_readers import builtin_path
from perturbode_core.errors import PerturbODEError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def signed(net, rename=lambda g: g):
    return {(rename(s), rename(t), int(g)) for s, t, g in net.truth_edges().itertuples(index=False)}


def canon(name: str) -> str:
    """Krumsiek gene names across scanpy, BoolODE and pyboolnet (Pu.1 / Pu1 / PU1 ...)."""
    return name.replace(".", "").lower()


def raw_sergio_edges(path):
    out = set()
    for line in Path(path).read_text().splitlines():
        v = [float(x) for x in line.split(",")]
        r = int(v[1])
        for reg, k in zip(v[2:2 + r], v[2 + r:2 + 2 * r]):
            out.add((f"G{int(reg)}", f"G{int(v[0])}", 1 if k > 0 else -1))
    return out


def test_krumsiek_couplings_and_rules_agree():
    net = read_krumsiek11()
    assert net.n_genes == 11 and len(net.edges) == 30
    edges = signed(net)
    assert sum(s > 0 for *_, s in edges) == 15 and sum(s < 0 for *_, s in edges) == 15
    assert ("Pu.1", "Gata1", -1) in edges and ("Gata1", "Fog1", 1) in edges and ("EgrNab", "Gfi1", -1) in edges
    from_rules = {(reg, tgt, s) for tgt, rule in net.rules.items() for reg, s in rule.signs().items()}
    assert from_rules == edges  # the coupling list is exactly what the Boolean rules imply
    # scanpy's threshold 0.1 / |coupling|
    row = net.edges[(net.edges.source == "Cebpa") & (net.edges.target == "Pu.1")].iloc[0]
    assert row["strength"] == 10.0 and row["half"] == pytest.approx(0.01)


def test_shipped_krumsiek_is_scanpys_file():
    import scanpy

    installed = Path(scanpy.__file__).parent / "sim_models" / "krumsiek11.txt"  # scanpy is pinned
    assert installed.read_bytes() == builtin_path("krumsiek11.txt").read_bytes()


def test_bnet_and_boolode_krumsiek_match_scanpy():
    ref = signed(read_krumsiek11(), canon)
    bnet = read_bnet(builtin_path("krumsiek_myeloid.bnet"))
    assert len(bnet.edges) == 30 and signed(bnet, canon) == ref
    hsc = read_boolode(builtin_path("boolode/HSC.txt"))
    assert len(hsc.edges) == 30 and signed(hsc, canon) == ref
    assert hsc.initial[hsc.genes.index("Pu1")] == 1.0 and hsc.initial[hsc.genes.index("Fog1")] == 0.0


def test_boolode_linear_with_strengths():
    net = read_boolode(builtin_path("boolode/dyn-linear.txt"))
    assert signed(net) == {("g7", "g1", -1), ("g1", "g2", 1), ("g2", "g3", 1), ("g3", "g4", 1),
                           ("g4", "g5", 1), ("g5", "g6", 1), ("g6", "g7", 1), ("g7", "g7", 1)}
    row = net.edges[(net.edges.source == "g7") & (net.edges.target == "g1")].iloc[0]
    assert row["strength"] == 5.0 and row["half"] == pytest.approx(0.1)  # threshold 0.5 / strength 5


@pytest.mark.parametrize("folder,n_genes,n_edges", [("sergio_ds1", 100, 258), ("sergio_ds2", 400, 1155)])
def test_sergio_matches_gt_and_file_signs(folder, n_genes, n_edges):
    path = builtin_path(folder)
    net = read_sergio_dataset(path)
    assert net.n_genes == n_genes and len(net.edges) == n_edges
    gt = read_gt_grn(path / "gt_GRN.csv")
    assert len(gt) == n_edges
    assert set(zip(gt.source, gt.target)) == set(zip(net.edges.source, net.edges.target))
    inter = next(path.glob("Interaction_cID_*.txt"))
    assert signed(net) == raw_sergio_edges(inter)
    assert net.basal.shape == (9, n_genes) and (net.basal > 0).any(axis=0).sum() == len(next(path.glob("Regs_*")).read_text().split())
    assert (net.resolved_edges()["half"] > 0).all()


def test_shipped_sergio_copies_match_shared_data():
    src = SHARED / "sergio" / "De-noised_100G_9T_300cPerT_4_DS1"
    if not src.exists():
        pytest.skip("development data folder not present")
    for f in src.iterdir():
        assert (builtin_path("sergio_ds1") / f.name).read_bytes() == f.read_bytes()


def test_sergio_malformed_line(tmp_path):
    bad = tmp_path / "Interaction_cID_1.txt"
    bad.write_text("3.0,2.0,1.0,2.0,1.5\n")
    regs = tmp_path / "Regs_cID_1.txt"
    regs.write_text("1.0,0.5\n2.0,0.5\n")
    with pytest.raises(PerturbODEError, match="line 1"):
        read_sergio(bad, regs)


def test_collectri_subnetwork_signs_match_source():
    tfs = ["ETV2", "ERG", "GATA2", "NANOG", "POU5F1", "NOT_A_TF"]
    net = read_collectri(tfs=tfs, max_genes=80, targets_per_tf=10)
    assert all(tf in net.genes for tf in tfs[:-1]) and "NOT_A_TF" not in net.genes
    assert net.n_genes <= 80 and set(net.edges.source) <= set(tfs)
    src = pd.read_csv(builtin_path("collectri_atlas_subset.csv"))
    weight = {(s, t): w for s, t, w in src[["source", "target", "weight"]].itertuples(index=False)}
    for s, t, g in net.truth_edges().itertuples(index=False):
        assert np.sign(weight[(s, t)]) == g
    # every source edge among the chosen genes is kept (nothing silently dropped)
    kept = src[src.source.isin(net.genes[:5]) & src.target.isin(net.genes) & (src.source != src.target)]
    assert len(net.edges) == len(kept.drop_duplicates(["source", "target"]))


def test_boolean_rule_signs():
    assert BooleanRule.parse("A and not (B or C)").signs() == {"A": 1, "B": -1, "C": -1}
    assert BooleanRule.parse("(A & !B) | (!A & B)").signs() == {"A": 0, "B": 0}
    assert BooleanRule.parse("A or (A and B)").signs() == {"A": 1}  # B never matters
    with pytest.raises(PerturbODEError, match="Missing"):
        BooleanRule.parse("A and (B or C")
