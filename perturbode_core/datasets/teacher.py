"""Synthetic data from a "teacher" PerturbODE with a known sparse network.

Used by the known-answer tests (a fresh model must recover the teacher's network) and by the
speed benchmarks (data of any shape). For biologically shaped ground-truth data, use the
stochastic simulator in :mod:`perturbode_core.datasets`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from perturbode_core.model import ModelConfig, PerturbODE


def teacher_model(n_genes: int = 12, *, targets_per_regulator: int = 2, weight: float = 2.0,
                  seed: int = 0, horizon: float = 10.0) -> PerturbODE:
    """A PerturbODE whose module k has gene k as its only regulator and a few signed targets.

    Its network G = A diag(alpha) B is then exactly sparse: edge k -> i when A[i, k] != 0, with
    sign(A[i, k] * B[k, k]). Data units equal model units (mean 0, scale 1); the control state
    is drawn around 2 (a typical log-expression), so a knockout (level 0) is a large change.
    """
    rng = np.random.default_rng(seed)
    p = n_genes
    config = ModelConfig(n_modules=p, horizon=horizon, alpha_mode="fixed", learn_decay=False)
    level = rng.uniform(1.5, 2.5, size=p).astype(np.float32)
    model = PerturbODE([f"G{i:03d}" for i in range(p)], config, mean=np.zeros(p), scale=np.ones(p),
                       control_level=level, seed=seed)
    A = np.zeros((p, p), np.float32)
    B = np.zeros((p, p), np.float32)
    for k in range(p):
        B[k, k] = weight * rng.choice([-1.0, 1.0]) * 0.7
        others = [i for i in range(p) if i != k]
        for i in rng.choice(others, size=min(targets_per_regulator, len(others)), replace=False):
            A[i, k] = weight * rng.choice([-1.0, 1.0])
    with torch.no_grad():
        model.A.copy_(torch.from_numpy(A))
        model.B.copy_(torch.from_numpy(B))
        # centre each module's sigmoid on its regulator's control level (steepest response)
        model.b.copy_(torch.from_numpy(-B.diagonal() * level))
    return model


def teacher_edges(model: PerturbODE, tol: float = 1e-8) -> pd.DataFrame:
    """The teacher's true edges (source, target, sign) read off G = A diag(alpha) B."""
    with torch.no_grad():
        G = (model.A * model.alpha) @ model.B
    G = G.numpy()
    np.fill_diagonal(G, 0.0)
    tgt, src = np.nonzero(np.abs(G) > tol)
    genes = np.asarray(model.gene_names)
    return pd.DataFrame({"source": genes[src], "target": genes[tgt], "sign": np.sign(G[tgt, src]).astype(int)})


def teacher_dataset(model: PerturbODE, *, perturbations: list[str] | None = None, cells_per_condition: int = 100,
                    n_control: int | None = None, noise: float = 0.2, seed: int = 0):
    """An AnnData of control and perturbed cells simulated by ``model``.

    Control cells are the control state plus Gaussian noise; each perturbed population is those
    cells integrated to the horizon under the perturbation, plus the same measurement noise.
    ``perturbations`` defaults to a knockout of every gene.
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    p = model.n_genes
    level = model.unstandardize(model.anchor).detach().numpy()
    perturbations = perturbations or [f"{g}" for g in model.gene_names]
    n_control = n_control or cells_per_condition
    blocks, labels = [], []
    ctrl = level + noise * rng.standard_normal((n_control, p)).astype(np.float32)
    blocks.append(ctrl)
    labels += ["control"] * n_control
    start = level + noise * rng.standard_normal((cells_per_condition, p)).astype(np.float32)
    sims = model.simulate(start, perturbations)[-1]  # (C, n, p)
    for pert, sim in zip(perturbations, sims):
        blocks.append(sim + noise * rng.standard_normal(sim.shape).astype(np.float32))
        labels += [pert] * cells_per_condition
    X = np.vstack(blocks).astype(np.float32)
    obs = pd.DataFrame({"perturbation": labels}, index=[f"cell{i}" for i in range(len(labels))])
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=model.gene_names))
    edges = teacher_edges(model)
    adata.uns["true_edges"] = {c: edges[c].tolist() for c in edges.columns}
    return adata
