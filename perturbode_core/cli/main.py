"""Command line: ``python -m perturbode_core COMMAND ...`` (also installed as ``perturbode``).

Each sub-command lives in its own module under :mod:`perturbode_core.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a ``run(args) -> int``.
Errors the user can fix print one line to stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from perturbode_core.errors import PerturbODEError, PerturbODEInfo, PerturbODEWarning

# Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "train",
    "grn",
    "simulate",
    "dataset",
    "modules",
    "enrich",
    "benchmark",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m perturbode_core`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="perturbode",
        description="PerturbODE: learn a gene regulatory network from perturbation screens "
        "with an interpretable neural ODE, and simulate interventions with it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"perturbode_core.cli.cmd_{name}").register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """Our warnings as one line each (``note:`` for information, ``warning:`` otherwise); others
    as Python shows them."""
    if issubclass(category, PerturbODEWarning):
        prefix = "note" if issubclass(category, PerturbODEInfo) else "warning"
        print(f"{prefix}: {message}", file=sys.stderr if file is None else file)
        return
    _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a user error (one-line message, no traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning  # restored when the block ends
            return int(args.func(args) or 0)
    except PerturbODEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
