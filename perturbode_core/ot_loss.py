"""Optimal-transport losses between simulated and observed cell populations.

``w2``
    Exact squared 2-Wasserstein distance (POT ``emd2``; gradients flow through the cost matrix).
``sinkhorn``
    Debiased Sinkhorn divergence S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2,
    batched over all groups of a minibatch in one log-domain torch loop. Written here rather than
    calling POT once per group because the batched version runs every condition in the same
    tensor operations (one loop instead of C), which is what makes large minibatches cheap.

Both return one value per group, divided by the number of genes, so that the loss (and hence the
L1 weight that balances it) does not depend on how many genes the model has.
"""

from __future__ import annotations

import torch

from .errors import check_choice

LOSSES = ("w2", "sinkhorn")


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, batched: (..., n, p), (..., m, p) -> (..., n, m)."""
    xx = (x * x).sum(-1, keepdim=True)
    yy = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    return (xx + yy - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)


def exact_w2(x: torch.Tensor, y: torch.Tensor, *, weights_y: torch.Tensor | None = None) -> torch.Tensor:
    """Exact squared W2 between two point clouds (uniform weights), differentiable in x and y."""
    import ot

    M = squared_distances(x, y)
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype) if weights_y is None else weights_y
    return ot.emd2(a, b, M)


def _entropic_ot(C: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, eps: float, n_iter: int) -> torch.Tensor:
    """Batched entropic OT cost <P, C> by log-domain Sinkhorn.

    C: (G, n, m); log_a: (G, n); log_b: (G, m). Returns (G,).
    """
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    Ce = C / eps
    for _ in range(n_iter):
        f = -torch.logsumexp(log_b[:, None, :] + g[:, None, :] - Ce, dim=2)
        g = -torch.logsumexp(log_a[:, :, None] + f[:, :, None] - Ce, dim=1)
    log_P = log_a[:, :, None] + log_b[:, None, :] + f[:, :, None] + g[:, None, :] - Ce
    return (log_P.exp() * C).sum((1, 2))


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, *, mask_y: torch.Tensor | None = None,
                        eps: float = 0.1, n_iter: int = 50) -> torch.Tensor:
    """Debiased Sinkhorn divergence per group.

    Parameters
    ----------
    x
        Simulated cells (G, n, p).
    y
        Observed cells (G, m, p), padded; ``mask_y`` (G, m) marks the real ones.
    eps
        Entropic regularisation, relative to the mean squared distance of the batch (so it is
        scale-free).
    """
    G, n, _ = x.shape
    m = y.shape[1]
    if mask_y is None:
        mask_y = torch.ones(G, m, dtype=torch.bool)
    # A large negative log-weight (not -inf) for padding keeps logsumexp free of NaNs.
    log_a = torch.full((G, n), -torch.log(torch.tensor(float(n))))
    counts = mask_y.sum(1, keepdim=True).clamp_min(1)
    log_b = torch.where(mask_y, -torch.log(counts.float()), torch.full_like(mask_y, -1e4, dtype=x.dtype))
    Cxy = squared_distances(x, y)
    Cxx = squared_distances(x, x)
    Cyy = squared_distances(y, y)
    with torch.no_grad():
        scale = (Cxy * mask_y[:, None, :]).sum() / (mask_y.sum() * n).clamp_min(1)
    e = float(eps) * max(float(scale), 1e-6)
    return (_entropic_ot(Cxy, log_a, log_b, e, n_iter)
            - 0.5 * _entropic_ot(Cxx, log_a, log_a, e, n_iter)
            - 0.5 * _entropic_ot(Cyy, log_b, log_b, e, n_iter))


def population_loss(sim: torch.Tensor, obs: list[torch.Tensor], *, kind: str = "w2", eps: float = 0.1,
                    n_iter: int = 50) -> torch.Tensor:
    """OT loss of each group between simulated (G, n, p) and observed cells (list of (m_g, p)).

    Returns a (G,) tensor, each divided by the number of genes p.
    """
    check_choice("loss", kind, LOSSES)
    p = sim.shape[-1]
    if kind == "w2":
        return torch.stack([exact_w2(sim[g], obs[g]) for g in range(len(obs))]) / p
    m = max(o.shape[0] for o in obs)
    y = sim.new_zeros(len(obs), m, p)
    mask = torch.zeros(len(obs), m, dtype=torch.bool)
    for g, o in enumerate(obs):
        y[g, : o.shape[0]] = o
        mask[g, : o.shape[0]] = True
    return sinkhorn_divergence(sim, y, mask_y=mask, eps=eps, n_iter=n_iter) / p
