"""The model: the vector field, its options, its activations and the ODE solvers.

Modules
-------
model_config  :class:`ModelConfig` (options, validated once) and :func:`resolve_n_modules`
activations   the module non-linearities (torch and numpy forms)
kernel        f(z) from constants precomputed once per solve
solvers       the solver registry, fixed-step solvers, torchdiffeq dispatch, Euler-Maruyama
field         :class:`PerturbODE` (nn.Module): parameters, units, interventions, integration
"""

from perturbode_core.model.field import InterventionBatch, PerturbODE
from perturbode_core.model.model_config import ModelConfig, resolve_n_modules
from perturbode_core.model.solvers import SOLVERS, get_solver

__all__ = ["InterventionBatch", "ModelConfig", "PerturbODE", "SOLVERS", "get_solver", "resolve_n_modules"]
