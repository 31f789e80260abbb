"""The PerturbODE vector field and its interventions.

    dz/dt = f(z) = A (alpha * sigma(B z + b)) + c - gamma * z

in standardised gene units ``z = (x - mean) / scale`` (DESIGN section 2). B (K x p) maps genes to
modules (a module's regulators), A (p x K) modules to genes (its targets); alpha >= 0 weighs each
module; gamma > 0 is each gene's decay. Interventions act on the field per condition:

- soft (``shift``, ``overexpression``): ``f_j += value`` (``value * delta_j * gamma_j`` for
  overexpression: a rise of the steady state by ``value * delta_j``; ``value * delta_j`` with
  ``shift_units="data"``);
- perfect (``knockout``, ``knockdown``, ``clamp``): ``f_j = gamma_j (v_j - z_j)``, the regulatory
  input of j is cut and it relaxes to the level v_j (a knockout: ``knockout_level`` times its
  control level, 0 unless the screen's knockouts left part of their transcript, with its input to
  the modules that of level zero: the protein is gone; :mod:`perturbode_core.data.knockout_level`;
  a knock-down: its control level less its dose, or, without one, the ``knockdown_level`` line
  that the screen's training knock-downs show);
- ``activity``: the input that regulator j gives to the modules is scaled by a factor.

Targets outside the measured genes (real screens model a few thousand variable genes; a guide's
target is often not among them) enter as *latent regulators*: each has a learned input into the
modules, ``W_latent[:, g]`` (K), on top of ``B z``. Its level relative to control, ``l_g`` (1 in
control cells), is what an intervention changes: a knockout sets ``l_g = 0``, a knock-down ``1 - f``,
an overexpression ``1 + fold * shift_delta``, an activity change ``factor``; the modules then receive
``B z + b + W_latent (l - 1)``, so the control state stays a fixed point and an unmeasured target's
network edges are ``A diag(alpha) W_latent``. We chose an instantaneous input over a latent state
with its own decay: the latent level is never measured, so its time constant could not be learned
from steady-state screens, and the module input is what the data can identify. ``W_latent`` starts
at zero: a latent regulator whose perturbation the data never showed predicts no change.

Optionally (``ModelConfig.perturbation_offset``) every perturbed condition also receives a learned
offset rate ``s_type`` (p) per intervention type: the response that all perturbed cells of a screen
share whatever their target (delivery, selection, stress, batch: the "systematic variation" of
perturbation screens). Without it the network must explain that shared shift with edges.

All conditions of a batch are solved together: the state has shape ``(C, n, p)`` (conditions x
cells x genes) and the intervention tensors ``(C, 1, p)`` broadcast over cells, so one ``odeint``
call integrates everything.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from perturbode_core.data.gene_stats import column_mean_std
from perturbode_core.data.interventions import INTERVENTION_TYPES, Intervention, check_genes, parse_spec
from perturbode_core.data.knockout_level import DEFAULT_KNOCKDOWN_RULE, knockdown_rule, knocked_down_level
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.model import solvers
from perturbode_core.model.activations import get_activation
from perturbode_core.model.kernel import FieldConstants, field_value
from perturbode_core.model.model_config import ModelConfig

#: The per-target share left of a target that no training condition measured.
NOT_MEASURED = -1.0

@dataclass
class InterventionBatch:
    """Interventions of C conditions encoded as (C, 1, p) tensors in standardised units."""

    labels: list[str]
    shift: torch.Tensor          # added rate (already multiplied by delta for overexpression)
    overexpression: torch.Tensor  # fold of delta (kept apart so that a learned delta gets gradients)
    clamp_mask: torch.Tensor     # bool: perfect intervention on this gene
    clamp_level: torch.Tensor    # its target level (standardised units)
    activity: torch.Tensor       # factor on the gene's input to the modules (1 = untouched)
    latent: torch.Tensor         # (C, 1, m): level - 1 of each latent (unmeasured) regulator (0 = untouched)
    offset_weight: torch.Tensor  # (C, 1, T): share of each intervention type's offset (0 for the control)
    has_clamp: bool = field(default=False)
    has_activity: bool = field(default=False)
    has_overexpression: bool = field(default=False)
    has_latent: bool = field(default=False)

    #: The per-condition tensors (what :meth:`to` moves and :meth:`select` slices).
    TENSORS = ("shift", "overexpression", "clamp_mask", "clamp_level", "activity", "latent", "offset_weight")

    @property
    def n_conditions(self) -> int:
        """Number of conditions C in the batch."""
        return len(self.labels)

    def to(self, device) -> "InterventionBatch":
        """The same batch with its tensors on ``device`` (itself when already there)."""
        if self.shift.device == torch.device(device):
            return self
        out = copy.copy(self)
        for name in self.TENSORS:
            setattr(out, name, getattr(self, name).to(device))
        return out

    def neutral_rows(self) -> list[int]:
        """Positions of conditions with no intervention at all (the control)."""
        busy = (self.shift != 0) | (self.overexpression != 0) | self.clamp_mask | (self.activity != 1)
        per_row = busy.flatten(1).any(1) | (self.latent != 0).flatten(1).any(1) | \
            (self.offset_weight != 0).flatten(1).any(1)
        return [int(i) for i in torch.nonzero(~per_row).flatten().tolist()]

    def with_control_rows(self, n: int) -> "InterventionBatch":
        """This batch followed by ``n`` conditions without intervention."""
        out = copy.copy(self)
        out.labels = list(self.labels) + ["control"] * n
        for name in self.TENSORS:
            t = getattr(self, name)
            neutral = torch.ones_like(t[:1]) if name == "activity" else torch.zeros_like(t[:1])
            setattr(out, name, torch.cat([t, neutral.expand(n, *t.shape[1:])]))
        return out

    def select(self, positions: list[int]) -> "InterventionBatch":
        """The sub-batch of the conditions at ``positions`` (in that order)."""
        idx = torch.as_tensor(positions, dtype=torch.long, device=self.shift.device)
        out = copy.copy(self)
        out.labels = [self.labels[i] for i in positions]
        for name in self.TENSORS:
            setattr(out, name, getattr(self, name)[idx])
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
    latent_regulators
        Perturbed genes that are not among ``gene_names`` (unmeasured regulators; see the module
        docstring).

    Use :meth:`from_data` to set these from a dataset.
    """

    def __init__(self, gene_names, config: ModelConfig | None = None, *, mean=None, scale=None,
                 control_level=None, latent_regulators=None, seed: int = 0):
        super().__init__()
        gene_names = [str(g) for g in gene_names]
        p = len(gene_names)
        if p == 0:
            raise PerturbODEError("A model needs at least one gene", fix="Load data with genes")
        config = (config or ModelConfig()).resolved_for(p)
        if config.perturbation_offset == "auto":  # no data to decide from: no offset
            config = dataclasses.replace(config, perturbation_offset="none")
        if config.knockout_level == "auto":  # nothing measured: the transcript is removed
            config = dataclasses.replace(config, knockout_level=0.0)
        if config.knockdown_level == "auto":  # nothing measured: the library's default dose
            config = dataclasses.replace(config, knockdown_level=DEFAULT_KNOCKDOWN_RULE)
        self.config = config
        self.gene_names = gene_names
        self.gene_index = {g: i for i, g in enumerate(gene_names)}
        self.latent_names = sorted({str(g) for g in (latent_regulators or [])})
        overlap = [g for g in self.latent_names if g in self.gene_index]
        if overlap:
            raise PerturbODEError(f"Latent regulator(s) {', '.join(overlap[:5])} are also measured genes",
                                  where="latent_regulators", fix="Name only targets that are not among the genes")
        self.latent_index = {g: i for i, g in enumerate(self.latent_names)}
        #: the simulated responses to the training perturbations and their fit to the data
        #: (:class:`~perturbode_core.tools.response_evidence.ResponseEvidence`), set by training
        #: for the weights it returns and kept by checkpoints; None: the network is G alone
        self.response_evidence = None
        K = config.n_modules

        def vec(v, default):
            return torch.as_tensor(np.asarray(default if v is None else v, dtype=np.float32)).reshape(p).clone()

        self.register_buffer("mean", vec(mean, np.zeros(p)))
        self.register_buffer("scale", vec(scale, np.ones(p)))
        level = vec(control_level, np.zeros(p) if control_level is None else control_level)
        self.register_buffer("anchor", (level - self.mean) / self.scale)
        # what the training knockouts / undosed knock-downs left of each of their targets (a share in
        # [0, 1]; NOT_MEASURED (-1, not NaN: weights stay comparable and finite): the pooled reading
        # applies); set by from_data (per_target_levels)
        self.register_buffer("knockout_left", torch.full((p,), NOT_MEASURED))
        self.register_buffer("knockdown_left", torch.full((p,), NOT_MEASURED))

        gen = torch.Generator().manual_seed(int(seed))
        self.A = nn.Parameter(torch.randn(p, K, generator=gen) * config.init_scale / math.sqrt(K))
        self.B = nn.Parameter(torch.randn(K, p, generator=gen) * config.init_scale / math.sqrt(p))
        self.b = nn.Parameter(torch.zeros(K))
        self.raw_alpha = nn.Parameter(torch.full((K,), math.log(math.e - 1.0)),  # softplus -> 1
                                      requires_grad=config.alpha_mode == "learned")
        self.log_gamma = nn.Parameter(torch.zeros(p), requires_grad=config.learn_decay)
        self.c = nn.Parameter(torch.zeros(p), requires_grad=config.anchor == "free")
        self.log_delta = nn.Parameter(torch.zeros(p), requires_grad=config.learn_shift_per_target)
        # the strength every overexpressed target shares (learned with learn_shift): what a target
        # never overexpressed in training gets, so it is learned from the screen, not assumed
        self.log_delta_shared = nn.Parameter(torch.zeros(()), requires_grad=config.learn_shift)
        self.W_latent = nn.Parameter(torch.zeros(K, len(self.latent_names)))
        self.type_offset = nn.Parameter(torch.zeros(len(INTERVENTION_TYPES), p),
                                        requires_grad=config.perturbation_offset != "none")
        if config.anchor == "free":
            with torch.no_grad():
                self.c.copy_(self._anchored_c())
        self._sigma = get_activation(config.activation).torch_fn

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data(cls, data, config: ModelConfig | None = None, *, conditions=None, seed: int = 0) -> "PerturbODE":
        """A model whose standardisation and anchor come from ``data`` (a PerturbationData).

        ``conditions`` restricts the cells used for the scale to those conditions (e.g. the
        training split), so held-out cells never leak into the model.
        """
        rows = None if conditions is None else np.flatnonzero(np.isin(data.labels, list(conditions)))
        ctrl = data.control_cells()
        targets = data.perturbed_genes(conditions)
        latent = sorted(targets - set(data.gene_names))
        config = (config or ModelConfig()).resolved_for(data.n_genes, len(targets))
        if config.perturbation_offset == "auto":
            from perturbode_core.data.shared_response import has_shared_response

            shared = has_shared_response(data, None if conditions is None else list(conditions))
            config = dataclasses.replace(config, perturbation_offset="per_type" if shared else "none")
        if config.knockout_level == "auto":
            from perturbode_core.data.knockout_level import knockout_level

            config = dataclasses.replace(config, knockout_level=knockout_level(
                data, None if conditions is None else list(conditions)))
        if config.knockdown_level == "auto":
            from perturbode_core.data.knockout_level import knockdown_level

            measured = knockdown_level(data, None if conditions is None else list(conditions))
            config = dataclasses.replace(config, knockdown_level=(
                DEFAULT_KNOCKDOWN_RULE if measured is None else tuple(measured)))
        level = np.median(ctrl, axis=0) if config.anchor == "control_median" else ctrl.mean(0)
        mean, sd = column_mean_std(data.X, rows)
        # floor the scale so that genes with (almost) no variance do not explode in z units
        floor = max(1e-2 * float(sd.max()) if sd.size else 0.0, 1e-3)
        scale = np.maximum(sd, floor)
        model = cls(data.gene_names, config, mean=mean, scale=scale, control_level=level, latent_regulators=latent,
                    seed=seed)
        if config.per_target_levels:
            from perturbode_core.data.knockout_level import per_target_left

            train = None if conditions is None else list(conditions)
            with torch.no_grad():
                if float(config.knockout_level) > 0:  # a deletion (0) stays a deletion for every target
                    for gene, left in per_target_left(data, train, kind="knockout").items():
                        model.knockout_left[model.gene_index[gene]] = left
                for gene, left in per_target_left(data, train, kind="knockdown").items():
                    model.knockdown_left[model.gene_index[gene]] = left
        return model

    # ------------------------------------------------------------------ parameters
    @property
    def n_genes(self) -> int:
        """Number of genes p."""
        return len(self.gene_names)

    @property
    def n_latent(self) -> int:
        """Number of latent (unmeasured) regulators m."""
        return len(self.latent_names)

    @property
    def target_names(self) -> list[str]:
        """What a perturbation may target: the genes, then the unmeasured (latent) regulators
        (``encode`` refuses what an unmeasured target cannot take, such as a clamp)."""
        return list(self.gene_names) + list(self.latent_names)

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
    def has_offset(self) -> bool:
        """Whether perturbed conditions receive a (nonzero) learned perturbation offset."""
        return self.config.perturbation_offset != "none" and bool(self.type_offset.detach().any())

    @contextmanager
    def without_offset(self):
        """The model with its perturbation offset at zero for the duration (restored after, also on
        error): what its perturbations do beyond the response every perturbed condition shares."""
        saved = self.type_offset.detach().clone()
        with torch.no_grad():
            self.type_offset.zero_()
        try:
            yield self
        finally:
            with torch.no_grad():
                self.type_offset.copy_(saved)

    @property
    def delta(self) -> torch.Tensor:
        """Overexpression strength per gene in standardised units: ``shift_delta * exp(shared +
        own)``, divided by the gene's scale when ``shift_units`` is ``data`` or ``level`` (the same
        amount of expression in data units for every gene, whatever its spread in the screen).
        With ``level`` the field adds it times the gene's decay gamma (a rise of the steady
        state by that amount); with ``data`` as it is (a rate). Genes never overexpressed in
        training keep ``own = 0``: the strength the screen's targets share."""
        delta = self.config.shift_delta * torch.exp(self.log_delta_shared + self.log_delta)
        return delta / self.scale if self.config.shift_units in ("data", "level") else delta

    def _anchored_c(self) -> torch.Tensor:
        z = self.anchor
        return self.gamma * z - self.A @ (self.alpha * self._sigma(self.B @ z + self.b))

    def basal(self) -> torch.Tensor:
        """The basal rate c (anchored, or learned when ``anchor='free'``)."""
        return self.c if self.config.anchor == "free" else self._anchored_c()

    # ------------------------------------------------------------------ units
    def control_level(self) -> np.ndarray:
        """The anchored control level of every measured gene, in data units (the unperturbed steady state)."""
        return (self.anchor * self.scale + self.mean).detach().cpu().numpy().astype(float)

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
        latent = torch.zeros(C, 1, self.n_latent)
        offset_w = torch.zeros(C, 1, len(INTERVENTION_TYPES))
        ctrl_level_z = self.anchor.detach()
        out_labels = []
        for ci, pert in enumerate(perturbations):
            if pert is None or (isinstance(pert, str) and pert.strip().lower() in ("", "control")):
                ivs: list[Intervention] = []
            elif isinstance(pert, str):
                ivs = parse_spec(pert)
            else:
                ivs = list(pert)
            self._check_targets(ivs)
            out_labels.append("+".join(iv.to_spec() for iv in ivs) or "control")
            kinds = sorted({iv.kind for iv in ivs})
            for kind in kinds:  # a combination of types shares their offsets equally
                offset_w[ci, 0, self._offset_slot(kind)] += 1.0 / len(kinds)
            for iv in ivs:
                if iv.gene in self.latent_index:
                    latent[ci, 0, self.latent_index[iv.gene]] = self._latent_change(iv)
                    continue
                j = self.gene_index[iv.gene]
                v = iv.resolved_value
                if iv.kind == "knockout":
                    mask[ci, 0, j] = True
                    left = self.knockout_share_left(iv.gene)
                    if left > 0:  # the protein is gone, part of its transcript is still measured
                        ctrl_data = ctrl_level_z[j] * self.scale[j] + self.mean[j]
                        level[ci, 0, j] = (left * ctrl_data - self.mean[j]) / self.scale[j]
                        act[ci, 0, j] = 0.0
                    else:
                        level[ci, 0, j] = (0.0 - self.mean[j]) / self.scale[j]
                elif iv.kind == "knockdown":
                    mask[ci, 0, j] = True
                    ctrl_data = ctrl_level_z[j] * self.scale[j] + self.mean[j]
                    left = ((1.0 - v) * ctrl_data if iv.value is not None
                            else self.knockdown_share_left(iv.gene, float(ctrl_data)) * float(ctrl_data))
                    level[ci, 0, j] = (left - self.mean[j]) / self.scale[j]
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
            activity=act, latent=latent, offset_weight=offset_w, has_clamp=bool(mask.any()),
            has_activity=bool((act != 1).any()), has_overexpression=bool((oe != 0).any()),
            has_latent=bool((latent != 0).any()))

    def _check_targets(self, ivs) -> None:
        """Refuse targets the model knows nothing about, saying why (measured genes and latent
        regulators seen in training are known)."""
        unknown = [iv for iv in ivs if iv.gene not in self.gene_index and iv.gene not in self.latent_index]
        if unknown:
            check_genes(unknown, self.gene_names)  # raises, with did-you-mean hints for typos
        for iv in ivs:
            if iv.gene in self.latent_index and iv.kind == "clamp":
                raise PerturbODEError(
                    f"{iv.gene} is not measured, so it cannot be clamped to a level", where=f"perturbation of {iv.gene}",
                    fix=f"Use {iv.gene}:knockout, :knockdown=F, :overexpression or :activity=F")

    def _latent_change(self, iv: Intervention) -> float:
        """``level - 1`` of a latent regulator under ``iv`` (its level is 1 in control cells)."""
        v = iv.resolved_value
        if iv.kind == "knockout":
            return -1.0
        if iv.kind == "knockdown":
            return -self._latent_knockdown(iv)
        if iv.kind in ("overexpression", "shift"):
            return v * self.config.shift_delta
        return v - 1.0  # activity: a factor on its input to the modules

    def measured_share(self, kind: str, gene: str) -> bool:
        """Whether measured ``gene`` has its own share left for ``kind`` (``knockout`` or undosed
        ``knockdown``) from the training conditions (``per_target_levels``)."""
        buffer = self.knockout_left if kind == "knockout" else self.knockdown_left
        return float(buffer[self.gene_index[gene]]) >= 0

    def knockout_share_left(self, gene: str) -> float:
        """The share of its control level that a knockout leaves of measured ``gene``: what its own
        training knockouts left (``per_target_levels``), else the pooled ``knockout_level``."""
        own = float(self.knockout_left[self.gene_index[gene]])
        return own if own >= 0 else float(self.config.knockout_level)

    def knockdown_share_left(self, gene: str, control: float | None = None) -> float:
        """The share of its control level that a knock-down without a dose leaves of measured
        ``gene``: what its own training knock-downs left (``per_target_levels``), else the
        ``knockdown_level`` line at its control level (``control``, data units, when the caller
        has it)."""
        j = self.gene_index[gene]
        own = float(self.knockdown_left[j])
        if own >= 0:
            return own
        if control is None:
            control = float(self.anchor[j] * self.scale[j] + self.mean[j])
        if control <= 0:
            return knockdown_rule(self.config)[0]
        return float(knocked_down_level(knockdown_rule(self.config), control)) / control

    def _latent_knockdown(self, iv: Intervention) -> float:
        """The share of an unmeasured target's level a knock-down removes: its stated dose, else what
        the model's knock-down rule removes from a gene at the mean control level of the measured
        genes (an unmeasured level has no units of its own)."""
        if iv.value is not None:
            return float(iv.value)
        typical = float(self.control_level().mean())
        if typical <= 0:
            return 1.0 - knockdown_rule(self.config)[0]
        return 1.0 - float(knocked_down_level(knockdown_rule(self.config), typical)) / typical

    def _offset_slot(self, kind: str) -> int:
        # "shared": one offset for every type (slot 0); "per_type": one slot per intervention type
        return 0 if self.config.perturbation_offset == "shared" else INTERVENTION_TYPES.index(kind)

    # ------------------------------------------------------------------ dynamics
    def module_input(self, z: torch.Tensor, batch: InterventionBatch | None = None) -> torch.Tensor:
        """B z + b, with activity interventions applied to the regulators' inputs and the inputs of
        perturbed latent regulators added."""
        if batch is not None and batch.has_activity:
            # scaling regulator j's data-unit level by s: z' = s z + (s - 1) mean / scale
            z = z * batch.activity + (batch.activity - 1.0) * (self.mean / self.scale)
        u = z @ self.B.T + self.b
        if batch is not None and batch.has_latent:
            u = u + batch.latent.to(u.device) @ self.W_latent.T
        return u

    def field_constants(self, batch: InterventionBatch | None = None) -> "FieldConstants":
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
        module_bias = self.b
        if batch is not None:
            batch = batch.to(dev)
            C = batch.n_conditions
            bias = bias.expand(C, 1, self.n_genes) + batch.shift
            if self.config.perturbation_offset != "none":
                bias = bias + batch.offset_weight @ self.type_offset
            if batch.has_latent:
                module_bias = self.b + batch.latent @ self.W_latent.T  # (C, 1, K)
            if batch.has_overexpression:
                # level: rate = strength x decay, so that the steady state rises by the strength
                rate = self.delta * gamma if self.config.shift_units == "level" else self.delta
                bias = bias + batch.overexpression * rate
            if batch.has_clamp:
                keep = (~batch.clamp_mask).to(bias.dtype)
                bias = torch.where(batch.clamp_mask, gamma * batch.clamp_level, bias)
            if batch.has_activity:
                act = batch.activity
                act_off = (batch.activity - 1.0) * (self.mean / self.scale)
        return FieldConstants(BT=self.B.T, b=module_bias, AT=(self.A * self.alpha).T, gamma=gamma, bias=bias,
                               keep=keep, act=act, act_off=act_off, sigma=self._sigma)

    def vector_field(self, z: torch.Tensor, batch: InterventionBatch | None = None) -> torch.Tensor:
        """f(z) for a state of shape (C, n, p) (or (n, p) with no interventions)."""
        return field_value(z, self.field_constants(batch))

    def integrate(self, z0: torch.Tensor, batch: InterventionBatch, times, *, noise: float = 0.0,
                  generator: torch.Generator | None = None, noise_rows: tuple | None = None,
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
            ``(total, first, ref)``: as well, the global row whose noise the paired-control
            reference gets when this block lacks its control row (the control's row in the
            whole batch, so the reference equals the single-process one).
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
        check_choice("precision", precision, solvers.PRECISIONS)
        z0 = z0.to(self.A.device)
        if not self.config.paired_control:
            return self._solve(z0, batch, times, noise, generator, noise_rows, precision, compile)
        # paired: every condition's trajectory minus the unperturbed trajectory of the same cells
        # (the batch's own control row when it has one, else one added), plus the start state
        batch = batch.to(self.A.device)
        neutral = batch.neutral_rows()
        rows = None if noise_rows is None else tuple(noise_rows[:2])
        if z0.dim() == 2 and neutral:
            traj = self._solve(z0, batch, times, noise, generator, rows, precision, compile)
            ref = traj[:, neutral[0]:neutral[0] + 1]
        else:
            C = batch.n_conditions
            starts = z0 if z0.dim() == 3 else z0.unsqueeze(0)
            if noise_rows is not None:  # this rank's rows, then the reference's (see noise_rows)
                total, first = noise_rows[:2]
                ref_row = noise_rows[2] if len(noise_rows) > 2 else total
                rows = (total + (len(noise_rows) < 3),
                        list(range(first, first + C)) + [ref_row] * starts.shape[0])
            both = self._solve(torch.cat([z0.unsqueeze(0).expand(C, *z0.shape) if z0.dim() == 2 else z0, starts]),
                               batch.with_control_rows(starts.shape[0]), times, noise, generator, rows,
                               precision, compile)
            traj, ref = both[:, :C], both[:, C:]
        start = z0.unsqueeze(0) if z0.dim() == 2 else z0
        return traj - ref + start

    def _solve(self, z0, batch, times, noise, generator, noise_rows, precision, compile) -> torch.Tensor:
        """The trajectories of every condition from its start cells (see :meth:`integrate`)."""
        C = batch.n_conditions
        if z0.dim() == 2:
            z0 = z0.unsqueeze(0).expand(C, *z0.shape)
        t = [float(v) for v in torch.as_tensor(times, dtype=torch.float64).tolist()]
        consts = self.field_constants(batch)
        if precision == "bfloat16":
            consts = consts.bf16()
        cfg = self.config
        if noise > 0:
            return solvers.euler_maruyama(z0, consts, t, step_size=cfg.step_size, noise=noise, generator=generator,
                                          noise_rows=noise_rows)
        adjoint = _LiveField(self, batch) if cfg.adjoint else None
        return solvers.solve(z0, consts, t, solver=cfg.solver, step_size=cfg.step_size, rtol=cfg.rtol, atol=cfg.atol,
                             compile=compile, checkpoint=cfg.checkpoint_steps and torch.is_grad_enabled(),
                             adjoint_field=adjoint,
                             adjoint_params=[p for p in self.parameters() if p.requires_grad] if adjoint else ())

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
        """Mean absolute weight of A and of the module inputs (B and the latent regulators'
        W_latent together): scale-free, independent of p, K and m. (The perturbation offset is
        not penalised: an L1 weight that keeps edges sparse made it miss most of a shared shift.)"""
        inputs = self.B.abs().sum() + self.W_latent.abs().sum()
        return self.A.abs().mean() + inputs / (self.B.numel() + self.W_latent.numel())

    def module_weights(self) -> dict:
        """A, B, alpha, b, gene names, mean and scale as numpy arrays (for modules and plots)."""
        with torch.no_grad():
            return {
                "A": self.A.detach().cpu().numpy().copy(),
                "B": self.B.detach().cpu().numpy().copy(),
                "alpha": self.alpha.detach().cpu().numpy().copy(),
                "b": self.b.detach().cpu().numpy().copy(),
                "gamma": self.gamma.detach().cpu().numpy().copy(),
                "W_latent": self.W_latent.detach().cpu().numpy().copy(),
                "latent_names": list(self.latent_names),
                "gene_names": list(self.gene_names),
                "mean": self.mean.cpu().numpy().copy(),
                "scale": self.scale.cpu().numpy().copy(),
                "activation": self.config.activation,
            }

    def activation_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """sigma'(u) of the module non-linearity (for the average-Jacobian alpha)."""
        return get_activation(self.config.activation).derivative(u)


class _LiveField(nn.Module):
    """Field that reads the parameters at every call (for ``odeint_adjoint``)."""

    def __init__(self, model: PerturbODE, batch: InterventionBatch):
        super().__init__()
        self.model = model
        self.batch = batch

    def forward(self, t, z):
        return self.model.vector_field(z, self.batch)


