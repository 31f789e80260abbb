"""Data-parallel training with ``torch.distributed`` (DistributedDataParallel, launched by torchrun).

How a step is split: every rank makes the same random draws (minibatch order, start cells,
observed cells, noise) from the same seeded generator, so the global batch is exactly the one a
single process would use. The step's conditions are then cut into contiguous blocks, one per
rank; a rank integrates only its block (the expensive part: the ODE solve and its backward) and
computes the OT loss of its groups. Its loss is ``sum(local group losses) / (all groups) x
world size``; DDP all-reduces (averages) the gradients, so every rank applies the update of the
single-process mean over the global batch, up to the order of floating-point sums. Rank 0 writes
checkpoints. Backend: gloo on CPU, NCCL on GPUs.

Launch (one node, 2 processes)::

    torchrun --nproc_per_node=2 -m perturbode_core train --data D.h5ad --out RUN

See docs/scaling.md for several nodes.
"""

from __future__ import annotations

import os

import torch
from torch import nn


def is_active() -> bool:
    """True inside an initialised process group of more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard_info() -> tuple[int, int] | None:
    """(rank, world size) when training data-parallel, else None."""
    if not is_active():
        return None
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """Rank 0 (or not distributed): the process that writes files and prints."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def launched_by_torchrun() -> bool:
    """True when this process is one rank of a multi-process torchrun launch (WORLD_SIZE > 1, RANK set)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str = "cpu") -> str:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR... in the environment).

    Returns the device this rank should use: ``cuda:LOCAL_RANK`` when ``device`` is cuda, so each
    process of a node drives its own GPU.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def shutdown() -> None:
    """Leave the process group, if one was joined (a no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _LossModule(nn.Module):
    """DDP needs a module whose forward runs the computation it should synchronise; the model's
    own entry points are ``integrate``/``vector_field``, so the step's loss closure runs here."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, closure):
        return closure()


def wrap(model: nn.Module):
    """The model inside DistributedDataParallel (broadcasts rank 0's weights once)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    import warnings

    dev = next(model.parameters()).device
    # find_unused_parameters only where a parameter can be idle on a rank (see _may_leave_parameters_unused);
    # every other parameter is in every step's graph. Buffers
    # (standardisation) are identical on every rank: no broadcast per step.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers' rename in torch 2.13
        return DDP(_LossModule(model), device_ids=[dev.index] if dev.type == "cuda" else None,
                   broadcast_buffers=False, find_unused_parameters=_may_leave_parameters_unused(model))


def _may_leave_parameters_unused(model) -> bool:
    """Whether a rank's block of conditions can leave a parameter out of its graph: learned
    overexpression strengths (a block without overexpression) and latent regulators' inputs (a
    block without their perturbations)."""
    cfg = model.config
    return bool(cfg.learn_shift or cfg.learn_shift_per_target or model.n_latent > 0)


def sharded_loss(step_module, closure, n_groups: int, world: int, extra=None):
    """This rank's share of the mean OT loss (plus ``extra()``, a term every rank adds whole, such
    as the penalty), and the global value (a float, for logging and the all-ranks-agree
    finiteness check)."""
    import torch.distributed as dist

    def run():
        per_group, n_local = closure()
        p = step_module.module.model.A
        share = p.sum() * 0.0 if per_group is None else per_group.sum() * (world / n_groups)
        # (per_group None: more ranks than conditions; join the all-reduce with a zero)
        return share if extra is None else share + extra()

    local = step_module(run)
    total = local.detach().reshape(1).clone()
    dist.all_reduce(total)
    return local, float(total) / world


def any_rank(flag: bool, device="cpu") -> bool:
    """True on every rank when ``flag`` is true on at least one (an all-reduce with MAX).

    Parameters
    ----------
    flag
        This rank's value.
    device
        Device of the reduction tensor (the process group's backend device).
    """
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def min_over_ranks(value: int, device="cpu") -> int:
    """The smallest ``value`` over all ranks (an all-reduce with MIN), e.g. the least free GPU memory,
    so that every rank takes the same decision."""
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())
