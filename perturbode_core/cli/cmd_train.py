"""``perturbode train``: fit a model and write RUN_DIR/model.pt, history.csv and grn.csv."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from perturbode_core.cli.common import add_data_options, load_data, read_config_file


def register(sub) -> None:
    p = sub.add_parser("train", help="train a PerturbODE model on an .h5ad file",
                       description="Train PerturbODE. Writes RUN_DIR/model.pt (checkpoint, updated every epoch, "
                                   "resumable), RUN_DIR/history.csv (losses per epoch) and RUN_DIR/grn.csv "
                                   "(ranked edges). Ctrl-C stops cleanly and keeps the best model.")
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder (created if needed)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 200)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--modules", type=int, default=None, help="number of gene modules K (default: from gene count)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of perturbations held out as validation signal for best-epoch selection (default 0)")
    p.add_argument("--holdout", default=None, metavar="G1,G2,...",
                   help="conditions never trained on (kept for evaluation)")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help='JSON with "model" and "train" option sections (see the README for all options)')
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/model.pt exactly where it stopped")
    p.add_argument("--top-k", type=int, default=None, help="edges written to grn.csv (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="cpu (default), cuda or cuda:N: where the model and minibatches live. Under torchrun "
                        "each process takes cuda:LOCAL_RANK")
    p.add_argument("--compile", action="store_true",
                   help="compile the solver step with torch.compile (~2x faster steps for 1,000+ genes after a "
                        "one-off compilation of tens of seconds)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from perturbode_core.train import distributed
    from perturbode_core.tools import grn
    from perturbode_core.io.files import write_text_atomic
    from perturbode_core.errors import PerturbODEError
    from perturbode_core.model.field import ModelConfig
    from perturbode_core.train.loop import TrainConfig, fit

    data = load_data(args)
    if not data.perturbations:
        raise PerturbODEError("The data have no perturbed conditions: every cell carries the control label",
                              where=f"{args.data}, obs[{args.perturbation_key!r}]",
                              fix="Training needs perturbed cells; check the perturbation column and --control")
    cfg = read_config_file(args.config) if args.config else {}
    model_cfg = ModelConfig.from_dict(cfg.get("model", {}))
    train_cfg = TrainConfig.from_dict(cfg.get("train", {}))
    if args.modules is not None:
        model_cfg = ModelConfig.from_dict({**model_cfg.to_dict(), "n_modules": args.modules})
    device = getattr(args, "device", None)
    if distributed.launched_by_torchrun():
        # data-parallel: torchrun started one process per device; join its process group
        device = distributed.init_from_env(device or train_cfg.device)
    overrides = {"epochs": args.epochs, "seed": args.seed, "val_fraction": args.val_fraction, "device": device,
                 "compile": True if getattr(args, "compile", False) else None}
    train_cfg = TrainConfig.from_dict({**train_cfg.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    train_conditions = None
    if args.holdout:
        held = [h.strip() for h in args.holdout.split(",") if h.strip()]
        unknown = [h for h in held if h not in set(data.perturbations)]
        if unknown:
            raise PerturbODEError(f"Held-out condition(s) not in the data: {', '.join(unknown)}", where=args.data,
                                  fix="Name conditions as they appear in the perturbation column")
        train_conditions = [c for c in data.conditions if c not in set(held)]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "model.pt"
    if args.resume and not ckpt_path.exists():
        raise PerturbODEError(f"Nothing to resume: {ckpt_path} does not exist", where=str(out),
                              fix="Run without --resume to start training")
    main = distributed.is_main()
    if not args.resume and ckpt_path.exists() and main:
        print(f"note: overwriting {ckpt_path} (use --resume to continue it)", file=sys.stderr)

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        stop.set()
        print("\nstopping after this step (the best model so far is kept)...", file=sys.stderr)

    signal.signal(signal.SIGINT, on_interrupt)
    bar = tqdm(total=train_cfg.epochs, unit="epoch", disable=args.quiet or not main, file=sys.stderr,
               dynamic_ncols=True)

    def callback(pr):
        bar.n = pr.epoch - 1 + pr.step / pr.steps_per_epoch
        bar.set_postfix(loss=f"{pr.loss:.4f}", val=f"{pr.val_loss:.4f}" if pr.val_loss is not None else "-",
                        refresh=False)
        bar.refresh()

    try:
        result = fit(data, model_config=model_cfg, train_config=train_cfg, train_conditions=train_conditions,
                     callback=callback, stop=stop, checkpoint_path=ckpt_path,
                     resume=ckpt_path if args.resume else None)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    if not main:  # rank 0 writes the outputs
        distributed.shutdown()
        return 0
    distributed.shutdown()
    write_text_atomic(out / "history.csv", result.history.to_csv(index=False))
    edges = grn.model_edges(result.model, top_k=args.top_k)
    grn.write_edges_csv(edges, out / "grn.csv")
    state = "stopped early" if result.stopped else "done"
    print(f"{state}: best epoch {result.best_epoch}; wrote {ckpt_path}, {out / 'history.csv'}, {out / 'grn.csv'} "
          f"({len(edges)} edges)")
    return 0
