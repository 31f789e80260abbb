"""``perturbode dataset NAME [--out FILE.h5ad]``: write a built-in dataset (and its truth CSV)."""

from __future__ import annotations

from perturbode_core.errors import PerturbODEError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset", help="write a built-in dataset (or --list them)",
        description="Write a built-in dataset as .h5ad, with its ground-truth network beside it as "
                    "<stem>_edges.csv (source,target,sign) when it has one (real screens have none). Shipped "
                    "datasets are copied; the others are simulated, deterministically.")
    p.add_argument("name", nargs="?", help="dataset name (see --list)")
    p.add_argument("--out", help="output FILE.h5ad (default: NAME.h5ad in the current folder)")
    p.add_argument("--list", action="store_true", help="list the built-in datasets and exit")
    p.add_argument("--cells-per-condition", type=int, default=None,
                   help="cells per condition (default: the dataset's own; forces simulation)")
    p.add_argument("--seed", type=int, default=None, help="simulation seed (default: the dataset's own)")
    p.set_defaults(func=run)


def run(args) -> int:
    from perturbode_core.datasets import list_datasets, write_dataset

    if args.list:
        table = list_datasets()
        for row in table.itertuples():
            where = "shipped" if row.shipped else "simulated on demand"
            network = f"{row.edges:5d} edges" if row.kind == "simulated" else "real screen"
            print(f"{row.name:16s} {row.genes:4d} genes {network:11s} {row.conditions:3d} conditions "
                  f"{row.cells:6d} cells  ({where})\n{'':16s} {row.description}")
        return 0
    if not args.name:
        raise PerturbODEError("No dataset named", where="perturbode dataset",
                              fix="Give a NAME (see perturbode dataset --list)")
    out = args.out or f"{args.name}.h5ad"
    if args.cells_per_condition is not None and args.cells_per_condition < 1:
        raise PerturbODEError("--cells-per-condition must be at least 1", where="--cells-per-condition",
                              fix="Give e.g. 100")
    h5ad, edges = write_dataset(args.name, out, cells_per_condition=args.cells_per_condition, seed=args.seed)
    print(f"wrote {h5ad} and {edges}" if edges else f"wrote {h5ad} (a real screen: no known network)")
    return 0
