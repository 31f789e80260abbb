"""Memory of a training run from its sizes: what the Train page's estimate and the GPU step sizing
(:mod:`~perturbode_core.train.autobatch`) both read.

The activation term was measured, not guessed: summing the storage of every tensor autograd saves
during an rk4 solve (``torch.autograd.graph.saved_tensors_hooks``) gave (p + K) float32 values per
cell and field evaluation (0.73-0.89 of that at 200-400 genes, K = 64-128), and with
``checkpoint_steps`` one state (p values) per cell and solver step plus one step's stages.
``tests/test_autobatch.py`` checks the formula against that measurement.
"""

from __future__ import annotations

from perturbode_core.model.solvers import get_solver, steps_per_solve

F32 = 4  # bytes


def activation_bytes_per_cell(n_genes: int, n_modules: int, *, horizon: float, step_size: float,
                              solver: str = "rk4", checkpoint_steps: bool = False, adjoint: bool = False) -> int:
    """Bytes autograd keeps per simulated cell for the backward pass of one solve.

    Without checkpointing every field evaluation saves its state-sized inputs and module
    activations, ``(p + K)`` floats; with ``checkpoint_steps`` only the state at each solver step
    is kept and one step's stages are recomputed at a time; the adjoint keeps about two states.
    """
    s = get_solver(solver)
    steps = steps_per_solve(solver, horizon, step_size)
    per_eval = (n_genes + n_modules) * F32
    if adjoint:
        return 2 * per_eval
    if checkpoint_steps and s.fixed_step and s.step is not None:
        return steps * n_genes * F32 + s.stages * per_eval
    return steps * s.stages * per_eval


def estimate_memory(n_cells: int, n_genes: int, n_modules: int, *, cells_per_condition: int,
                    batch_conditions: int, horizon: float, step_size: float, solver: str = "rk4",
                    loss: str = "w2", adjoint: bool = False, checkpoint_steps: bool = False) -> dict:
    """Peak memory of training, from the sizes (bytes, a rough upper bound).

    Terms: the expression matrix (float32, host memory), weights with their gradients and Adam's
    two moments, the activations kept for back-propagation through the solver
    (:func:`activation_bytes_per_cell` for every simulated cell of a step) and the cost matrices
    of the OT loss. ``total`` adds 20 % for temporaries.
    """
    data = n_cells * n_genes * F32
    params = (2 * n_genes * n_modules + 3 * n_modules + 4 * n_genes) * F32 * 4  # weights, grads, 2 moments
    groups = batch_conditions + 1
    cells = groups * cells_per_condition
    activations = cells * activation_bytes_per_cell(n_genes, n_modules, horizon=horizon, step_size=step_size,
                                                    solver=solver, checkpoint_steps=checkpoint_steps,
                                                    adjoint=adjoint)
    ot = groups * cells_per_condition ** 2 * F32 * (3 if loss == "sinkhorn" else 2)
    total = data + params + activations + ot
    return {"data": data, "parameters": params, "activations": activations, "ot": ot, "total": int(total * 1.2)}
