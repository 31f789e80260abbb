"""``perturbode grn``: export the network of a checkpoint as CSV, GraphML or a whole matrix (.npz)."""

from __future__ import annotations

from perturbode_core.cli.common import add_data_options, add_reading_option, edge_selection, load_data, top_k_option
from perturbode_core.io.edges import DEFAULT_TOP_K_RULE


def register(sub) -> None:
    p = sub.add_parser("grn", help="export the inferred network of a checkpoint",
                       description="Export the network of a trained model as ranked edges "
                                   "(source,target,weight,sign,rank,G; G = A diag(alpha) B, the direct effects; "
                                   "weight = the score of --reading). The format follows the file name: "
                                   ".csv or .graphml (edges), .npz (the whole matrices: float32 G, the scores and "
                                   "gene names, for large networks).")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR/model.pt", help="trained model")
    p.add_argument("--out", required=True, metavar="edges.csv|edges.graphml|matrix.npz", help="output file")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--top-k", type=top_k_option, default=None, metavar="K|all",
                     help=f"keep the k strongest edges (default: the {DEFAULT_TOP_K_RULE}; 'all': every pair)")
    sel.add_argument("--sparsity", type=float, default=None, help="keep this share of all possible edges (0-1)")
    sel.add_argument("--threshold", type=float, default=None,
                     help="keep edges with |weight| >= threshold (weight: the reading's score; 0-2 when combined)")
    add_reading_option(p)
    p.add_argument("--alpha", choices=("plain", "jacobian"), default="plain",
                   help="alpha_eff: plain alpha, or average Jacobian over the control cells of --data")
    add_data_options(p, required=False)  # --data: the control cells of --alpha jacobian
    p.set_defaults(func=run)


def run(args) -> int:
    from perturbode_core.io import edges as edge_io
    from perturbode_core.tools import grn
    from perturbode_core.io.checkpoint import check_genes, load_model
    from perturbode_core.errors import PerturbODEError

    model = load_model(args.checkpoint)
    cells = None
    if args.alpha == "jacobian":
        if not args.data:
            raise PerturbODEError("--alpha jacobian needs --data (its control cells)", where="grn",
                                  fix="Add --data FILE.h5ad, or use --alpha plain")
        data = load_data(args)
        check_genes(model, data.gene_names, where=args.data)
        cells = data.control_cells()
    reading = grn.network_reading(model, args.reading)
    if str(args.out).lower().endswith(".npz"):
        G = grn.grn_matrix(model, alpha_mode=args.alpha, cells=cells)
        score = None if reading == "direct" else grn.network_matrix(model, reading=reading, alpha_mode=args.alpha,
                                                                    cells=cells)
        edge_io.write_matrix_npz(G, model.gene_names, args.out, score=score)
        print(f"wrote the {model.n_genes} x {model.n_genes} network matrix to {args.out} ({reading} reading)")
        return 0
    given = args.sparsity is not None or args.threshold is not None
    edges = grn.model_edges(model, reading=reading, alpha_mode=args.alpha, cells=cells,
                            top_k=None if given else edge_selection(args.top_k, model.n_genes),
                            sparsity=args.sparsity, threshold=args.threshold)
    if str(args.out).lower().endswith(".graphml"):
        edge_io.write_graphml(edges, args.out, genes=model.gene_names)
    elif str(args.out).lower().endswith(".csv"):
        edge_io.write_edges_csv(edges, args.out)
    else:
        raise PerturbODEError(f"Unknown output format of {args.out}", where="--out",
                              fix="Name the file .csv, .graphml or .npz")
    print(f"wrote {len(edges):,} edges to {args.out} ({reading} reading)")
    return 0
