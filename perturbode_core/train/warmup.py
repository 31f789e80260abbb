"""Phase one of training: fit the condition means before the cells.

Each condition's mean shift from the control cells, over all of its cells, is what the knockout
z-score reads and most of what a network is identified by. The cell-level OT loss sees it only
through the cells sampled in a step, so its gradients carry that sampling noise and a few hundred
steps end wherever the last samples pushed the weights. Here the model integrates one state, the
control mean, under every condition at once and matches the observed mean shifts exactly: a
deterministic, full-batch problem that is cheap (one state per condition instead of a population)
and so can be run to convergence with a decaying learning rate. The cell phase then starts from a
network that already explains the means.
"""

from __future__ import annotations

import math
import time

import torch

from perturbode_core.train.batches import ConditionGroups


def means_loss(model, groups: ConditionGroups, group_ids: list[int], z_ref: torch.Tensor) -> torch.Tensor:
    """Mean over ``group_ids`` of the squared error (per gene) of the simulated mean shift of the
    control-mean state against the observed mean shift of the group."""
    conds = sorted({groups.group_cond[g] for g in group_ids})
    pos = {c: i for i, c in enumerate(conds)}
    t_needed = sorted({groups.group_time[g] for g in group_ids} | {0})
    t_pos = {ti: k for k, ti in enumerate(t_needed)}
    traj = model.integrate(z_ref, groups.sub_batch(conds), [groups.time_values[i] for i in t_needed])
    pred = torch.stack([traj[t_pos[groups.group_time[g]], pos[groups.group_cond[g]], 0] for g in group_ids])
    return ((pred - z_ref - groups.means[group_ids]) ** 2).mean()


def fit_means(model, groups: ConditionGroups, cfg, *, val_groups: ConditionGroups | None = None, callback=None,
              stop=None) -> dict:
    """Fit ``model`` to the mean shifts of ``groups`` (set by :meth:`ConditionGroups.set_means`).

    ``cfg.warmup_steps`` Adam steps over all perturbed groups (in blocks of at most
    ``cfg.warmup_batch`` groups), learning rate ``cfg.warmup_learning_rate`` decaying by a cosine to 5 %,
    L1 weight ``cfg.warmup_l1``. With ``val_groups``, the weights with the lowest validation error
    (checked every ``cfg.warmup_steps // 20`` steps) are kept. ``callback(step, steps, loss)`` is
    called after every step; ``stop.is_set()`` ends the phase early.

    Returns a summary: ``steps`` done, the final ``loss``, ``val_loss`` and ``seconds``.
    """
    perturbed = [g for g in range(len(groups.members)) if g not in groups.control_group]
    steps = int(cfg.warmup_steps)
    if not perturbed or steps <= 0:
        return {"steps": 0, "loss": None, "val_loss": None, "seconds": 0.0}
    z_ref = groups.control_mean.view(1, -1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.warmup_learning_rate)
    block = max(1, int(cfg.warmup_batch))
    blocks = [perturbed[i:i + block] for i in range(0, len(perturbed), block)]
    val_ids = None if val_groups is None else \
        [g for g in range(len(val_groups.members)) if g not in val_groups.control_group] or None
    check_every = max(1, steps // 20)
    best = (math.inf, None)
    loss_value, t0 = math.nan, time.perf_counter()
    model.train()
    done = 0
    for step in range(steps):
        progress = step / max(steps - 1, 1)
        for group in opt.param_groups:
            group["lr"] = cfg.warmup_learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))
        ids = blocks[step % len(blocks)]
        fit_loss = means_loss(model, groups, ids, z_ref)
        loss = fit_loss + cfg.warmup_l1 * model.l1_penalty()
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            if torch.isfinite(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)):
                opt.step()
        loss_value = float(fit_loss.detach())
        done = step + 1
        if val_ids is not None and (done % check_every == 0 or done == steps):
            with torch.no_grad():
                v = float(means_loss(model, val_groups, val_ids, val_groups.control_mean.view(1, -1)))
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()})
        if callback is not None:
            callback(done, steps, loss_value)
        if stop is not None and stop.is_set():
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    return {"steps": done, "loss": loss_value, "val_loss": None if best[1] is None else best[0],
            "seconds": time.perf_counter() - t0}

