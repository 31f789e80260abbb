"""``perturbode benchmark``: PerturbODE and every baseline on your data, one table."""

from __future__ import annotations

from perturbode_core.cli.common import add_data_options, read_config_file


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="train PerturbODE and the baselines and print one comparison table",
                       description="Train PerturbODE and the baselines (correlation, knockout z-score, GENIE3; "
                                   "no change, mean shift, linear, additive) on the same split. Writes "
                                   "DIR/table.csv (one row per method; held-out metrics prefixed heldout_), "
                                   "DIR/table.md and DIR/per_condition.csv. Network metrics need --truth.")
    add_data_options(p)
    p.add_argument("--truth", default=None, metavar="EDGES.csv", help="known network: source,target[,sign]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--holdout", default="0.2", metavar="N|FRACTION|G1,G2,...",
                       help="held-out perturbations: a number, a fraction (default 0.2) or names")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default 0)")
    p.add_argument("--epochs", type=int, default=None, help="PerturbODE training epochs (default 200)")
    p.add_argument("--config", default=None, metavar="FILE.json", help='JSON with "model" and "train" sections')
    p.add_argument("--no-genie3", action="store_true", help="skip the (slowest) GENIE3 baseline")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def parse_holdout(text: str):
    """'3' -> 3, '0.2' -> 0.2, 'A,B' -> ['A', 'B']."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        return [t.strip() for t in text.split(",") if t.strip()]
    return int(value) if value.is_integer() and value >= 1 else value


def run(args) -> int:
    from perturbode_core.tools.evaluate import run_benchmark, to_markdown, write_tables
    from perturbode_core.io.files import write_text_atomic
    from perturbode_core.io.edges import read_edge_list
    from perturbode_core.model import ModelConfig
    from perturbode_core.train import TrainConfig
    from perturbode_core.cli.common import load_data

    data = load_data(args)
    truth = read_edge_list(args.truth) if args.truth else None
    cfg = read_config_file(args.config) if args.config else {}
    train_cfg = TrainConfig.from_dict(cfg.get("train", {}))
    if args.epochs is not None:
        train_cfg = TrainConfig.from_dict({**train_cfg.to_dict(), "epochs": args.epochs})
    from perturbode_core.tools.evaluate import NETWORK_BASELINE_NAMES

    nets = tuple(n for n in NETWORK_BASELINE_NAMES if not (args.no_genie3 and n == "genie3"))
    result = run_benchmark(data, truth=truth, holdout=parse_holdout(args.holdout), seed=args.seed,
                           model_config=ModelConfig.from_dict(cfg.get("model", {})), train_config=train_cfg,
                           network_baselines=nets)
    csv_path, md_path = write_tables(result.table, args.out)
    if len(result.per_condition):
        write_text_atomic(f"{args.out}/per_condition.csv", result.per_condition.to_csv(index=False))
    print(to_markdown(result.table))
    print(f"held out: {', '.join(result.heldout) or 'none'}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {csv_path} and {md_path}")
    return 0
