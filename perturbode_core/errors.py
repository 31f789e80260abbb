"""The one error type that PerturbODE raises for anything the user can fix.

Every message says *what* is wrong, *where* (file, column, gene, line) and *how to fix it*, so
the command line can print it as one line and the dashboard can show it in an ``st.error``
without a traceback.
"""

from __future__ import annotations


class PerturbODEError(Exception):
    """A problem with the user's input (data, checkpoint, option or file) that they can fix.

    Parameters
    ----------
    what
        What is wrong, in one sentence.
    where
        The file, column, gene or line it was found in (optional).
    fix
        How to fix it (optional but expected).
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message: what went wrong, ``(in where)``, then how to fix it."""
        text = self.what.rstrip(".")
        if self.where:
            text += f" (in {self.where})"
        text += "."
        if self.fix:
            text += " " + self.fix.rstrip(".") + "."
        return text

    def __str__(self) -> str:
        return self.message


class PerturbODEWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. a one-cell condition)."""


class PerturbODEInfo(PerturbODEWarning):
    """A note on what was done, not a problem (e.g. which targets are unmeasured regulators).

    A warning subclass so that the same channels (``warnings.catch_warnings`` in the dashboard,
    the command line's printer) carry it; shown as a note rather than a warning.
    """


def check_choice(name: str, value, choices) -> None:
    """Raise a PerturbODEError listing the valid options when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise PerturbODEError(
            f"Unknown {name} {value!r}",
            where=f"option '{name}'",
            fix=f"Use one of: {', '.join(map(str, choices))}",
        )
