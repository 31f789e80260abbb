"""The module non-linearities sigma: one registry with the torch form (training, simulation) and
the numpy form (tables of module activity), so both always agree on what a name means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from perturbode_core.errors import check_choice


def _np_sigmoid(u):
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # the tanh form: no overflow for large |u|


def _np_gelu(u):
    from scipy.special import erf

    return 0.5 * u * (1.0 + erf(u / np.sqrt(2.0)))


@dataclass(frozen=True)
class Activation:
    """A named non-linearity in its torch and numpy forms."""

    name: str
    torch_fn: Callable[[torch.Tensor], torch.Tensor]
    numpy_fn: Callable[[np.ndarray], np.ndarray]

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """sigma'(u), by automatic differentiation (for the average-Jacobian network)."""
        u = u.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.torch_fn(u).sum(), u)
        return g


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("sigmoid", torch.sigmoid, _np_sigmoid),
    Activation("tanh", torch.tanh, np.tanh),
    Activation("softplus", nn.functional.softplus, lambda u: np.logaddexp(0.0, u)),
    Activation("relu", torch.relu, lambda u: np.maximum(u, 0.0)),
    Activation("gelu", nn.functional.gelu, _np_gelu),
)}


def get_activation(name: str) -> Activation:
    """The :class:`Activation` called ``name`` (a clear error listing the valid names otherwise)."""
    check_choice("activation", name, tuple(ACTIVATIONS))
    return ACTIVATIONS[name]
