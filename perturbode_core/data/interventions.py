"""Interventions: what a perturbation does to each of its target genes.

Types (DESIGN section 2):

``knockout``
    Perfect intervention: the target's regulatory input is cut and it decays to 0 (data units).
``knockdown`` (value = fraction removed, default 0.5)
    Perfect intervention to ``(1 - fraction) x`` the control level of the target.
``clamp`` (value = level in data units)
    Perfect intervention to a given level.
``overexpression`` (value = fold of the model's overexpression strength, default 1)
    Soft intervention: production of the target is raised by ``value * delta_j`` where delta_j
    is the model's (fixed or learned) shift for that gene.
``shift`` (value = added rate in standardised units per unit time, default 1)
    Soft intervention: ``f_j += value``.
``activity`` (value = factor on the target's effect on others, default 0)
    Drug-like: the target's own level is free but its column of B is scaled by ``value``.
    ``inhibition`` / ``inhibitor`` mean factor 0 and ``activation`` / ``activator`` factor
    :data:`ACTIVATION_FACTOR` (2), so an inhibited and an activated protein are different
    interventions; by default only when no value comes with the word (a value: knock-down
    fraction / overexpression fold; see :data:`ACTIVITY_WORD_MODES`).

A perturbation label joins targets with ``+``; each target may carry its own type and value:
``GATA1``, ``GATA1+SPI1``, ``GATA1:knockout+SPI1:overexpression=2``, ``TP53:knockdown=0.8``.
"""

from __future__ import annotations

from dataclasses import dataclass

from perturbode_core.errors import PerturbODEError

INTERVENTION_TYPES = ("knockout", "knockdown", "clamp", "overexpression", "shift", "activity")

#: Default value of each type when a spec gives none.
DEFAULT_VALUES = {
    "knockout": 0.0,
    "knockdown": 0.5,
    "clamp": 0.0,
    "overexpression": 1.0,
    "shift": 1.0,
    "activity": 0.0,
}

#: Usual names of screen technologies mapped onto our types (lower-case keys).
SYNONYMS = {
    "knockout": "knockout",
    "ko": "knockout",
    "crispr": "knockout",
    "crisprko": "knockout",
    "crispr-ko": "knockout",
    "crispr_ko": "knockout",
    "deletion": "knockout",
    "perfect": "knockout",
    "knockdown": "knockdown",
    "kd": "knockdown",
    "crispri": "knockdown",
    "crispr-i": "knockdown",
    "inhibition": "knockdown",
    "interference": "knockdown",
    "sirna": "knockdown",
    "shrna": "knockdown",
    "overexpression": "overexpression",
    "oe": "overexpression",
    "crispra": "overexpression",
    "crispr-a": "overexpression",
    "activation": "overexpression",
    "orf": "overexpression",
    "shift": "shift",
    "soft": "shift",
    "clamp": "clamp",
    "activity": "activity",
    "drug": "activity",
}

#: Factor of an ``activation`` read as the activity type (``activity_synonyms``): the protein's
#: effect on its targets doubled. Inhibition keeps the type's default, 0.
ACTIVATION_FACTOR = 2.0

#: Types that replace the regulatory input of the target (hard interventions).
PERFECT_TYPES = ("knockout", "knockdown", "clamp")


#: How ``inhibition`` / ``activation`` (and ``inhibitor`` / ``activator``) are read: ``auto`` (the
#: default) as the activity type unless a value comes with them (a dose column, ``GENE:inhibition=0.7``),
#: then as knock-down / overexpression of that value; ``yes`` always as activity; ``no`` never.
#: Why activity by default: a drug changes a protein's activity, not its measured level (an
#: inhibitor can even raise its target's level through feedback); a value names a fraction or a fold.
ACTIVITY_WORD_MODES = ("auto", "yes", "no")


def activity_words_mode(value) -> str:
    """``activity_synonyms`` as one of :data:`ACTIVITY_WORD_MODES` (True / False / None are accepted)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "yes" if value else "no"
    mode = str(value).strip().lower()
    if mode not in ACTIVITY_WORD_MODES:
        raise PerturbODEError(f"Unknown reading of inhibition / activation: {value!r}", where="activity_synonyms",
                              fix=f"Use one of {', '.join(ACTIVITY_WORD_MODES)}")
    return mode


def normalise_type(name: str, *, where: str = "intervention type", activity_synonyms="auto",
                   has_value: bool = False) -> str:
    """Map an intervention type or one of its synonyms onto one of :data:`INTERVENTION_TYPES`.

    ``inhibition`` and ``activation`` mean the *activity* type (signalling proteins and drugs)
    or knock-down and overexpression, as :data:`ACTIVITY_WORD_MODES` says (``has_value``: a value
    comes with the word).
    """
    key = str(name).strip().lower()
    mode = activity_words_mode(activity_synonyms)
    if key in _ACTIVITY_WORDS and (mode == "yes" or (mode == "auto" and not has_value)):
        return "activity"
    if key in SYNONYMS:
        return SYNONYMS[key]
    raise PerturbODEError(
        f"Unknown intervention type {name!r}",
        where=where,
        fix=f"Use one of {', '.join(INTERVENTION_TYPES)} (or a synonym: CRISPRko, CRISPRi, CRISPRa, "
        "inhibition, activation)",
    )


_ACTIVITY_WORDS = ("inhibition", "activation", "inhibitor", "activator")


def resolve_type(name: str, *, where: str = "intervention type", activity_synonyms="auto",
                 has_value: bool = False) -> tuple[str, float | None]:
    """The type of ``name`` (as :func:`normalise_type`) and the value the word itself implies:
    :data:`ACTIVATION_FACTOR` for ``activation`` / ``activator`` read as the activity type, else None
    (the type's default)."""
    kind = normalise_type(name, where=where, activity_synonyms=activity_synonyms, has_value=has_value)
    word = str(name).strip().lower()
    value = ACTIVATION_FACTOR if kind == "activity" and word in ("activation", "activator") else None
    return kind, value


@dataclass(frozen=True)
class Intervention:
    """One target gene of a perturbation, with its intervention type and value."""

    gene: str
    kind: str = "knockout"
    value: float | None = None

    def __post_init__(self):
        if self.kind not in INTERVENTION_TYPES:
            raise PerturbODEError(
                f"Unknown intervention type {self.kind!r} for gene {self.gene!r}",
                fix=f"Use one of {', '.join(INTERVENTION_TYPES)}",
            )

    @property
    def resolved_value(self) -> float:
        """The value, or the type's default when none was given."""
        return DEFAULT_VALUES[self.kind] if self.value is None else float(self.value)

    def to_spec(self) -> str:
        """The spec string of this target, ``GENE:TYPE`` or ``GENE:TYPE=VALUE`` (see :func:`parse_spec`)."""
        if self.value is None:
            return f"{self.gene}:{self.kind}"
        return f"{self.gene}:{self.kind}={self.value:g}"


def parse_spec(spec: str, *, default_kind: str = "knockout", where: str = "perturbation",
               activity_synonyms="auto", default_value: float | None = None) -> list[Intervention]:
    """Parse ``GENE[:TYPE[=VALUE]][+GENE2...]`` into a list of :class:`Intervention`.

    Parameters
    ----------
    spec
        The perturbation, e.g. ``"GATA1+SPI1"`` or ``"GATA1:knockdown=0.8+SPI1:overexpression=2"``.
    default_kind
        Type of targets that do not name one.
    where
        Where the spec came from, for error messages.
    activity_synonyms
        How ``inhibition`` / ``activation`` are read (:data:`ACTIVITY_WORD_MODES`; ``auto``: the
        activity type unless a value comes with the word).
    default_value
        Value of targets that name neither a type nor a value (e.g. a dose column).
    """
    if spec is None or not str(spec).strip():
        raise PerturbODEError("Empty perturbation", where=where,
                              fix="Name at least one target gene, e.g. GATA1 or GATA1:knockout")
    out: list[Intervention] = []
    seen: set[str] = set()
    for part in str(spec).split("+"):
        part = part.strip()
        if not part:
            raise PerturbODEError(f"Empty target in perturbation {spec!r}", where=where,
                                  fix="Join targets with a single '+', e.g. GATA1+SPI1")
        gene, _, rest = part.partition(":")
        gene = gene.strip()
        kind, value = default_kind, default_value
        if rest:
            kind_name, _, value_text = rest.partition("=")
            kind, value = resolve_type(kind_name, where=f"{where} {spec!r}", activity_synonyms=activity_synonyms,
                                       has_value=bool(value_text.strip()) or default_value is not None)
            if value_text.strip():
                try:
                    value = float(value_text)
                except ValueError:
                    raise PerturbODEError(
                        f"Value {value_text!r} of target {gene!r} is not a number", where=where,
                        fix="Write e.g. GENE:knockdown=0.7 or GENE:shift=1.5") from None
        if gene in seen:
            raise PerturbODEError(f"Gene {gene!r} appears twice in perturbation {spec!r}", where=where,
                                  fix="Name each target once")
        seen.add(gene)
        if kind == "knockdown" and value is not None and not 0.0 <= value <= 1.0:
            raise PerturbODEError(f"Knock-down fraction {value:g} of {gene!r} is outside [0, 1]",
                                  where=where, fix="Give the fraction removed, e.g. GENE:knockdown=0.7")
        if kind == "overexpression" and value is not None and value < 0:
            raise PerturbODEError(f"Overexpression fold {value:g} of {gene!r} is negative", where=where,
                                  fix="Give a fold >= 0, e.g. GENE:overexpression=2")
        out.append(Intervention(gene, kind, value))
    return out


def format_spec(interventions: list[Intervention]) -> str:
    """Inverse of :func:`parse_spec` (always names types explicitly)."""
    return "+".join(iv.to_spec() for iv in interventions)


def check_genes(interventions: list[Intervention], gene_names, *, where: str = "perturbation") -> None:
    """Raise a clear error naming every target that is not among ``gene_names``."""
    known = set(gene_names)
    missing = [iv.gene for iv in interventions if iv.gene not in known]
    if missing:
        lower = {g.lower(): g for g in gene_names}
        hints = [f"{m} (did you mean {lower[m.lower()]}?)" if m.lower() in lower else m for m in missing]
        raise PerturbODEError(
            f"Target gene(s) not in the model's genes: {', '.join(hints)}",
            where=where,
            fix="Use gene names exactly as in var_names, or drop those targets",
        )
