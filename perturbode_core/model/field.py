"""The PerturbODE vector field and its interventions.

    dz/dt = f(z) = A (alpha * sigma(B z + b)) + c - gamma * z

in standardised gene units ``z = (x - mean) / scale`` (DESIGN section 2). B (K x p) maps genes to
modules (a module's regulators), A (p x K) modules to genes (its targets); alpha >= 0 weighs each
module; gamma > 0 is each gene's decay. Interventions act on the field per condition:

- soft (``shift``, ``overexpression``): ``f_j += value`` (``value * delta_j`` for overexpression);
- perfect (``knockout``, ``knockdown``, ``clamp``): ``f_j = gamma_j (v_j - z_j)``, the regulatory
  input of j is cut and it relaxes to the level v_j;
- ``activity``: the input that regulator j gives to the modules is scaled by a factor.

All conditions of a batch are solved together: the state has shape ``(C, n, p)`` (conditions x
cells x genes) and the intervention tensors ``(C, 1, p)`` broadcast over cells, so one ``odeint``
call integrates everything.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from perturbode_core._options import OptionsMixin
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.data.interventions import Intervention, check_genes, parse_spec

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": nn.functional.softplus,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
}
ALPHA_MODES = ("learned", "fixed")
ANCHORS = ("control_mean", "control_median", "free")
SOLVERS = ("rk4", "euler", "midpoint", "explicit_adams", "dopri5", "bosh3", "adaptive_heun", "dopri8")
FIXED_STEP_SOLVERS = ("rk4", "euler", "midpoint", "explicit_adams")


def default_n_modules(n_genes: int, n_perturbed: int | None = None) -> int:
    """The default number of modules K.

    Small networks (<= 64 genes): K = p (K ~ 0.5-1x genes worked best). Larger ones: about the
    number of perturbed genes (1.1x, at least 16, at most p and 512). A module's effect is only
    identifiable through perturbations, and more modules than that made the network collapse: on
    the 264-gene atlas (41 perturbed TFs) AUPR was 0.37 at K = 48 but 0.02 at K = 96 and 132; on
    SERGIO DS2 (400 genes, 37 knockouts) 0.24 at K = 40 but 0.01 at K = 64 and 200. Without
    perturbation counts (a model built by hand): p/2, at least 64, at most 512.
    """
    if n_genes <= 64:
        return max(2, n_genes)
    if n_perturbed:
        return int(min(n_genes, 512, max(16, round(1.1 * n_perturbed))))
    return int(min(512, max(64, n_genes // 2)))


def column_mean_std(X, rows=None, *, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and (population) standard deviation of ``X[rows]``, read in row chunks.

    ``X[rows].std(0)`` would copy the selected rows and then make two more full-size
    temporaries; for a 100,000 x 10,000 matrix that is 12 GB on top of the data. Chunks keep the
    extra memory to a few MB and work on memory-mapped (backed) matrices too. Two passes (mean,
    then squared deviations) in float64 for accuracy.
    """
    n_rows = X.shape[0] if rows is None else len(rows)
    p = X.shape[1]
    if n_rows == 0:
        return np.zeros(p, np.float32), np.zeros(p, np.float32)

    def chunks():
        for s in range(0, n_rows, chunk):
            idx = slice(s, min(s + chunk, n_rows)) if rows is None else rows[s:s + chunk]
            yield np.asarray(X[idx], dtype=np.float64)

    total = np.zeros(p)
    for block in chunks():
        total += block.sum(0)
    mean = total / n_rows
    ss = np.zeros(p)
    for block in chunks():
        # not in place: for float64 input without row selection, the block is a view of X
        block = block - mean
        ss += np.einsum("ij,ij->j", block, block)
    sd = np.sqrt(ss / n_rows) if n_rows > 1 else np.zeros(p)
    return mean.astype(np.float32), sd.astype(np.float32)


@dataclass
class ModelConfig(OptionsMixin):
    """Options of the vector field (all JSON-able; stored in checkpoints).

    Attributes
    ----------
    n_modules
        Number of hidden units K (gene modules). ``None``: :func:`default_n_modules`.
    activation
        Module non-linearity: one of ``sigmoid`` (default, the paper's), ``tanh``, ``softplus``,
        ``relu``, ``gelu``.
    alpha_mode
        ``learned`` (alpha >= 0 per module, softplus-parametrised) or ``fixed`` (all ones).
    anchor
        How the basal rate c is set. ``control_mean`` (default) / ``control_median``: c is
        recomputed at every evaluation so that the measured control state is a fixed point of the
        unperturbed field (f(z_control) = 0); the network then only has to explain what
        perturbations change. ``free``: c is learned (initialised so that f(z_control) = 0).
    horizon
        Integration time T for steady-state data (in units of the initial decay time 1/gamma).
        The default 10 spans several decay times so perturbed states settle.
    solver, step_size, rtol, atol, adjoint
        torchdiffeq options. Fixed-step ``rk4`` is the fast default (matched dopri5 in accuracy);
        ``step_size`` should stay below 1/gamma. ``adjoint`` uses ``odeint_adjoint`` (less memory,
        more time).
    shift_delta
        Default strength delta of an overexpression, in standardised units per unit time (the
        paper's 1).
    learn_shift
        Learn delta per overexpressed target (targets never seen in training keep the default).
    shift_shrinkage
        L2 penalty pulling learned log-deltas to the default.
    init_scale
        Standard deviation of the initial weights of A and B (times 1/sqrt(fan-in)).
    learn_decay
        Learn gamma per gene (initialised at 1).
    checkpoint_steps
        Gradient checkpointing of the fixed-step solvers: keep only the state at each solver
        step and recompute the stages in the backward pass. Activation memory drops from
        ~(4 x steps) to ~(steps + 4) cell x gene tensors for one more forward pass (~+30% time);
        what lets 10,000-gene models train with large batches.
    """

    _options_name: ClassVar[str] = "model"  # for error messages (not a field)

    n_modules: int | None = None
    activation: str = "sigmoid"
    alpha_mode: str = "learned"
    anchor: str = "control_mean"
    horizon: float = 10.0
    solver: str = "rk4"
    step_size: float = 0.5
    rtol: float = 1e-4
    atol: float = 1e-5
    adjoint: bool = False
    shift_delta: float = 1.0
    learn_shift: bool = False
    shift_shrinkage: float = 1e-2
    init_scale: float = 0.5
    learn_decay: bool = True
    checkpoint_steps: bool = False

    def validate(self) -> "ModelConfig":
        """Check every option; raise :class:`PerturbODEError` naming the bad one and the valid choices.

        Returns
        -------
        ModelConfig
            Itself, for chaining.
        """
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("alpha_mode", self.alpha_mode, ALPHA_MODES)
        check_choice("anchor", self.anchor, ANCHORS)
        check_choice("solver", self.solver, SOLVERS)
        for name in ("horizon", "step_size", "rtol", "atol", "init_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise PerturbODEError(f"Option {name} must be a positive number, got {value!r}",
                                      where=f"option '{name}'", fix="Give a positive number")
        if self.n_modules is not None and (not isinstance(self.n_modules, int) or self.n_modules < 1):
            raise PerturbODEError(f"n_modules must be a positive integer, got {self.n_modules!r}",
                                  where="option 'n_modules'", fix="Give e.g. 32, or leave it empty for the default")
        if self.shift_delta < 0:
            raise PerturbODEError("shift_delta must be >= 0", where="option 'shift_delta'", fix="Give e.g. 1")
        return self



@dataclass
class InterventionBatch:
    """Interventions of C conditions encoded as (C, 1, p) tensors in standardised units."""

    labels: list[str]
    shift: torch.Tensor          # added rate (already multiplied by delta for overexpression)
    overexpression: torch.Tensor  # fold of delta (kept apart so that a learned delta gets gradients)
    clamp_mask: torch.Tensor     # bool: perfect intervention on this gene
    clamp_level: torch.Tensor    # its target level (standardised units)
    activity: torch.Tensor       # factor on the gene's input to the modules (1 = untouched)
    has_clamp: bool = field(default=False)
    has_activity: bool = field(default=False)
    has_overexpression: bool = field(default=False)

    @property
    def n_conditions(self) -> int:
        """Number of conditions C in the batch."""
        return len(self.labels)

    def to(self, device) -> "InterventionBatch":
        """The same batch with its tensors on ``device`` (itself when already there)."""
        if self.shift.device == torch.device(device):
            return self
        out = copy.copy(self)
        for name in ("shift", "overexpression", "clamp_mask", "clamp_level", "activity"):
            setattr(out, name, getattr(self, name).to(device))
        return out


class PerturbODE(nn.Module):
    """The interpretable neural ODE: vector field, interventions and integration.

    Parameters
    ----------
    gene_names
        The genes (order of the data's columns).
    config
        :class:`ModelConfig`.
    mean, scale
        Per-gene standardisation (data units), ``z = (x - mean) / scale``.
    control_level
        The anchor: the control state in data units (mean or median of control cells).

    Use :meth:`from_data` to set these from a dataset.
    """

    def __init__(self, gene_names, config: ModelConfig | None = None, *, mean=None, scale=None,
                 control_level=None, seed: int = 0):
        super().__init__()
        config = (config or ModelConfig()).validate()
        gene_names = [str(g) for g in gene_names]
        p = len(gene_names)
        if p == 0:
            raise PerturbODEError("A model needs at least one gene", fix="Load data with genes")
        if config.n_modules is None:
            config = ModelConfig.from_dict({**config.to_dict(), "n_modules": default_n_modules(p)})
        self.config = config
        self.gene_names = gene_names
        self.gene_index = {g: i for i, g in enumerate(gene_names)}
        K = config.n_modules

        def vec(v, default):
            return torch.as_tensor(np.asarray(default if v is None else v, dtype=np.float32)).reshape(p).clone()

        self.register_buffer("mean", vec(mean, np.zeros(p)))
        self.register_buffer("scale", vec(scale, np.ones(p)))
        level = vec(control_level, np.zeros(p) if control_level is None else control_level)
        self.register_buffer("anchor", (level - self.mean) / self.scale)

        gen = torch.Generator().manual_seed(int(seed))
        self.A = nn.Parameter(torch.randn(p, K, generator=gen) * config.init_scale / math.sqrt(K))
        self.B = nn.Parameter(torch.randn(K, p, generator=gen) * config.init_scale / math.sqrt(p))
        self.b = nn.Parameter(torch.zeros(K))
        self.raw_alpha = nn.Parameter(torch.full((K,), math.log(math.e - 1.0)),  # softplus -> 1
                                      requires_grad=config.alpha_mode == "learned")
        self.log_gamma = nn.Parameter(torch.zeros(p), requires_grad=config.learn_decay)
        self.c = nn.Parameter(torch.zeros(p), requires_grad=config.anchor == "free")
        self.log_delta = nn.Parameter(torch.zeros(p), requires_grad=config.learn_shift)
        if config.anchor == "free":
            with torch.no_grad():
                self.c.copy_(self._anchored_c())
        self._sigma = ACTIVATIONS[config.activation]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data(cls, data, config: ModelConfig | None = None, *, conditions=None, seed: int = 0) -> "PerturbODE":
        """A model whose standardisation and anchor come from ``data`` (a PerturbationData).

        ``conditions`` restricts the cells used for the scale to those conditions (e.g. the
        training split), so held-out cells never leak into the model.
        """
        rows = None if conditions is None else np.flatnonzero(np.isin(data.labels, list(conditions)))
        ctrl = data.control_cells()
        config = config or ModelConfig()
        if config.n_modules is None:
            used = data.interventions if conditions is None else \
                {c: v for c, v in data.interventions.items() if c in set(conditions)}
            perturbed = {iv.gene for ivs in used.values() for iv in ivs}
            config = ModelConfig.from_dict({**config.to_dict(),
                                            "n_modules": default_n_modules(data.n_genes, len(perturbed))})
        level = np.median(ctrl, axis=0) if config.anchor == "control_median" else ctrl.mean(0)
        mean, sd = column_mean_std(data.X, rows)
        # floor the scale so that genes with (almost) no variance do not explode in z units
        floor = max(1e-2 * float(sd.max()) if sd.size else 0.0, 1e-3)
        scale = np.maximum(sd, floor)
        return cls(data.gene_names, config, mean=mean, scale=scale, control_level=level, seed=seed)

    # ------------------------------------------------------------------ parameters
    @property
    def n_genes(self) -> int:
        """Number of genes p."""
        return len(self.gene_names)

    @property
    def n_modules(self) -> int:
        """Number of modules (hidden units) K."""
        return int(self.config.n_modules)

    @property
    def alpha(self) -> torch.Tensor:
        """Module weights alpha >= 0 (K,): softplus of the raw parameter, or ones when ``alpha_mode='fixed'``."""
        if self.config.alpha_mode == "fixed":
            return torch.ones_like(self.raw_alpha)
        return nn.functional.softplus(self.raw_alpha)

    @property
    def gamma(self) -> torch.Tensor:
        """Per-gene decay rates gamma > 0 (p,), ``exp(log_gamma)``."""
        return torch.exp(self.log_gamma)

    @property
    def delta(self) -> torch.Tensor:
        """Overexpression strength per gene (the default for genes never overexpressed in training)."""
        return self.config.shift_delta * torch.exp(self.log_delta)

    def _anchored_c(self) -> torch.Tensor:
        z = self.anchor
        return self.gamma * z - self.A @ (self.alpha * self._sigma(self.B @ z + self.b))

    def basal(self) -> torch.Tensor:
        """The basal rate c (anchored, or learned when ``anchor='free'``)."""
        return self.c if self.config.anchor == "free" else self._anchored_c()

    # ------------------------------------------------------------------ units
    def standardize(self, x) -> torch.Tensor:
        """Data units to model units: ``z = (x - mean) / scale`` (float32 tensor on the model's device)."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.mean.device)
        return (x - self.mean) / self.scale

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        """Model units back to data units: ``x = z * scale + mean``."""
        return z * self.scale + self.mean

    # ------------------------------------------------------------------ interventions
    def encode(self, perturbations, *, labels=None) -> InterventionBatch:
        """Encode C perturbations as tensors.

        Parameters
        ----------
        perturbations
            A list whose items are a spec string (``"GATA1:knockout+SPI1"``), a list of
            :class:`Intervention`, or ``None`` / ``[]`` / ``"control"`` for no intervention.
        """
        p, C = self.n_genes, len(perturbations)
        shift = torch.zeros(C, 1, p)
        oe = torch.zeros(C, 1, p)
        mask = torch.zeros(C, 1, p, dtype=torch.bool)
        level = torch.zeros(C, 1, p)
        act = torch.ones(C, 1, p)
        ctrl_level_z = self.anchor.detach()
        out_labels = []
        for ci, pert in enumerate(perturbations):
            if pert is None or (isinstance(pert, str) and pert.strip().lower() in ("", "control")):
                ivs: list[Intervention] = []
            elif isinstance(pert, str):
                ivs = parse_spec(pert)
            else:
                ivs = list(pert)
            check_genes(ivs, self.gene_names)
            out_labels.append("+".join(iv.to_spec() for iv in ivs) or "control")
            for iv in ivs:
                j = self.gene_index[iv.gene]
                v = iv.resolved_value
                if iv.kind == "knockout":
                    mask[ci, 0, j] = True
                    level[ci, 0, j] = (0.0 - self.mean[j]) / self.scale[j]
                elif iv.kind == "knockdown":
                    mask[ci, 0, j] = True
                    ctrl_data = ctrl_level_z[j] * self.scale[j] + self.mean[j]
                    level[ci, 0, j] = ((1.0 - v) * ctrl_data - self.mean[j]) / self.scale[j]
                elif iv.kind == "clamp":
                    mask[ci, 0, j] = True
                    level[ci, 0, j] = (v - self.mean[j]) / self.scale[j]
                elif iv.kind == "overexpression":
                    oe[ci, 0, j] += v
                elif iv.kind == "shift":
                    shift[ci, 0, j] += v
                elif iv.kind == "activity":
                    act[ci, 0, j] = v
        return InterventionBatch(
            labels=labels or out_labels, shift=shift, overexpression=oe, clamp_mask=mask, clamp_level=level,
            activity=act, has_clamp=bool(mask.any()), has_activity=bool((act != 1).any()),
            has_overexpression=bool((oe != 0).any()))

    # ------------------------------------------------------------------ dynamics
    def module_input(self, z: torch.Tensor, batch: InterventionBatch | None = None) -> torch.Tensor:
        """B z + b, with activity interventions applied to the regulators' inputs."""
        if batch is not None and batch.has_activity:
            # scaling regulator j's data-unit level by s: z' = s z + (s - 1) mean / scale
            z = z * batch.activity + (batch.activity - 1.0) * (self.mean / self.scale)
        return z @ self.B.T + self.b

    def field_constants(self, batch: InterventionBatch | None = None) -> "_FieldConstants":
        """Everything in f that does not depend on the state, computed once per solve.

        The straightforward field recomputed alpha, gamma, the anchored basal rate c (a p x K
        matrix-vector product) and ~6 broadcast passes over the (C, n, p) state at every one of
        the solver's evaluations; the profiler showed those elementwise passes, not the two
        matrix products, taking most of a training step. Here alpha is folded into A, and the
        basal rate, shifts, overexpression and the clamp levels into one (C, 1, p) bias, so an
        evaluation is two GEMMs, one sigmoid and two fused multiply-adds (see :meth:`_field`).
        Perfect interventions use ``f_j = gamma_j (v_j - z_j)``: the ``- gamma z`` term is the
        same in both branches, so a clamp only zeroes the regulatory part (``keep``) and adds
        ``gamma v`` to the bias, instead of a ``torch.where`` over a second full field.
        """
        dev = self.A.device
        gamma = self.gamma
        bias = self.basal()
        keep = act = act_off = None
        if batch is not None:
            batch = batch.to(dev)
            C = batch.n_conditions
            bias = bias.expand(C, 1, self.n_genes) + batch.shift
            if batch.has_overexpression:
                bias = bias + batch.overexpression * self.delta
            if batch.has_clamp:
                keep = (~batch.clamp_mask).to(bias.dtype)
                bias = torch.where(batch.clamp_mask, gamma * batch.clamp_level, bias)
            if batch.has_activity:
                act = batch.activity
                act_off = (batch.activity - 1.0) * (self.mean / self.scale)
        return _FieldConstants(BT=self.B.T, b=self.b, AT=(self.A * self.alpha).T, gamma=gamma, bias=bias,
                               keep=keep, act=act, act_off=act_off, sigma=self._sigma)

    def vector_field(self, z: torch.Tensor, batch: InterventionBatch | None = None) -> torch.Tensor:
        """f(z) for a state of shape (C, n, p) (or (n, p) with no interventions)."""
        return _field(z, self.field_constants(batch))

    def integrate(self, z0: torch.Tensor, batch: InterventionBatch, times, *, noise: float = 0.0,
                  generator: torch.Generator | None = None, noise_rows: tuple[int, int] | None = None,
                  precision: str = "float32", compile: bool = False) -> torch.Tensor:
        """Integrate standardised states.

        Parameters
        ----------
        z0
            Start states, (n, p) shared by all conditions or (C, n, p).
        batch
            Encoded interventions of the C conditions.
        times
            Increasing times starting at 0 (model units).
        noise
            Euler-Maruyama diffusion sigma_d (training-time regularisation); 0 for an ODE solve.
        generator
            Source of the noise draws (always on the CPU, so runs are reproducible on any device).
        noise_rows
            ``(total, first)``: this batch is rows ``first:first + C`` of a batch of ``total``
            conditions; noise is drawn for all ``total`` and sliced, so a data-parallel rank
            draws exactly what a single process would (see :mod:`perturbode_core.train.distributed`).
        precision
            ``float32`` (default) or ``bfloat16``: the two matrix products in bfloat16 with float32
            accumulation and a float32 state (AMX / tensor cores; ~1e-2 relative error in f).
        compile
            Run the fixed-step solver's step through ``torch.compile`` (fuses the elementwise
            work of a step and its backward; ~2x faster training steps on CPU for 1,000+ genes,
            after a one-off compilation of tens of seconds per batch shape).

        Returns
        -------
        Tensor (len(times), C, n, p).
        """
        check_choice("precision", precision, PRECISIONS)
        C = batch.n_conditions
        dev = self.A.device
        z0 = z0.to(dev)
        if z0.dim() == 2:
            z0 = z0.unsqueeze(0).expand(C, *z0.shape)
        t = [float(v) for v in torch.as_tensor(times, dtype=torch.float64).tolist()]
        consts = self.field_constants(batch)
        if precision == "bfloat16":
            consts = consts.bf16()
        if noise > 0:
            return self._euler_maruyama(z0, consts, t, noise, generator, noise_rows)
        cfg = self.config
        if cfg.solver in _FAST_STEPS:
            step = _compiled_step(cfg.solver) if compile else _FAST_STEPS[cfg.solver]
            return _fixed_grid(z0.contiguous(), consts, t, cfg.step_size, step,
                               checkpoint=cfg.checkpoint_steps and torch.is_grad_enabled())
        func = _Field(consts)
        tt = torch.as_tensor(t, dtype=torch.float32, device=dev)
        kwargs = {"method": cfg.solver}
        if cfg.solver in FIXED_STEP_SOLVERS:
            kwargs["options"] = {"step_size": cfg.step_size}
        else:
            kwargs.update(rtol=cfg.rtol, atol=cfg.atol)
        if cfg.adjoint:
            from torchdiffeq import odeint_adjoint

            # the adjoint recomputes f backwards in time, so it needs the field to read the
            # parameters itself rather than constants captured before the solve
            return odeint_adjoint(_LiveField(self, batch), z0.contiguous(), tt,
                                  adjoint_params=tuple(p for p in self.parameters() if p.requires_grad), **kwargs)
        from torchdiffeq import odeint

        return odeint(func, z0.contiguous(), tt, **kwargs)

    def _euler_maruyama(self, z0, consts, t, noise, generator, noise_rows=None):
        # torchdiffeq solves ODEs only; the diffusion regularisation needs an SDE step, and a
        # fixed-step Euler-Maruyama loop is all it takes (no extra dependency such as torchsde).
        dt = float(self.config.step_size)
        out = [z0]
        z = z0
        C = z0.shape[0]
        for h, n_sub in _substeps(t, dt):
            for _ in range(n_sub):
                if noise_rows is None:
                    eps = torch.randn(z.shape, generator=generator)
                else:
                    total, first = noise_rows
                    eps = torch.randn((total, *z.shape[1:]), generator=generator)[first:first + C]
                z = z + h * _field(z, consts) + (noise * math.sqrt(h)) * eps.to(z.device)
            out.append(z)
        return torch.stack(out)

    # ------------------------------------------------------------------ convenience
    @torch.no_grad()
    def simulate(self, x0, perturbations, times=None, *, precision: str = "float32") -> np.ndarray:
        """Simulate cells (data units) under perturbations.

        Parameters
        ----------
        x0
            Start states, cells x genes, data units.
        perturbations
            List of perturbations (see :meth:`encode`).
        times
            Output times (model units); default ``[0, horizon]``.
        precision
            ``float32`` (default) or ``bfloat16`` matrix products (much faster on CPUs with AMX
            and on GPUs; for interactive previews).

        Returns
        -------
        Array (len(times), C, n, p) in data units.
        """
        batch = self.encode(list(perturbations))
        t = [0.0, self.config.horizon] if times is None else list(times)
        z = self.integrate(self.standardize(x0), batch, t, precision=precision)
        return self.unstandardize(z).cpu().numpy()

    def l1_penalty(self) -> torch.Tensor:
        """Mean absolute weight of A and B (scale-free: independent of p and K)."""
        return self.A.abs().mean() + self.B.abs().mean()

    def module_weights(self) -> dict:
        """A, B, alpha, b, gene names, mean and scale as numpy arrays (for modules and plots)."""
        with torch.no_grad():
            return {
                "A": self.A.detach().cpu().numpy().copy(),
                "B": self.B.detach().cpu().numpy().copy(),
                "alpha": self.alpha.detach().cpu().numpy().copy(),
                "b": self.b.detach().cpu().numpy().copy(),
                "gamma": self.gamma.detach().cpu().numpy().copy(),
                "gene_names": list(self.gene_names),
                "mean": self.mean.cpu().numpy().copy(),
                "scale": self.scale.cpu().numpy().copy(),
                "activation": self.config.activation,
            }

    def activation_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """sigma'(u) of the module non-linearity (for the average-Jacobian alpha)."""
        u = u.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self._sigma(u).sum(), u)
        return g


class _LiveField(nn.Module):
    """Field that reads the parameters at every call (for ``odeint_adjoint``)."""

    def __init__(self, model: PerturbODE, batch: InterventionBatch):
        super().__init__()
        self.model = model
        self.batch = batch

    def forward(self, t, z):
        return self.model.vector_field(z, self.batch)


@dataclass
class _FieldConstants:
    """State-independent parts of f for one solve (see :meth:`PerturbODE.field_constants`)."""

    BT: torch.Tensor               # (p, K)   B transposed
    b: torch.Tensor                # (K,)
    AT: torch.Tensor               # (K, p)   (A diag(alpha)) transposed
    gamma: torch.Tensor            # (p,)
    bias: torch.Tensor             # (p,) or (C, 1, p): basal rate + shifts (+ gamma * level where clamped)
    keep: torch.Tensor | None      # (C, 1, p) 0 where clamped, else 1 (None: no clamp)
    act: torch.Tensor | None       # (C, 1, p) activity factors (None: none)
    act_off: torch.Tensor | None
    sigma: object
    lowp: bool = False

    def bf16(self) -> "_FieldConstants":
        # contiguous: oneDNN's AMX kernels are only picked for plain row-major bf16 operands
        return _FieldConstants(self.BT.to(torch.bfloat16).contiguous(), self.b, self.AT.to(torch.bfloat16).contiguous(),
                               self.gamma, self.bias,
                               self.keep, self.act, self.act_off, self.sigma, True)


def _field(z: torch.Tensor, k: _FieldConstants) -> torch.Tensor:
    """f(z) from precomputed constants: 2 GEMMs over all conditions x cells at once, a sigmoid, and
    two fused multiply-adds over the (C, n, p) state."""
    shape = z.shape
    zin = z if k.act is None else torch.addcmul(k.act_off, z, k.act)
    z2 = zin.reshape(-1, shape[-1])
    if k.lowp:
        u = (z2.to(torch.bfloat16) @ k.BT).float() + k.b
        r = (k.sigma(u).to(torch.bfloat16) @ k.AT).float()
    else:
        u = torch.addmm(k.b, z2, k.BT)
        r = torch.mm(k.sigma(u), k.AT)
    r = r.view(shape)
    f = r + k.bias if k.keep is None else torch.addcmul(k.bias, r, k.keep)
    # in place on a fresh tensor no backward needs: saves an allocation (a page-faulting mmap
    # for large states) and a pass over memory
    return f.addcmul_(k.gamma, z, value=-1.0)


class _Field(nn.Module):
    """Binds precomputed field constants for torchdiffeq (which calls func(t, y))."""

    def __init__(self, consts: _FieldConstants):
        super().__init__()
        self.consts = consts

    def forward(self, t, z):
        return _field(z, self.consts)


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
def _step_euler(z, h, k):
    return torch.add(z, _field(z, k), alpha=h)


def _step_midpoint(z, h, k):
    k1 = _field(z, k)
    return torch.add(z, _field(torch.add(z, k1, alpha=h / 2), k), alpha=h)


def _step_rk4(z, h, k):
    k1 = _field(z, k)
    k2 = _field(torch.add(z, k1, alpha=h / 2), k)
    k3 = _field(torch.add(z, k2, alpha=h / 2), k)
    k4 = _field(torch.add(z, k3, alpha=h), k)
    if torch.is_grad_enabled():
        acc = torch.add(k1, k4).add_(torch.add(k2, k3), alpha=2.0)
    else:
        acc = k1.add_(k4).add_(k2.add_(k3), alpha=2.0)
    return torch.add(z, acc, alpha=h / 6)


_FAST_STEPS = {"euler": _step_euler, "midpoint": _step_midpoint, "rk4": _step_rk4}
PRECISIONS = ("float32", "bfloat16")
_COMPILED: dict = {}


def _compiled_step(solver: str):
    """The solver step through torch.compile (inductor fuses its elementwise ops, forward and
    backward, into a few C++ loops; the GEMMs stay in oneDNN/MKL). Falls back to the eager step,
    with a warning, where compilation is impossible (no C++ compiler, unsupported platform)."""
    if solver not in _COMPILED:
        compiled = torch.compile(_FAST_STEPS[solver], dynamic=False)
        eager = _FAST_STEPS[solver]
        state = {"ok": None}

        def step(z, h, k):
            if state["ok"] is False:
                return eager(z, h, k)
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
                return eager(z, h, k)

        _COMPILED[solver] = step
    return _COMPILED[solver]


def _fixed_grid(z0, consts, t, dt, step, *, checkpoint=False):
    out = [z0]
    z = z0
    for h, n in _substeps(t, dt):
        for _ in range(n):
            if checkpoint:
                from torch.utils.checkpoint import checkpoint as ckpt

                # the constants are closed over: their graph (to A, B, gamma...) is recorded once,
                # outside the checkpoint, and gradients reach them through the recomputation
                z = ckpt(step, z, h, consts, use_reentrant=False)
            else:
                z = step(z, h, consts)
        out.append(z)
    return torch.stack(out)

