"""The evaluation kernel of the vector field: f(z) from constants precomputed once per solve.

Shared by the solvers (:mod:`~perturbode_core.model.solvers`) and the model
(:mod:`~perturbode_core.model.field`), which builds the constants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn


@dataclass
class FieldConstants:
    """State-independent parts of f for one solve (built by :meth:`PerturbODE.field_constants`)."""

    BT: torch.Tensor               # (p, K)   B transposed
    b: torch.Tensor                # (K,), or (C, 1, K) with the inputs of latent (unmeasured) regulators
    AT: torch.Tensor               # (K, p)   (A diag(alpha)) transposed
    gamma: torch.Tensor            # (p,)
    bias: torch.Tensor             # (p,) or (C, 1, p): basal rate + shifts (+ gamma * level where clamped)
    keep: torch.Tensor | None      # (C, 1, p) 0 where clamped, else 1 (None: no clamp)
    act: torch.Tensor | None       # (C, 1, p) activity factors (None: none)
    act_off: torch.Tensor | None
    sigma: object
    lowp: bool = False

    def complete(self) -> "FieldConstants":
        """The same field with every optional tensor present (no clamp: ``keep`` all ones; no
        activity: factors 1, offsets 0). Slower eagerly (two more passes), free when compiled, and
        one graph whatever interventions a batch holds (see ``solvers._compiled_step``)."""
        # two separate tensors of ones, never one object twice: dynamo guards on aliasing among
        # inputs, so a shared tensor would compile a second graph for batches without activity
        return replace(self, keep=torch.ones_like(self.bias) if self.keep is None else self.keep,
                       act=torch.ones_like(self.bias) if self.act is None else self.act,
                       act_off=torch.zeros_like(self.bias) if self.act_off is None else self.act_off)

    def bf16(self) -> "FieldConstants":
        # contiguous: oneDNN's AMX kernels are only picked for plain row-major bf16 operands
        return FieldConstants(self.BT.to(torch.bfloat16).contiguous(), self.b, self.AT.to(torch.bfloat16).contiguous(),
                               self.gamma, self.bias,
                               self.keep, self.act, self.act_off, self.sigma, True)


def field_value(z: torch.Tensor, k: FieldConstants) -> torch.Tensor:
    """f(z) from precomputed constants: 2 GEMMs over all conditions x cells at once, a sigmoid, and
    two fused multiply-adds over the (C, n, p) state."""
    shape = z.shape
    zin = z if k.act is None else torch.addcmul(k.act_off, z, k.act)
    z2 = zin.reshape(-1, shape[-1])
    if k.b.dim() > 1:  # per-condition module inputs (latent regulators): add them per condition block
        u = ((z2.to(torch.bfloat16) @ k.BT).float() if k.lowp else z2 @ k.BT).view(*shape[:-1], -1) + k.b
        u = u.reshape(z2.shape[0], -1)
    elif k.lowp:
        u = (z2.to(torch.bfloat16) @ k.BT).float() + k.b
    else:
        u = torch.addmm(k.b, z2, k.BT)
    if k.lowp:
        r = (k.sigma(u).to(torch.bfloat16) @ k.AT).float()
    else:
        r = torch.mm(k.sigma(u), k.AT)
    r = r.view(shape)
    f = r + k.bias if k.keep is None else torch.addcmul(k.bias, r, k.keep)
    # in place on a fresh tensor no backward needs: saves an allocation (a page-faulting mmap
    # for large states) and a pass over memory
    return f.addcmul_(k.gamma, z, value=-1.0)


class FieldModule(nn.Module):
    """Binds precomputed field constants for torchdiffeq (which calls func(t, y))."""

    def __init__(self, consts: FieldConstants):
        super().__init__()
        self.consts = consts

    def forward(self, t, z):
        return field_value(z, self.consts)
