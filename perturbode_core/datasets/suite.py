"""The accuracy benchmark's datasets: screens of several designs, each with its known network.

The built-in datasets cover two designs (single-cell knockouts of every regulator; TF
overexpression). A default that wins only there may not carry over, so the benchmark adds the
designs of other published benchmarks, all simulated on known networks by
:func:`~perturbode_core.datasets.screen_simulator.simulate_screen`:

``bulk-ko``        one profile per knockout and one wild type (DREAM-style bulk screens)
``knockdown``      CRISPRi-like knock-downs (70 % removed) instead of knockouts
``partial``        only every other regulator perturbed (edges out of the others must be inferred)
``boolode-*``      curated BoolODE models (Pratapa et al. 2020) with Boolean (AND/OR) logic
``cellcycle``      a pyboolnet model with feedback loops (Faure et al. 2006)
``drugs``          a signalling network shaped like Sachs et al. (2005): inhibitors and activators
                   that change a protein's activity, not its measured level, named as such data
                   are (``perturbation`` = protein, ``intervention_type`` = inhibition / activation)

Each entry returns ``(AnnData, truth edges)``; data are deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from perturbode_core.datasets import registry
from perturbode_core.datasets.gene_network import GeneNetwork
from perturbode_core.datasets.network_readers import builtin_path, read_bnet, read_boolode
from perturbode_core.datasets.screen_simulator import simulate_screen
from perturbode_core.errors import PerturbODEError

#: Edges of the Sachs et al. (2005) consensus signalling network used by the ``drugs`` design
#: (source, target, sign), over Raf, Mek, Plcg, PIP2, PIP3, Erk, Akt, PKA, PKC, P38, Jnk.
SACHS_EDGES = [("PKC", "Raf", 1), ("PKC", "Mek", 1), ("PKC", "PKA", 1), ("PKC", "Jnk", 1), ("PKC", "P38", 1),
               ("PKA", "Raf", -1), ("PKA", "Mek", -1), ("PKA", "Erk", 1), ("PKA", "Akt", 1), ("PKA", "Jnk", 1),
               ("PKA", "P38", 1), ("Raf", "Mek", 1), ("Mek", "Erk", 1), ("Plcg", "PIP2", -1), ("Plcg", "PKC", 1),
               ("PIP3", "PIP2", 1), ("PIP3", "Akt", 1), ("PIP2", "PKC", 1), ("Erk", "Akt", 1)]
SACHS_PROTEINS = ["Raf", "Mek", "Plcg", "PIP2", "PIP3", "Erk", "Akt", "PKA", "PKC", "P38", "Jnk"]


@dataclass(frozen=True)
class SuiteEntry:
    """One benchmark dataset: its name, what it tests, and how to make it."""

    name: str
    description: str
    make: Callable[[int], tuple]
    quick: bool = False


def _registry(name: str) -> Callable[[int], tuple]:
    def make(seed: int):
        return registry.load_dataset(name), registry.truth_edges(name)
    return make


def _ds1(conditions_of, *, cells: int = 100, cell_types=("ct0", "ct1", "ct2")) -> Callable[[int], tuple]:
    def make(seed: int):
        net = registry.get_network("sergio-ds1")
        adata = simulate_screen(net, conditions=conditions_of(net), cells_per_condition=cells,
                                cell_types=list(cell_types), intrinsic_noise=0.2, seed=seed)
        return adata, net.truth_edges()
    return make


def pseudobulk(adata, *, noise_sd: float = 0.05, seed: int = 0):
    """One profile per condition: the mean of its cells plus Gaussian measurement noise."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    X = np.asarray(adata.X, dtype=np.float64)
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    kinds = adata.obs["intervention_type"].astype(str).to_numpy()
    names = list(pd.unique(labels))
    rows = np.stack([X[labels == c].mean(0) for c in names])
    rows += noise_sd * rng.standard_normal(rows.shape)
    obs = pd.DataFrame({"perturbation": names, "intervention_type": [kinds[labels == c][0] for c in names]},
                       index=[f"profile{i}" for i in range(len(names))])
    return ad.AnnData(X=np.clip(rows, 0, None).astype(np.float32), obs=obs, var=adata.var.copy())


def _bulk(seed: int):
    net = registry.get_network("sergio-ds1")
    adata = simulate_screen(net, conditions=[f"{g}:knockout" for g in net.regulators], cells_per_condition=30,
                            cell_types=["ct0"], intrinsic_noise=0.2, seed=seed)
    return pseudobulk(adata, seed=seed), net.truth_edges()


def _boolean(reader, file: str, *, cells: int = 100) -> Callable[[int], tuple]:
    def make(seed: int):
        net = reader(builtin_path(file))
        adata = simulate_screen(net, conditions=[f"{g}:knockout" for g in net.genes], cells_per_condition=cells,
                                intrinsic_noise=0.1, seed=seed)
        truth = net.truth_edges()
        return adata, truth[truth["source"] != truth["target"]].reset_index(drop=True)
    return make


def sachs_network() -> GeneNetwork:
    """The ``drugs`` design's network: Hill kinetics on :data:`SACHS_EDGES` (strengths drawn once)."""
    rng = np.random.default_rng(1)
    edges = pd.DataFrame([{"source": a, "target": b, "sign": s, "strength": float(rng.uniform(1.5, 3.0)),
                           "hill": 2.0, "half": np.nan} for a, b, s in SACHS_EDGES])
    basal = np.full((1, len(SACHS_PROTEINS)), 0.3)
    for root in ("Plcg", "PIP3"):
        basal[0, SACHS_PROTEINS.index(root)] = 2.0
    return GeneNetwork(name="sachs-like", genes=list(SACHS_PROTEINS), edges=edges, basal=basal, decay=1.0,
                       cell_types=["T cell"], source="Sachs et al. 2005 consensus graph (Science 308:523), "
                                                     "kinetics simulated")


def _drugs(seed: int):
    """Inhibitors of Akt, PKC, PIP2, Mek, PIP3 and activators of PKC and PKA, labelled as a
    phospho-flow screen is: the protein and the drug's direction, no dose."""
    net = sachs_network()
    inhibited, activated = ["Akt", "PKC", "PIP2", "Mek", "PIP3"], ["PKC", "PKA"]
    conds = [f"{g}:activity=0.1" for g in inhibited] + [f"{g}:activity=3" for g in activated]
    adata = simulate_screen(net, conditions=conds, cells_per_condition=200, intrinsic_noise=0.15, seed=seed,
                            technical_noise=False)
    spec = adata.obs["perturbation"].astype(str).to_numpy()
    adata.obs["perturbation"] = [s.split(":")[0] for s in spec]
    adata.obs["intervention_type"] = ["control" if s == "control" else "activation" if s.endswith("=3")
                                      else "inhibition" for s in spec]
    adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
    adata.X = np.arcsinh(np.asarray(adata.X) * 5).astype(np.float32)  # cytometry's usual transform
    return adata, net.truth_edges()


SUITE = {e.name: e for e in [
    SuiteEntry("myeloid", "Krumsiek myeloid network, knockout and overexpression of each TF", _registry("myeloid"),
               quick=True),
    SuiteEntry("sergio-ds1", "SERGIO DS1 (100 genes), knockout of every regulator", _registry("sergio-ds1")),
    SuiteEntry("human-tf-atlas", "CollecTRI atlas (264 genes), TF overexpression", _registry("human-tf-atlas")),
    SuiteEntry("sergio-ds2", "SERGIO DS2 (400 genes), knockout of every regulator", _registry("sergio-ds2")),
    SuiteEntry("bulk-ko", "SERGIO DS1, one bulk profile per knockout and one wild type", _bulk, quick=True),
    SuiteEntry("knockdown", "SERGIO DS1, 70 % knock-down of every regulator",
               _ds1(lambda net: [f"{g}:knockdown=0.7" for g in net.regulators])),
    SuiteEntry("partial", "SERGIO DS1, knockout of every other regulator only",
               _ds1(lambda net: [f"{g}:knockout" for g in list(net.regulators)[::2]])),
    SuiteEntry("boolode-hsc", "BoolODE HSC model (11 genes, Boolean logic), knockout of every gene",
               _boolean(read_boolode, "boolode/HSC.txt"), quick=True),
    SuiteEntry("boolode-gsd", "BoolODE GSD model (19 genes), knockout of every gene",
               _boolean(read_boolode, "boolode/GSD.txt")),
    SuiteEntry("cellcycle", "Faure cell-cycle Boolean network (10 genes, feedback), knockout of every gene",
               _boolean(read_bnet, "bnet/faure_cellcycle.bnet"), quick=True),
    SuiteEntry("drugs", "Sachs-like signalling network, inhibitors and activators (activity changes)", _drugs,
               quick=True),
]}


def suite_names(*, quick: bool = False) -> list[str]:
    """Names of the benchmark datasets (the quick subset with ``quick=True``)."""
    return [n for n, e in SUITE.items() if e.quick or not quick]


def load_suite_dataset(name: str, *, seed: int = 0):
    """``(AnnData, truth edges)`` of benchmark dataset ``name`` (simulated with ``seed``; the
    built-in ones are the shipped files whatever the seed)."""
    if name not in SUITE:
        raise PerturbODEError(f"Unknown benchmark dataset {name!r}", where="benchmark datasets",
                              fix=f"Use one of: {', '.join(SUITE)}")
    adata, truth = SUITE[name].make(seed)
    truth = truth[truth["source"] != truth["target"]][["source", "target", "sign"]].reset_index(drop=True)
    return adata, truth
