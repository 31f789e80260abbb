"""The ODE solvers: one registry that integration and the memory estimate both read.

Each :class:`Solver` knows its stages (field evaluations per step) and whether it takes fixed
steps. The fixed-step ones (rk4, midpoint, euler) are written out here; the others go to
torchdiffeq's ``odeint`` (or ``odeint_adjoint``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from perturbode_core.errors import check_choice
from perturbode_core.model.kernel import FieldConstants, FieldModule, field_value

#: Matrix-product precisions of a solve (``bfloat16``: AMX / tensor cores, ~1e-2 relative error in f).
PRECISIONS = ("float32", "bfloat16")


def _substeps(t: list[float], dt: float):
    """(h, n) per output interval: n equal steps of size h <= dt that land exactly on each time."""
    for t0, t1 in zip(t[:-1], t[1:]):
        span = t1 - t0
        n = max(1, math.ceil(span / dt - 1e-6))
        yield span / n, n


# Fixed-step solvers written out here instead of calling torchdiffeq for them: torchdiffeq's
# fixed grid uses the 3/8-rule RK4 (3 extra passes over the state per step), interpolates outputs
# that fall between grid points, and cannot checkpoint per step; these are the textbook tableaus
# with each stage input one fused add, outputs landing exactly on the requested times, and an
# in-place path when no gradient is needed (simulation).
def _axpy(z, x, a):
    """z + a x: one fused pass for a Python float ``a`` (eager); a 0-d tensor ``a`` (the compiled
    path, so that the step size is an input of the graph, not a constant guarded on)."""
    return torch.add(z, x, alpha=a) if isinstance(a, float) else torch.addcmul(z, x, a)


def _step_euler(z, h, k):
    return _axpy(z, field_value(z, k), h)


def _step_midpoint(z, h, k):
    k1 = field_value(z, k)
    return _axpy(z, field_value(_axpy(z, k1, h / 2), k), h)


def _step_rk4(z, h, k):
    k1 = field_value(z, k)
    k2 = field_value(_axpy(z, k1, h / 2), k)
    k3 = field_value(_axpy(z, k2, h / 2), k)
    k4 = field_value(_axpy(z, k3, h), k)
    if torch.is_grad_enabled():
        acc = torch.add(k1, k4).add_(torch.add(k2, k3), alpha=2.0)
    else:
        acc = k1.add_(k4).add_(k2.add_(k3), alpha=2.0)
    return _axpy(z, acc, h / 6)


_COMPILED: dict = {}


def _compiled_step(solver: str):
    """The solver step through torch.compile (inductor fuses its elementwise ops, forward and
    backward; the GEMMs stay in the BLAS library).

    Why it recompiled, and what keeps it from doing so (``TORCH_LOGS=recompiles`` names each guard
    that fails): the step size was a Python float, a constant of the graph guarded on its value,
    so every output interval of another length (time courses: the times a step's groups need)
    compiled anew; and the field's optional tensors (clamp mask, activity factors) were present or
    ``None`` depending on the interventions of a batch, each pattern its own graph. Here the step
    size is a 0-d tensor input and the constants are always complete
    (:meth:`~perturbode_core.model.kernel.FieldConstants.complete`), so the graphs depend only on
    the state's shape and on whether gradients are recorded: a run builds about five (a first stage
    whose input needs no gradient, the later stages, the smaller last step of an epoch, the
    validation batch without gradients), all in its first epoch. Shapes stay static
    (``dynamic=False``: the fastest code). Beyond dynamo's ``recompile_limit`` (8 graphs per
    process) new shapes run eagerly. Falls back to the eager step, with a warning, where
    compilation is impossible (no C++ compiler, unsupported platform).
    """
    if solver not in _COMPILED:
        eager = SOLVERS[solver].step
        compiled = torch.compile(eager, dynamic=False)
        state = {"ok": None}

        def step(z, h, k):
            if state["ok"] is False:
                return eager(z, h if isinstance(h, float) else float(h), k)
            try:
                out = compiled(z, h, k)
                state["ok"] = True
                return out
            except Exception as exc:  # inductor/dynamo raise many types when no compiler is usable
                if state["ok"]:
                    raise
                import warnings

                warnings.warn(f"torch.compile is not usable here ({type(exc).__name__}); running eagerly",
                              stacklevel=3)
                state["ok"] = False
                return eager(z, float(h), k)

        _COMPILED[solver] = step
    return _COMPILED[solver]


def _fixed_grid(z0, consts, t, dt, step, *, checkpoint=False, tensor_h=False):
    """Fixed steps through the output times ``t``; ``tensor_h`` passes the step size as a 0-d
    tensor (the compiled step)."""
    out = [z0]
    z = z0
    for h, n in _substeps(t, dt):
        hh = torch.tensor(h, dtype=z0.dtype, device=z0.device) if tensor_h else h
        for _ in range(n):
            if checkpoint:
                from torch.utils.checkpoint import checkpoint as ckpt

                # the constants are closed over: their graph (to A, B, gamma...) is recorded once,
                # outside the checkpoint, and gradients reach them through the recomputation
                z = ckpt(step, z, hh, consts, use_reentrant=False)
            else:
                z = step(z, hh, consts)
        out.append(z)
    return torch.stack(out)


@dataclass(frozen=True)
class Solver:
    """An ODE solver: its name, field evaluations per step, whether it takes fixed steps, and its
    own step function (``None``: torchdiffeq integrates it)."""

    name: str
    stages: int
    fixed_step: bool
    step: Callable | None = None


#: Every solver the model accepts (``ModelConfig.solver``), in the order the options list them.
SOLVERS: dict[str, Solver] = {s.name: s for s in (
    Solver("rk4", 4, True, _step_rk4),
    Solver("euler", 1, True, _step_euler),
    Solver("midpoint", 2, True, _step_midpoint),
    Solver("explicit_adams", 1, True),
    Solver("dopri5", 7, False),
    Solver("bosh3", 4, False),
    Solver("adaptive_heun", 2, False),
    Solver("dopri8", 13, False),
)}


def get_solver(name: str) -> Solver:
    """The :class:`Solver` called ``name`` (a clear error listing the valid names otherwise)."""
    check_choice("solver", name, tuple(SOLVERS))
    return SOLVERS[name]


def steps_per_solve(name: str, horizon: float, step_size: float) -> int:
    """Solver steps to integrate over ``horizon`` (adaptive solvers: a floor of 10, a rough guess)."""
    n = max(1, math.ceil(horizon / step_size))
    return n if get_solver(name).fixed_step else max(10, n)


def solve(z0: torch.Tensor, consts: FieldConstants, t: list[float], *, solver: str, step_size: float,
          rtol: float, atol: float, compile: bool = False, checkpoint: bool = False,
          adjoint_field: torch.nn.Module | None = None, adjoint_params=()) -> torch.Tensor:
    """Integrate from ``z0`` through the times ``t`` (starting at 0); returns (len(t), *z0.shape).

    ``adjoint_field``: integrate with ``odeint_adjoint`` through this module (which must read the
    parameters itself, as the adjoint recomputes f backwards in time).
    """
    s = get_solver(solver)
    if s.step is not None and adjoint_field is None:
        if compile:
            return _fixed_grid(z0.contiguous(), consts.complete(), t, step_size, _compiled_step(s.name),
                               checkpoint=checkpoint, tensor_h=True)
        return _fixed_grid(z0.contiguous(), consts, t, step_size, s.step, checkpoint=checkpoint)
    tt = torch.as_tensor(t, dtype=torch.float32, device=z0.device)
    kwargs = {"method": s.name}
    if s.fixed_step:
        kwargs["options"] = {"step_size": step_size}
    else:
        kwargs.update(rtol=rtol, atol=atol)
    if adjoint_field is not None:
        from torchdiffeq import odeint_adjoint

        return odeint_adjoint(adjoint_field, z0.contiguous(), tt, adjoint_params=tuple(adjoint_params), **kwargs)
    from torchdiffeq import odeint

    return odeint(FieldModule(consts), z0.contiguous(), tt, **kwargs)


def euler_maruyama(z0: torch.Tensor, consts: FieldConstants, t: list[float], *, step_size: float, noise: float,
                   generator=None, noise_rows: tuple | None = None) -> torch.Tensor:
    """Euler-Maruyama integration of dz = f(z) dt + noise dW (the diffusion regularisation).

    torchdiffeq solves ODEs only; a fixed-step loop is all the SDE needs (no torchsde). Noise is
    drawn on the CPU ``generator`` so runs are reproducible on any device; ``noise_rows=(total,
    first)`` draws for all ``total`` conditions and slices this rank's rows (data parallel);
    ``(total, rows)`` takes the listed rows (a paired-control reference reuses the control's row).
    """
    out = [z0]
    z = z0
    C = z0.shape[0]
    for h, n_sub in _substeps(t, float(step_size)):
        for _ in range(n_sub):
            if noise_rows is None:
                eps = torch.randn(z.shape, generator=generator)
            else:
                total, pick = noise_rows
                draw = torch.randn((total, *z.shape[1:]), generator=generator)
                eps = draw[pick:pick + C] if isinstance(pick, int) else draw[pick]
            z = z + h * field_value(z, consts) + (noise * math.sqrt(h)) * eps.to(z.device)
        out.append(z)
    return torch.stack(out)
