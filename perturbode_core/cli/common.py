"""Options shared by several sub-commands."""

from __future__ import annotations

import json
from dataclasses import dataclass

from perturbode_core.data.interventions import activity_words_mode
from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import check_input_file


@dataclass(frozen=True)
class DataFlag:
    """One data-loading option: its command-line flag and the ``from_anndata`` keyword it sets."""

    flag: str
    keyword: str
    help: str
    type: type | None = str      # None: an on/off switch
    default: object = None
    metavar: str | None = None
    choices: tuple | None = None
    invert: bool = False         # a switch that sets the keyword to False
    canonical: object = None     # value -> the spelling the flag takes (older saved values)


#: Every data option of ``train``, ``simulate`` and ``benchmark``: the one table that builds the
#: parser, reads the parsed options into ``from_anndata`` keywords and writes keywords back as flags
#: (``scripts/build_datasets.py`` trains the demo checkpoints with it).
DATA_FLAGS = (
    DataFlag("--perturbation-key", "perturbation_key", "obs column with the target gene(s) of each cell, "
             "'+'-joined for combinations (default: perturbation)", default="perturbation", metavar="COLUMN"),
    DataFlag("--control", "control", "label of control cells in that column (default: control, or else the one of "
             "ctrl, non-targeting, NT, non_targeting, unperturbed that occurs, named in a note)", metavar="LABEL"),
    DataFlag("--condition-key", "condition_key", "obs column that keys the conditions (condition, guide, a drug "
             "and dose); the perturbation column then names each condition's targets, so one target may appear "
             "with several types or doses (default: conditions are the perturbation labels)", metavar="COLUMN"),
    DataFlag("--intervention-type-key", "intervention_type_key", "obs column with each cell's intervention type "
             "(default: intervention_type, when present)", default="intervention_type", metavar="COLUMN"),
    DataFlag("--dose-key", "dose_key", "numeric obs column with each cell's dose (knock-down fraction, "
             "overexpression fold, activity factor)", metavar="COLUMN"),
    DataFlag("--default-intervention", "default_intervention", "intervention type when obs has no type column "
             "(knockout, knockdown, overexpression, shift; default: knockout)", default="knockout", metavar="TYPE"),
    DataFlag("--activity-synonyms", "activity_synonyms", "how inhibition / activation (inhibitor / activator) "
             "are read: auto (default) as the activity type (drugs, signalling proteins: factor 0 / 2) unless a "
             "dose comes with them, then as knock-down fraction / overexpression fold; yes: always activity; "
             "no: always knock-down / overexpression", default="auto", choices=("auto", "yes", "no"),
             canonical=activity_words_mode),
    DataFlag("--layer", "layer", "read expression from this layer instead of X (e.g. counts, with --normalize)"),
    DataFlag("--normalize", "normalize", "normalise raw counts (normalize_total + log1p) before use; the counts "
             "are kept as a layer", type=None, default=False),
    DataFlag("--hvg", "hvg", "keep this many highly variable genes (scanpy), plus every measured target gene",
             type=int, metavar="N"),
    DataFlag("--hvg-flavor", "hvg_flavor", "scanpy flavour of --hvg (default: seurat)", default="seurat",
             choices=("seurat", "cell_ranger", "seurat_v3")),
    DataFlag("--guides", "guides", "assign guides from this obsm matrix of guide UMI counts (cells x guides) or "
             "obs column of guides; cells without a clear guide are set aside and counted", metavar="KEY"),
    DataFlag("--guide-min-umis", "min_guide_umis", "UMIs the top guide needs (default 5)", type=int, default=5,
             metavar="N"),
    DataFlag("--guide-min-fraction", "min_guide_fraction", "share of a cell's guide UMIs the top guide needs "
             "(default 0.5)", type=float, default=0.5, metavar="F"),
    DataFlag("--keep-guides-apart", "pool_guides", "one condition per guide instead of per target gene",
             type=None, default=True, invert=True),
    DataFlag("--escapees", "escapees", "knockout cells that escaped: keep (default, no classification), flag "
             "(classify Mixscape-style, keep all, report the efficiency) or drop (train on perturbed cells only)",
             default="keep", choices=("keep", "flag", "drop")),
    DataFlag("--escape-split-key", "escape_split_key", "obs column (e.g. replicate) within which control "
             "neighbours are found for the escape classification", metavar="COLUMN"),
    DataFlag("--min-perturbed-cells", "min_perturbed_cells", "with --escapees drop: a knockout with fewer "
             "perturbed cells is set aside (default 10)", type=int, default=10, metavar="N"),
    DataFlag("--strict-targets", "strict_targets", "refuse targets that are not among the genes (by default "
             "they become unmeasured regulators)", type=None, default=False),
)


def add_data_options(parser, *, required: bool = True) -> None:
    """The ``--data`` file and every option of :data:`DATA_FLAGS`, in one argument group."""
    parser.add_argument("--data", required=required, metavar="FILE.h5ad",
                        help="AnnData file (cells x genes, log-normalised expression or raw counts with --normalize)")
    group = parser.add_argument_group("data options")
    for f in DATA_FLAGS:
        if f.type is None:
            group.add_argument(f.flag, dest=f.keyword, action="store_false" if f.invert else "store_true",
                               help=f.help)
        else:
            group.add_argument(f.flag, dest=f.keyword, type=f.type, default=f.default, metavar=f.metavar,
                               choices=f.choices, help=f.help)


def data_options(args) -> dict:
    """The ``from_anndata`` keywords of parsed arguments (every flag of :data:`DATA_FLAGS`)."""
    return {f.keyword: getattr(args, f.keyword) for f in DATA_FLAGS}


def data_flags(options: dict) -> list[str]:
    """Command-line flags that load data with ``options`` (``from_anndata`` keywords; defaults
    are left out). The inverse of :func:`data_options`."""
    by_keyword = {f.keyword: f for f in DATA_FLAGS}
    unknown = sorted(set(options) - set(by_keyword))
    if unknown:
        raise PerturbODEError(f"Unknown data option(s): {', '.join(unknown)}", where="data options",
                              fix=f"Use: {', '.join(by_keyword)}")
    out: list[str] = []
    for key, value in options.items():
        f = by_keyword[key]
        if f.canonical is not None:
            value = f.canonical(value)
        if value == f.default:
            continue
        if f.type is None:
            out.append(f.flag)  # a switch: on when different from its default
        else:
            out += [f.flag, str(value)]
    return out


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


#: the network readings (perturbode_core.tools.grn.NETWORK_READINGS; listed here so that the
#: parser does not import torch)
READINGS = ("combined", "direct")


def add_reading_option(parser) -> None:
    """``--reading combined|direct``: how the edges of grn.csv are ranked."""
    parser.add_argument("--reading", choices=READINGS, default=READINGS[0],
                        help="how edges are ranked: combined (default: the percentile rank of |G| plus, weighted "
                             "by how well the model reproduces its training perturbations (0-1), the rank of its "
                             "simulated response of the target to the regulator's training perturbations; "
                             "'weight' is that score signed by G, and the G column is kept beside it) or direct "
                             "(|G| alone, weight = G). Models without training perturbations of single measured "
                             "genes, and checkpoints written before this reading existed, are read as direct")


def edge_selection(top_k, n_genes: int) -> int | None:
    """The ``top_k`` an edge table is cut to: the default rule when ``--top-k`` was not given,
    ``None`` (every pair) for ``all``, else the number given."""
    from perturbode_core.io.edges import default_top_k

    if top_k is None:
        return default_top_k(n_genes)
    return None if top_k == "all" else int(top_k)


def load_data(args):
    from perturbode_core.data.dataset import load

    return load(args.data, **data_options(args))


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
