"""Readers of published networks, each returning a :class:`~.network.GeneNetwork`.

* :func:`read_sergio` - SERGIO ``Interaction_cID_*`` / ``Regs_cID_*`` (additive Hill kinetics as
  published: strengths, Hill coefficients, per-cell-type basal rates).
* :func:`read_krumsiek11` - scanpy's ``krumsiek11.txt`` (Krumsiek et al. 2011 myeloid network:
  Boolean rules plus 30 signed couplings; kinetics as scanpy's simulator: Hill cube with
  threshold 0.1 / |coupling|, n = 2).
* :func:`read_boolode` - BoolODE model files (``Gene<TAB>Rule``, optional ``*_strengths.txt`` and
  ``*_ics.txt``).
* :func:`read_bnet` - pyboolnet / BoolNet ``.bnet`` rules (``target, factors``).
* :func:`read_collectri` - a signed CollecTRI sub-network around chosen TFs, with SERGIO-like
  kinetics drawn at random (seeded).

Boolean models become Hill kinetics by the multilinear "Hill cube" of their rules; the sign of each
edge is the monotonicity of the rule in that regulator.
"""

from __future__ import annotations

import ast
import csv
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import check_input_file
from perturbode_core.datasets.boolean_rules import BooleanRule
from perturbode_core.datasets.gene_network import GeneNetwork

BUILTIN = "perturbode_core.datasets"  # files live in its builtin/ folder (package data)


def builtin_path(name: str) -> Path:
    """Path of a file shipped in ``perturbode_core/datasets/builtin``."""
    path = Path(str(resources.files(BUILTIN).joinpath("builtin", name)))
    if not path.exists():
        raise PerturbODEError(f"Built-in file {name!r} is missing from the installation", where=str(path),
                              fix="Reinstall perturbode, or run scripts/build_datasets.py")
    return path


def _read_text(path, what: str) -> str:
    return check_input_file(path, kind=what).read_text(encoding="utf-8")


def _edges_from_rules(rules: dict[str, BooleanRule], *, half, hill=2.0, strength=None) -> pd.DataFrame:
    """Signed edges implied by Boolean rules (regulators that never change the output are left out)."""
    rows = []
    for target, rule in rules.items():
        for reg, sign in rule.signs().items():
            s = 1.0 if strength is None else strength.get((target, reg), 1.0)
            h = half(s) if callable(half) else half
            rows.append({"source": reg, "target": target, "sign": sign, "strength": s, "hill": hill, "half": h})
    return pd.DataFrame(rows, columns=["source", "target", "sign", "strength", "hill", "half"])


# ------------------------------------------------------------------ SERGIO
def read_sergio(interactions, regulators, *, decay: float = 0.8, name: str | None = None,
                gene_prefix: str = "G") -> GeneNetwork:
    """Read a SERGIO network (Dibaeinia & Sinha 2020).

    Parameters
    ----------
    interactions
        ``Interaction_cID_*.txt``: per line a target id, the number r of regulators, r regulator
        ids, r strengths K (sign = activation / repression) and r Hill coefficients.
    regulators
        ``Regs_cID_*.txt``: per line a master-regulator id and its basal production rate in each
        cell type.
    decay
        Decay rate of every gene (SERGIO's default 0.8).
    gene_prefix
        Genes are named ``prefix + id`` with the ids of the files (``G0``, ``G1``, ...).

    Returns
    -------
    GeneNetwork
        Additive Hill kinetics; half-responses chosen as SERGIO does (mean regulator level).
    """
    where = str(interactions)
    rows, targets = [], []
    for lineno, line in enumerate(_read_text(interactions, "SERGIO interaction file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            vals = [float(v) for v in line.replace(",", " ").split()]
            tgt, r = int(vals[0]), int(vals[1])
            regs, ks, ns = vals[2:2 + r], vals[2 + r:2 + 2 * r], vals[2 + 2 * r:2 + 3 * r]
            if len(ns) != r or len(vals) != 2 + 3 * r:
                raise ValueError(f"expected {2 + 3 * r} numbers, found {len(vals)}")
        except (ValueError, IndexError) as exc:
            raise PerturbODEError(f"Malformed SERGIO interaction line ({exc})", where=f"{where}, line {lineno}",
                                  fix="Each line: target, r, r regulators, r strengths, r Hill coefficients") from None
        targets.append(tgt)
        for reg, k, nh in zip(regs, ks, ns):
            rows.append({"source": int(reg), "target": tgt, "sign": 1 if k > 0 else -1, "strength": abs(k),
                         "hill": nh, "half": np.nan})
    masters: dict[int, list[float]] = {}
    for lineno, line in enumerate(_read_text(regulators, "SERGIO regulator file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            vals = [float(v) for v in line.replace(",", " ").split()]
        except ValueError:
            raise PerturbODEError("Malformed SERGIO master-regulator line", where=f"{regulators}, line {lineno}",
                                  fix="Each line: id, then one basal rate per cell type") from None
        masters[int(vals[0])] = vals[1:]
    n_types = {len(v) for v in masters.values()}
    if len(n_types) != 1:
        raise PerturbODEError("Master regulators list different numbers of cell types", where=str(regulators),
                              fix="Give every master regulator one rate per cell type")
    n_types = n_types.pop()
    ids = sorted(set(targets) | set(masters) | {r["source"] for r in rows})
    genes = [f"{gene_prefix}{i}" for i in ids]
    col = {i: c for c, i in enumerate(ids)}
    basal = np.zeros((n_types, len(ids)))
    for i, rates in masters.items():
        basal[:, col[i]] = rates
    edges = pd.DataFrame(rows)
    edges["source"] = gene_prefix + edges["source"].astype(str)
    edges["target"] = gene_prefix + edges["target"].astype(str)
    return GeneNetwork(name=name or Path(interactions).parent.name, genes=genes, edges=edges, basal=basal,
                       decay=decay, cell_types=[f"ct{i}" for i in range(n_types)], source=str(interactions))


def read_sergio_dataset(folder) -> GeneNetwork:
    """Read a SERGIO ``De-noised_*`` folder (its ``Interaction_cID_*`` and ``Regs_cID_*`` files)."""
    folder = Path(folder)
    inter = sorted(folder.glob("Interaction_cID_*.txt"))
    regs = sorted(folder.glob("Regs_cID_*.txt"))
    if len(inter) != 1 or len(regs) != 1:
        raise PerturbODEError("Expected one Interaction_cID_*.txt and one Regs_cID_*.txt", where=str(folder),
                              fix="Point to a SERGIO data-set folder")
    return read_sergio(inter[0], regs[0], name=folder.name)


def read_gt_grn(path, *, gene_prefix: str = "G") -> pd.DataFrame:
    """SERGIO's ``gt_GRN.csv`` (regulator, target ids) as ``source, target`` names."""
    df = pd.read_csv(path, header=None, names=["source", "target"])
    return pd.DataFrame({"source": gene_prefix + df["source"].astype(int).astype(str),
                         "target": gene_prefix + df["target"].astype(int).astype(str)})


# --------------------------------------------------------------- Krumsiek
def read_krumsiek11(path=None) -> GeneNetwork:
    """Krumsiek et al. (2011) myeloid progenitor network, as shipped by scanpy.

    Parameters
    ----------
    path
        ``krumsiek11.txt``; default the copy in ``datasets/builtin`` (from scanpy).

    Returns
    -------
    GeneNetwork
        11 factors, 30 signed couplings (the ground truth), Boolean rules as Hill cubes with
        scanpy's kinetics (threshold 0.1 / |coupling|, n = 2, decay 1, vmax 1), and the common
        myeloid progenitor (Gata2, Pu.1, Cebpa at 0.8) as the starting state.
    """
    path = builtin_path("krumsiek11.txt") if path is None else Path(path)
    rules: dict[str, BooleanRule] = {}
    couplings = []
    in_couplings = False
    for lineno, raw in enumerate(_read_text(path, "Krumsiek network file").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            in_couplings = in_couplings or "coupling list" in line
            continue
        if not line:
            continue
        where = f"{path}, line {lineno}"
        if in_couplings:
            parts = line.split()
            if len(parts) != 3:
                raise PerturbODEError("Malformed coupling line", where=where, fix="Write: target regulator weight")
            couplings.append((parts[0], parts[1], float(parts[2])))
        else:
            target, sep, expr = line.partition("=")
            if not sep:
                raise PerturbODEError("Malformed rule line", where=where, fix="Write: Gene = boolean expression")
            rules[target.strip()] = BooleanRule.parse(expr, where=where)
    genes = list(rules)
    edges = pd.DataFrame([{"source": reg, "target": tgt, "sign": int(np.sign(w)), "strength": abs(w), "hill": 2.0,
                           "half": 0.1 / abs(w)} for tgt, reg, w in couplings])
    initial = np.array([0.8 if g in ("Gata2", "Pu.1", "Cebpa") else 0.0 for g in genes])
    return GeneNetwork(name="krumsiek11", genes=genes, edges=edges, basal=np.zeros((1, len(genes))), decay=1.0,
                       cell_types=["progenitor"], rules=rules, vmax=1.0, initial=initial,
                       source="Krumsiek et al. 2011, PLoS ONE 6(8): e22649 (scanpy sim_models/krumsiek11.txt)")


# ---------------------------------------------------------------- BoolODE
def read_boolode(path, *, strengths=None, initial=None, threshold: float = 0.5, hill: float = 4.0) -> GeneNetwork:
    """Read a BoolODE model (Pratapa et al. 2020): ``Gene<TAB>Rule`` with Python-style logic.

    Parameters
    ----------
    path
        The model file.
    strengths
        ``Gene1 Gene2 Strength`` file (Gene2 regulates Gene1); default ``<stem>_strengths.txt``
        beside the model when present. A strength s sets that edge's threshold to ``threshold / s``.
    initial
        ``Genes Values`` initial-condition file; default ``<stem>_ics.txt`` when present. Listed
        genes start at their value, the others at 0; without one, cells start from steady state.
    threshold
        Hill half-response of an edge of strength 1 (levels lie in [0, 1]).
    hill
        Hill coefficient of every edge.
    """
    path = Path(path)
    rules = {}
    for lineno, line in enumerate(_read_text(path, "BoolODE model").splitlines(), 1):
        if not line.strip() or lineno == 1 and line.split("\t")[0].strip().lower() == "gene":
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise PerturbODEError("Malformed BoolODE rule line", where=f"{path}, line {lineno}",
                                  fix="Write: Gene<TAB>Rule")
        rules[parts[0].strip()] = BooleanRule.parse(parts[1], where=f"{path}, line {lineno}")
    strength_map = {}
    spath = Path(strengths) if strengths else path.with_name(path.stem + "_strengths.txt")
    if spath.exists():
        for row in list(csv.reader(io.StringIO(spath.read_text()), delimiter="\t"))[1:]:
            if len(row) >= 3:
                strength_map[(row[0].strip(), row[1].strip())] = float(row[2])
    genes = _genes_of(rules)
    edges = _edges_from_rules(rules, half=lambda s: threshold / s, hill=hill, strength=strength_map)
    init = None
    ipath = Path(initial) if initial else path.with_name(path.stem + "_ics.txt")
    if ipath.exists():
        init = np.zeros(len(genes))
        for row in list(csv.reader(io.StringIO(ipath.read_text()), delimiter="\t"))[1:]:
            if len(row) >= 2:
                names, values = ast.literal_eval(row[0]), ast.literal_eval(row[1])
                for g, v in zip(names, values):
                    if g in genes:
                        init[genes.index(g)] = float(v)
    return _boolean_network(path.stem, genes, edges, rules, init, f"BoolODE model {path.name}")


def read_bnet(path, *, threshold: float = 0.5, hill: float = 4.0) -> GeneNetwork:
    """Read a ``.bnet`` Boolean network (pyboolnet / BoolNet: ``target, factors`` with ``& | !``).

    Parameters
    ----------
    path
        The ``.bnet`` file.
    threshold, hill
        Hill half-response and coefficient of every edge (levels lie in [0, 1]).
    """
    path = Path(path)
    rules = {}
    for lineno, line in enumerate(_read_text(path, ".bnet file").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.replace(" ", "").lower() == "targets,factors":
            continue
        target, sep, expr = line.partition(",")
        if not sep:
            raise PerturbODEError("Malformed .bnet line", where=f"{path}, line {lineno}", fix="Write: target, rule")
        rules[target.strip()] = BooleanRule.parse(expr, where=f"{path}, line {lineno}")
    genes = _genes_of(rules)
    edges = _edges_from_rules(rules, half=threshold, hill=hill)
    return _boolean_network(path.stem, genes, edges, rules, None, f"Boolean network {path.name}")


def _genes_of(rules: dict[str, BooleanRule]) -> list[str]:
    genes = list(rules)
    for rule in rules.values():
        genes += [r for r in rule.regulators if r not in genes]
    return genes


def _boolean_network(name, genes, edges, rules, initial, source) -> GeneNetwork:
    # regulators without a rule of their own are inputs: they keep their level (self-activation)
    for g in genes:
        if g not in rules:
            rules[g] = BooleanRule.parse(g)
            edges = pd.concat([edges, pd.DataFrame([{"source": g, "target": g, "sign": 1, "strength": 1.0,
                                                     "hill": edges["hill"].iloc[0] if len(edges) else 4.0,
                                                     "half": 0.5}])], ignore_index=True)
    return GeneNetwork(name=name, genes=genes, edges=edges, basal=np.zeros((1, len(genes))), decay=1.0,
                       rules=rules, vmax=1.0, initial=initial, source=source)


# --------------------------------------------------------------- CollecTRI
def read_collectri(path=None, *, tfs: list[str], max_genes: int = 300, targets_per_tf: int = 12,
                   seed: int = 0, strength_range=(1.0, 4.0), basal_range=(0.5, 2.0),
                   decay: float = 0.8, only_chosen_regulators: bool = True) -> GeneNetwork:
    """A signed CollecTRI sub-network around chosen TFs, with SERGIO-like kinetics.

    Parameters
    ----------
    path
        CollecTRI edge list (``source, target, weight`` with weight = +1 / -1); default the
        subset shipped in ``datasets/builtin``.
    tfs
        TFs to build around (those absent from CollecTRI are skipped).
    max_genes
        Upper bound on the genes (TFs plus targets).
    targets_per_tf
        Targets taken per TF, preferring targets shared by several of the chosen TFs (so that
        programmes overlap) and then by name, deterministically.
    seed
        Seed of the kinetic parameters (strengths, basal rates of genes without regulators).
    strength_range, basal_range
        Ranges of |K| and of the basal rates of master regulators (uniform draws).
    decay
        Decay rate of every gene.
    only_chosen_regulators
        Keep only edges whose source is one of ``tfs`` (default). Otherwise every CollecTRI edge
        among the chosen genes is kept (the induced sub-network, about twice as dense, which
        dilutes each TF's effect on its targets).

    Returns
    -------
    GeneNetwork
        The signed CollecTRI edges among the chosen genes: the ground truth.
    """
    path = builtin_path("collectri_atlas_subset.csv") if path is None else Path(path)
    check_input_file(path, kind="CollecTRI file")
    net = pd.read_csv(path)
    missing_cols = {"source", "target", "weight"} - set(net.columns)
    if missing_cols:
        raise PerturbODEError(f"CollecTRI file lacks column(s) {', '.join(sorted(missing_cols))}", where=str(path),
                              fix="Give a source,target,weight edge list")
    net = net[net["source"] != net["target"]]
    present = [t for t in dict.fromkeys(tfs) if t in set(net["source"])]
    if not present:
        raise PerturbODEError("None of the TFs are in CollecTRI", where=str(path), fix="Choose CollecTRI TFs")
    chosen = net[net["source"].isin(present)]
    shared = chosen.groupby("target")["source"].nunique()
    genes = list(present)
    per_tf = max(1, targets_per_tf)
    for tf in present:
        tg = chosen.loc[chosen["source"] == tf, "target"].unique()
        order = sorted(tg, key=lambda g: (-int(shared.get(g, 0)), g))
        for g in order[:per_tf]:
            if len(genes) >= max_genes:
                break
            if g not in genes:
                genes.append(g)
    gset = set(genes)
    sources = set(present) if only_chosen_regulators else gset
    sub = net[net["source"].isin(sources) & net["target"].isin(gset)].drop_duplicates(["source", "target"])
    sub = sub.sort_values(["source", "target"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    edges = pd.DataFrame({"source": sub["source"], "target": sub["target"],
                          "sign": np.where(sub["weight"].to_numpy() < 0, -1, 1),
                          "strength": rng.uniform(*strength_range, size=len(sub)), "hill": 2.0, "half": np.nan})
    has_input = set(edges["target"])
    # genes without regulators in the sub-network are its master regulators (constant production);
    # all others get a little leak so that no gene is silent in the control
    basal = np.where([g in has_input for g in genes], 0.1, rng.uniform(*basal_range, size=len(genes)))
    return GeneNetwork(name="collectri", genes=genes, edges=edges, basal=basal[None, :], decay=decay,
                       cell_types=["ESC"], source=f"CollecTRI (Mueller-Dott et al. 2023), {path.name}")
