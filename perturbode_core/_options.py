"""What ModelConfig and TrainConfig share: JSON-able round trips with checked option names."""

from __future__ import annotations

from dataclasses import asdict, fields

from perturbode_core.errors import PerturbODEError


class OptionsMixin:
    """``to_dict`` / ``from_dict`` for an options dataclass that validates itself in ``__post_init__``.

    Subclasses set ``_options_name`` (e.g. ``"model"``) for the error message.
    """

    _options_name = "option"

    def to_dict(self) -> dict:
        """The options as a plain dict (JSON-able; what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build and validate options from a dict; unknown keys are refused with the valid names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PerturbODEError(f"Unknown {cls._options_name} option(s): {', '.join(unknown)}",
                                  where=f"{cls._options_name} config",
                                  fix=f"Valid options: {', '.join(sorted(known))}")
        return cls(**d)
