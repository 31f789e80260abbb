"""Seed ensembles: several runs that differ only in their seed, and their consensus network.

Reruns of one setting spread widely (the network of a single run depends on its initial weights
and the cells its steps happened to sample), so the consensus of a few seeds is both more
accurate and honest about which edges are stable. The consensus ranks edges by the mean of the
members' signed scores (:func:`~perturbode_core.tools.grn.network_matrix`, the combined reading
by default; an edge whose sign flips between seeds averages towards zero) and gives each edge a
``confidence``: the share of members that keep it among their own strongest edges.
Members can train side by side in separate processes (``jobs``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError


def members_keep(n_genes: int) -> int:
    """How many of its strongest edges each member keeps when confidences are counted: 5 x genes
    (at most all ordered pairs): about the size of a typical regulatory network."""
    return int(min(5 * n_genes, n_genes * max(n_genes - 1, 1)))


@dataclass
class EnsembleResult:
    """The members' :class:`~perturbode_core.train.loop.FitResult` objects, first seed first."""

    members: list

    @property
    def model(self):
        """The first member's model (what simulations use)."""
        return self.members[0].model

    @property
    def seeds(self) -> list[int]:
        """The members' seeds."""
        return [int(m.train_config.seed) for m in self.members]

    def matrices(self, *, reading: str = "combined", alpha_mode: str = "plain", cells=None) -> list[np.ndarray]:
        """Each member's signed network scores in ``reading`` (``direct``: its G)."""
        from perturbode_core.tools.grn import network_matrix

        return [network_matrix(m.model, reading=reading, alpha_mode=alpha_mode, cells=cells) for m in self.members]

    def network(self, *, reading: str = "combined", alpha_mode: str = "plain", cells=None) -> np.ndarray:
        """The consensus network: the mean of the members' signed scores (``direct``: of their G)."""
        return np.mean(self.matrices(reading=reading, alpha_mode=alpha_mode, cells=cells), axis=0)

    def edges(self, *, top_k: int | None = None, reading: str = "combined", alpha_mode: str = "plain",
              cells=None) -> pd.DataFrame:
        """:func:`consensus_edge_table` of the members' networks, with their mean G beside."""
        scores = self.matrices(reading=reading, alpha_mode=alpha_mode, cells=cells)
        direct = self.matrices(reading="direct", alpha_mode=alpha_mode, cells=cells)
        return consensus_edge_table(scores, self.members[0].model.gene_names, top_k=top_k, direct=direct)


def consensus_edge_table(matrices, gene_names, *, top_k: int | None = None, keep: int | None = None,
                         direct=None) -> pd.DataFrame:
    """Edges of the mean network with their confidence.

    Parameters
    ----------
    matrices
        One signed score matrix (or G) per member (same genes).
    top_k
        Edges to return (strongest first; default all ordered pairs).
    keep
        Edges each member keeps for the confidence (default :func:`members_keep`).
    direct
        The members' G, when ``matrices`` are scores: their mean is added as column ``G``.

    Returns
    -------
    DataFrame ``source, target, weight, sign, rank, confidence[, G]``: ``weight`` the mean signed
    score, ``confidence`` the share of members that have the edge among their ``keep`` strongest.
    """
    from perturbode_core.io.edges import edge_table
    from perturbode_core.tools.metrics.stability import top_k_share

    if not matrices:
        raise PerturbODEError("No members to combine", where="consensus", fix="Train at least one seed")
    S = np.stack([np.asarray(G, dtype=np.float64) for G in matrices])
    p = S.shape[1]
    table = edge_table(S.mean(0), gene_names, top_k=top_k)
    share = top_k_share(S, members_keep(p) if keep is None else int(keep))
    index = {g: i for i, g in enumerate(map(str, gene_names))}
    rows, cols = table["target"].map(index).to_numpy(), table["source"].map(index).to_numpy()
    table["confidence"] = share[rows, cols]
    if direct is not None:
        table["G"] = np.mean([np.asarray(G, dtype=np.float64) for G in direct], axis=0)[rows, cols]
    return table


def member_checkpoints(checkpoint: str | Path) -> list[Path]:
    """The seed members of the run that ``checkpoint`` belongs to, first seed first.

    A run trained with several seeds (``perturbode train --seeds N``, :func:`fit_ensemble` with a
    ``checkpoint_dir``) keeps each member as ``RUN_DIR/seed_<seed>/model.pt`` beside
    ``RUN_DIR/model.pt`` (a copy of the first). For that ``model.pt`` the members are returned;
    for any other checkpoint (a single run, or one member named directly) the checkpoint alone.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.name != "model.pt":
        return [checkpoint]
    members = []
    for path in checkpoint.parent.glob("seed_*/model.pt"):
        tail = path.parent.name[len("seed_"):]
        if tail.lstrip("-").isdigit():
            members.append((int(tail), path))
    return [path for _, path in sorted(members)] if len(members) > 1 else [checkpoint]


def _fit_member(args):
    """One member in a worker process (one thread, so members train side by side)."""
    import torch

    torch.set_num_threads(1)
    from perturbode_core.train.loop import fit

    data, model_config, train_config, train_conditions, checkpoint_path = args
    return fit(data, model_config=model_config, train_config=train_config, train_conditions=train_conditions,
               checkpoint_path=checkpoint_path)


def fit_ensemble(data, *, seeds=3, model_config=None, train_config=None, train_conditions=None, jobs: int = 1,
                 checkpoint_dir: str | Path | None = None, callback=None, stop=None) -> EnsembleResult:
    """Train one model per seed and combine them.

    Parameters
    ----------
    data
        A :class:`~perturbode_core.data.dataset.PerturbationData`.
    seeds
        A number of members (seeds ``train_config.seed``, ``+1``, ...) or a list of seeds.
    model_config, train_config, train_conditions
        As in :func:`~perturbode_core.train.fit`; only the seed differs between members.
    jobs
        Members trained at once in separate processes (1: one after another, in this process,
        with ``callback`` and ``stop`` honoured).
    checkpoint_dir
        Write each member's checkpoint to ``checkpoint_dir/seed_<seed>/model.pt``.
    """
    from perturbode_core.train.loop import fit
    from perturbode_core.train.train_config import TrainConfig

    base = train_config or TrainConfig()
    seed_list = list(range(base.seed, base.seed + int(seeds))) if isinstance(seeds, (int, np.integer)) \
        else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise PerturbODEError(f"Seeds must be distinct and at least one, got {seed_list}", where="seeds",
                              fix="Give a number of seeds, e.g. 3")
    configs = [dataclasses.replace(base, seed=s) for s in seed_list]
    paths = [None if checkpoint_dir is None else Path(checkpoint_dir) / f"seed_{s}" / "model.pt" for s in seed_list]
    for path in paths:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if jobs > 1 and len(seed_list) > 1:
        ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        with ProcessPoolExecutor(max_workers=min(jobs, len(seed_list)), mp_context=ctx) as pool:
            members = list(pool.map(_fit_member, [(data, model_config, c, train_conditions, p)
                                                  for c, p in zip(configs, paths)]))
    else:
        members = []
        for c, p in zip(configs, paths):
            members.append(fit(data, model_config=model_config, train_config=c, train_conditions=train_conditions,
                               checkpoint_path=p, callback=callback, stop=stop))
            if stop is not None and stop.is_set():
                break
    return EnsembleResult(members=members)
