"""Options shared by several sub-commands."""

from __future__ import annotations

import json

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import check_input_file


def add_data_options(parser, *, required: bool = True) -> None:
    parser.add_argument("--data", required=required, metavar="FILE.h5ad",
                        help="AnnData file (cells x genes, log-normalised expression)")
    parser.add_argument("--perturbation-key", default="perturbation", metavar="COLUMN",
                        help="obs column with the target gene(s) of each cell, '+'-joined for combinations "
                             "(default: perturbation)")
    parser.add_argument("--control", default="control", metavar="LABEL",
                        help="label of control cells in that column (default: control)")
    parser.add_argument("--default-intervention", default="knockout", metavar="TYPE",
                        help="intervention type when obs has no 'intervention_type' column "
                             "(knockout, knockdown, overexpression, shift; default: knockout)")
    parser.add_argument("--layer", default=None, help="read expression from this layer instead of X")
    parser.add_argument("--normalize", action="store_true",
                        help="normalise raw counts (normalize_total + log1p) before use")


def top_k_option(text: str):
    """``--top-k``: a positive number of edges, or ``all`` (every ordered pair of genes)."""
    import argparse

    if str(text).strip().lower() == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        k = -1
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of edges or 'all', got {text!r}")
    return k


def edge_selection(top_k, n_genes: int) -> int | None:
    """The ``top_k`` an edge table is cut to: the default rule when ``--top-k`` was not given,
    ``None`` (every pair) for ``all``, else the number given."""
    from perturbode_core.io.edges import default_top_k

    if top_k is None:
        return default_top_k(n_genes)
    return None if top_k == "all" else int(top_k)


def load_data(args):
    from perturbode_core.data.dataset import load

    return load(args.data, perturbation_key=args.perturbation_key, control=args.control,
                default_intervention=args.default_intervention, layer=args.layer, normalize=args.normalize)


def read_config_file(path) -> dict:
    """Read a JSON config: ``{"model": {...}, "train": {...}}``."""
    path = check_input_file(path, kind="Config file")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PerturbODEError(f"Config file is not valid JSON ({exc})", where=str(path),
                              fix='Write e.g. {"model": {"n_modules": 32}, "train": {"epochs": 200}}') from None
    if not isinstance(cfg, dict) or set(cfg) - {"model", "train"}:
        raise PerturbODEError("Config file must hold an object with 'model' and/or 'train' sections",
                              where=str(path), fix='Write e.g. {"model": {"n_modules": 32}, "train": {"epochs": 200}}')
    return cfg
