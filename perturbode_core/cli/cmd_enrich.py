"""``perturbode enrich``: over-representation of a gene-set library in every module, as CSV."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "enrich", help="gene-set enrichment of the modules of a trained model",
        description="Hypergeometric over-representation of each gene set in each module's genes (the "
                    "model's genes are the background), Benjamini-Hochberg FDR over all tests. Shipped "
                    "libraries: go_bp, hallmark (human), mouse_go_bp, yeast_goslim_bp; or any .gmt file. By "
                    "default the library of the genes' species (guessed from how they are written).")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="trained model checkpoint")
    p.add_argument("--library", default="auto", metavar="NAME|FILE.gmt",
                   help="auto (default: the library of the genes' species), go_bp, hallmark, mouse_go_bp, "
                        "yeast_goslim_bp, or a GMT file")
    p.add_argument("--out", required=True, metavar="CSV", help="output table (written atomically)")
    p.add_argument("--top-n", type=int, default=50, metavar="N", help="genes per module (default 50)")
    p.add_argument("--role", choices=("target", "regulator", "both"), default="target",
                   help="which genes make a module's list (default: its targets)")
    p.add_argument("--max-q", type=float, default=None, metavar="Q",
                   help="keep rows with q <= Q (default: every pair with overlap >= 1)")
    p.add_argument("--min-size", type=int, default=5, help="smallest set size within the model's genes (5)")
    p.add_argument("--max-size", type=int, default=500, help="largest set size within the model's genes (500)")
    p.add_argument("--show", type=int, default=5, metavar="K",
                   help="print the best term of the K strongest modules (default 5; 0: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perturbode_core.io.files import atomic_path
    from perturbode_core.io.checkpoint import load_model
    from perturbode_core.tools.enrichment import default_library, empty_result_message, enrich_modules, load_library
    from perturbode_core.tools.modules import strongest_modules, weights_from_model

    if args.library != "auto":
        load_library(args.library)  # fail on a bad library before loading the model
    w = weights_from_model(load_model(args.checkpoint))
    library = args.library
    if library == "auto":
        library, reason = default_library(w.gene_names)
        print(f"library: {reason}")
    res = enrich_modules(w, library, role=args.role, top_n=args.top_n, min_size=args.min_size,
                         max_size=args.max_size, max_q=args.max_q)
    with atomic_path(args.out) as tmp:
        res.to_csv(tmp, index=False)
    print(res.attrs["match"].summary())
    print(f"{res.attrs['n_tests']} tests ({w.n_modules} modules x {res.attrs['n_sets_tested']} sets); "
          f"wrote {len(res)} rows to {args.out}")
    empty = empty_result_message(res, 0.05)
    if empty:
        print(empty)
    for k in strongest_modules(w.A, w.B, w.alpha, args.show):
        rows = res[res["module"] == k]
        best = rows.iloc[0] if len(rows) else None
        text = f"{best['term']} (q = {best['qvalue']:.2g}, {best['overlap']}/{best['module_size']} genes)" \
            if best is not None else "no term"
        print(f"  M{k}: {text}")
    return 0
