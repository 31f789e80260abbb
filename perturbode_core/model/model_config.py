"""Options of the vector field (:class:`ModelConfig`) and the rule for the number of modules."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from perturbode_core._options import OptionsMixin
from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.model.activations import get_activation
from perturbode_core.model.solvers import get_solver

ALPHA_MODES = ("learned", "fixed")
ANCHORS = ("control_mean", "control_median", "free")
PERTURBATION_OFFSETS = ("auto", "none", "shared", "per_type")
SHIFT_UNITS = ("level", "data", "standardised")


@dataclass(frozen=True)
class ModelConfig(OptionsMixin):
    """Options of the vector field (all JSON-able; stored in checkpoints).

    Attributes
    ----------
    n_modules
        Number of hidden units K (gene modules). ``None``: :func:`resolve_n_modules` when the
        model is built from data (:meth:`resolved_for`).
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
        Learn the overexpression strength that all targets share (targets never overexpressed
        in training get it), instead of assuming ``shift_delta``: how strongly a screen
        overexpresses is a property of the screen.
    shift_units
        Meaning of ``shift_delta`` (and of the learned strength). ``level`` (default): the rise of
        the target's steady state in expression (data) units, the same for every gene whatever
        its decay (the added rate is the strength times the gene's decay gamma), before the
        network's feedback. ``data``: an added rate in data units per unit time (the rise is then
        the strength over the gene's learned decay, which its own perturbation rarely pins down:
        held-out overexpressions came out 1.2-2.1x the measured rise on the TF atlas; the default
        before ``level``). ``standardised``: per gene sd (a gene's sd depends on whether it was
        itself perturbed in the screen; checkpoints made before ``data``).
    learn_shift_per_target
        Also learn a factor per overexpressed target on top of the shared strength (with
        ``shift_shrinkage``).
    shift_shrinkage
        L2 penalty pulling each target's log-factor towards the shared strength.
    init_scale
        Standard deviation of the initial weights of A and B (times 1/sqrt(fan-in)).
    learn_decay
        Learn gamma per gene (initialised at 1).
    perturbation_offset
        A learned rate added to the field of every perturbed condition, whatever its target: the
        response all perturbed cells of a screen share (``shared``: one offset; ``per_type``: one
        per intervention type, e.g. CRISPRko and CRISPRa machinery differ; ``none``). ``auto``
        (default): ``per_type`` when the training data show a shared response
        (:func:`~perturbode_core.data.shared_response.has_shared_response`: the other conditions'
        average shift predicts a condition's shift on the genes it does not target better than no
        shift), else ``none``; resolved when the model is built from data (a model built by hand
        takes ``none``). The network's response evidence is simulated without the offset (it is
        no regulator's effect).
    knockout_level
        What a knockout leaves of its target's own measured level, as a fraction of the control
        level (0 to 1). A knockout always removes the target's effect on other genes (its input to
        the modules is that of level zero); this only sets the target's own level, which a CRISPR
        knockout's partly degraded transcript keeps in real screens. ``auto`` (default): the
        fraction the training knockouts left of their targets
        (:func:`~perturbode_core.data.knockout_level.knockout_level`; 0 on simulated screens,
        0.67 on the built-in Papalexi screen), resolved when the model is built from data (a
        model built by hand, or a checkpoint made before this option, takes 0: the transcript
        removed).
    knockdown_level
        What a knock-down *without a dose* leaves of its target's level (a knock-down with a dose,
        ``GENE:knockdown=0.7``, removes that share): a fraction of the control level (0 to 1), or
        a line ``[slope, intercept]`` in the control level (data units). ``auto`` (default): the
        line the training undosed knock-downs show
        (:func:`~perturbode_core.data.knockout_level.knockdown_level`), resolved when the model is
        built from data; 0.5 (the library's default dose) when the training data hold no such
        knock-down, for a model built by hand, and for a checkpoint made before this option.
    per_target_levels
        For the targets the training knockouts (where they leave part of the transcript,
        ``knockout_level`` above 0) and undosed knock-downs perturbed, use what they left of that
        target (:func:`~perturbode_core.data.knockout_level.per_target_left`: JAK2's knockout on
        the Papalexi screen leaves 22 %, the pooled level 61 %); the pooled reading is for the
        other targets. ``False``: the pooled reading for every target.
    paired_control
        Predict each perturbed cell as its start cell plus the difference between its perturbed
        and its unperturbed trajectory (a paired counterfactual). The variation that the
        unperturbed field would relax away (measurement noise, cell states the genes do not
        capture) is then carried over to the prediction instead of collapsing every cell onto the
        fixed point, so the network need not distort itself to keep the observed spread; controls
        stay exactly controls. ``False``: cells are integrated as they are (the paper's reading).
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
    learn_shift: bool = True
    learn_shift_per_target: bool = False
    shift_units: str = "level"
    shift_shrinkage: float = 1e-2
    init_scale: float = 0.5
    learn_decay: bool = True
    checkpoint_steps: bool = False
    perturbation_offset: str = "auto"
    paired_control: bool = True
    knockout_level: str | float = "auto"
    knockdown_level: str | float | list = "auto"
    per_target_levels: bool = True

    def __post_init__(self):
        """Check every option once, at construction (also after ``dataclasses.replace``); raise
        :class:`PerturbODEError` naming the bad one and the valid choices."""
        get_activation(self.activation)
        check_choice("alpha_mode", self.alpha_mode, ALPHA_MODES)
        check_choice("anchor", self.anchor, ANCHORS)
        check_choice("perturbation_offset", self.perturbation_offset, PERTURBATION_OFFSETS)
        check_choice("shift_units", self.shift_units, SHIFT_UNITS)
        get_solver(self.solver)
        for name in ("horizon", "step_size", "rtol", "atol", "init_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise PerturbODEError(f"Option {name} must be a positive number, got {value!r}",
                                      where=f"option '{name}'", fix="Give a positive number")
        if self.n_modules is not None and (not isinstance(self.n_modules, int) or self.n_modules < 1):
            raise PerturbODEError(f"n_modules must be a positive integer, got {self.n_modules!r}",
                                  where="option 'n_modules'", fix="Give e.g. 32, or leave it empty for the default")
        def fraction(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if self.knockout_level != "auto" and not fraction(self.knockout_level):
            raise PerturbODEError(f"knockout_level must be 'auto' or a fraction from 0 to 1, got {self.knockout_level!r}",
                                  where="option 'knockout_level'",
                                  fix="Give e.g. 0 (the transcript removed), 0.7, or 'auto' (measured on the screen)")
        kd = self.knockdown_level
        if isinstance(kd, list):  # a line read back from JSON: a tuple, so the options stay hashable
            kd = tuple(kd)
            object.__setattr__(self, "knockdown_level", kd)
        line = (isinstance(kd, (list, tuple)) and len(kd) == 2 and all(number(v) for v in kd) and kd[0] >= 0)
        if kd != "auto" and not fraction(kd) and not line:
            raise PerturbODEError(
                f"knockdown_level must be 'auto', a fraction from 0 to 1 or [slope, intercept], got {kd!r}",
                where="option 'knockdown_level'",
                fix="Give e.g. 0.2 (a fifth of the level left), [1.0, -1.5], or 'auto' (measured on the screen)")
        if self.shift_delta < 0:
            raise PerturbODEError("shift_delta must be >= 0", where="option 'shift_delta'", fix="Give e.g. 1")

    def resolved_for(self, n_genes: int, n_perturbed: int | None = None) -> "ModelConfig":
        """These options with ``n_modules`` set (by :func:`resolve_n_modules` when it is ``None``)."""
        if self.n_modules is not None:
            return self
        return replace(self, n_modules=resolve_n_modules(n_genes, n_perturbed))


#: The rule of :func:`resolve_n_modules` in words (help texts of the Train page and the CLI).
N_MODULES_RULE = ("automatic: K = genes for networks of up to 64 genes; above that about 1.1 x the number of "
                  "perturbed genes (16 to 512)")


def resolve_n_modules(n_genes: int, n_perturbed: int | None = None) -> int:
    """The default number of modules K: the one rule that training, the Train page's estimate and
    the help texts use.

    Small networks (<= 64 genes): K = p (K ~ 0.5-1x genes worked best). Larger ones: about the
    number of perturbed genes (1.1x, at least 16, at most p and 512). A module's effect is only
    identifiable through perturbations, and more modules than that make the network collapse.
    Re-checked with the current training (``benchmarks/module_count.py``, 6 designs x 2 seeds):
    mean AUPR 0.424 / 0.470 / 0.447 / 0.313 at 0.5x / 1x / 2x / 4x this rule; SERGIO DS2 (400
    genes, 30 perturbed in training) 0.444 at K = 33, 0.013 at K = 132; the atlas 0.503 at K = 36,
    0.195 at K = 144. The held-out perturbations' error keeps falling as K grows, so it cannot
    choose K. Without perturbation counts (a model built by hand): p/2, at least 64, at most 512.
    """
    if n_genes <= 64:
        return max(2, n_genes)
    if n_perturbed:
        return int(min(n_genes, 512, max(16, round(1.1 * n_perturbed))))
    return int(min(512, max(64, n_genes // 2)))
