"""``perturbode modules``: the membership table (regulators and targets of every module) as CSV."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "modules", help="export the gene modules (regulators and targets) of a trained model",
        description="Write one row per (module, role, gene): module id, role (regulator/target), gene, "
                    "signed weight, |weight|, sign and rank. Modules are the hidden units of the ODE.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="trained model checkpoint")
    p.add_argument("--out", required=True, metavar="CSV", help="output table (written atomically)")
    p.add_argument("--method", choices=("top_n", "share", "threshold"), default="top_n",
                   help="how to choose members (default: top_n)")
    p.add_argument("--top-n", type=int, default=20, metavar="N", help="genes per module and role (default 20)")
    p.add_argument("--share", type=float, default=0.5,
                   help="with --method share: fraction of the module's absolute weight to cover (default 0.5)")
    p.add_argument("--threshold", type=float, default=None,
                   help="with --method threshold: smallest absolute weight kept")
    p.add_argument("--role", choices=("both", "regulators", "targets"), default="both")
    p.add_argument("--summary", metavar="CSV", default=None,
                   help="also write one row per module (strength, top regulators and targets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perturbode_core.io.files import atomic_path
    from perturbode_core.io.checkpoint import load_model
    from perturbode_core.tools.modules import module_members, module_summary, weights_from_model

    w = weights_from_model(load_model(args.checkpoint))
    table = module_members(w.A, w.B, w.alpha, w.gene_names, role=args.role, method=args.method,
                           top_n=args.top_n, share=args.share, threshold=args.threshold)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"wrote {len(table)} memberships of {w.n_modules} modules over {w.n_genes} genes to {args.out}")
    if args.summary:
        summary = module_summary(w.A, w.B, w.alpha, w.gene_names)
        with atomic_path(args.summary) as tmp:
            summary.to_csv(tmp, index=False)
        print(f"wrote the module summary to {args.summary}")
    return 0
