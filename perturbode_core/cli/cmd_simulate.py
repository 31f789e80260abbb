"""``perturbode simulate``: predict cells under a perturbation and write them as .h5ad."""

from __future__ import annotations

from pathlib import Path

from perturbode_core.cli.common import add_data_options


def register(sub) -> None:
    p = sub.add_parser("simulate", help="simulate a perturbation from the control cells of a dataset",
                       description="Integrate the data's control cells under a perturbation and write the "
                                   "predicted cells (plus the unperturbed simulation) as .h5ad, and a per-gene "
                                   "effect table beside it (<out>_effects.csv).")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR/model.pt",
                   help="trained model; for a run trained with --seeds, every seed's prediction is averaged "
                        "(name RUN_DIR/seed_S/model.pt for one seed alone)")
    add_data_options(p)
    p.add_argument("--perturb", required=True, metavar="SPEC",
                   help="GENE[:knockout|:knockdown=F|:overexpression[=FOLD]|:shift=VALUE|:clamp=LEVEL]"
                        "[+GENE2...]; default type knockout. Quote it in the shell.")
    p.add_argument("--out", required=True, metavar="pred.h5ad", help="output AnnData")
    p.add_argument("--horizon", type=float, default=None, help="integration time (default: the model's)")
    p.add_argument("--max-cells", type=int, default=None, help="use at most this many control cells")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from perturbode_core.io.files import atomic_path, write_text_atomic
    from perturbode_core.io.checkpoint import check_genes, load_model
    from perturbode_core.tools.simulate import ensemble_effect_table, ensemble_predict_anndata, target_level_note
    from perturbode_core.tools.target_support import support_note
    from perturbode_core.train.ensemble import member_checkpoints
    from perturbode_core.cli.common import load_data

    paths = member_checkpoints(args.checkpoint)
    models = [load_model(path) for path in paths]
    data = load_data(args)
    for model in models:
        check_genes(model, data.gene_names, where=args.data)
    cells = data.control_cells()
    if args.max_cells is not None and len(cells) > args.max_cells:
        cells = cells[np.random.default_rng(0).choice(len(cells), args.max_cells, replace=False)]
    if len(models) > 1:
        print(f"averaging the predictions of the run's {len(models)} seeds ({', '.join(p.parent.name for p in paths)})")
    perturbations = ["control", args.perturb]
    adata = ensemble_predict_anndata(models, cells, perturbations, horizon=args.horizon)  # one model: its own
    # the members share their training data, so the first one's evidence speaks for them all
    note = support_note(models[0], args.perturb)
    adata.uns["perturbode"] = {"checkpoint": str(args.checkpoint), "perturbation": args.perturb,
                               "members": [str(p) for p in paths], "support_note": note or ""}
    with atomic_path(args.out) as tmp:
        adata.write_h5ad(tmp)
    table = ensemble_effect_table(models, cells, args.perturb, horizon=args.horizon)
    out = Path(args.out)
    effects = out.with_name(out.stem + "_effects.csv")
    write_text_atomic(effects, table.to_csv(index=False))
    print(f"wrote {adata.n_obs} simulated cells to {args.out} and the effect table to {effects}")
    top = table.head(5)
    for row in top.itertuples():
        print(f"  {row.gene}: {row.mean_change:+.3f}")
    for line in (note, target_level_note(models[0], args.perturb)):
        if line:
            print(f"note: {line}")
    return 0
