"""``perturbode train``: fit a model and write RUN_DIR/model.pt, history.csv and grn.csv."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from perturbode_core.cli.common import add_data_options, add_reading_option, edge_selection, load_data, read_config_file, top_k_option
from perturbode_core.data.knockout_level import describe_knockdown_level, describe_knockout_level, knockdown_rule, measured_knockdown
from perturbode_core.data.shared_response import describe_offset
from perturbode_core.io.edges import DEFAULT_TOP_K_RULE
from perturbode_core.model.model_config import N_MODULES_RULE
from perturbode_core.train.device import MATMUL_PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("train", help="train a PerturbODE model on an .h5ad file",
                       description="Train PerturbODE. Writes RUN_DIR/model.pt (checkpoint, updated every epoch, "
                                   "resumable), RUN_DIR/history.csv (losses per epoch) and RUN_DIR/grn.csv "
                                   "(the strongest edges, ranked; see --top-k, --matrix). Ctrl-C stops cleanly "
                                   "and keeps the best model.")
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder (created if needed)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the cell phase, after the means phase (default 50)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--modules", type=int, default=None, help=f"number of gene modules K ({N_MODULES_RULE})")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of perturbations held out as validation signal for best-epoch selection (default 0)")
    p.add_argument("--holdout", default=None, metavar="G1,G2,...",
                   help="conditions never trained on (kept for evaluation)")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help='JSON with "model" and "train" option sections (see the README for all options)')
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/model.pt exactly where it stopped, with its saved options "
                        "(--epochs may raise the run's length; options that conflict with the saved run are refused)")
    p.add_argument("--top-k", type=top_k_option, default=None, metavar="K|all",
                   help=f"edges written to grn.csv (default: the {DEFAULT_TOP_K_RULE}; 'all': every pair)")
    add_reading_option(p)
    p.add_argument("--matrix", action="store_true",
                   help="also write the whole network matrix as RUN_DIR/grn_matrix.npz (float32 G, the "
                        "reading's scores and gene names)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train N models that differ only in their seed (seeds --seed, +1, ...; default 1): "
                        "RUN_DIR/seed_S/ holds each, model.pt is the first, grn.csv the consensus (the mean of "
                        "the members' signed scores) with each edge's confidence (share of seeds keeping it "
                        "among their strongest)")
    p.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="with --seeds: train J seeds at once in separate processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto (default: a CUDA GPU when PyTorch sees one, else Apple MPS where it works, else "
                        "the CPU), cpu, cuda, cuda:N or mps: where the model and minibatches live. Under torchrun "
                        "each process takes cuda:LOCAL_RANK. A resumed run keeps its saved device unless given")
    p.add_argument("--matmul-precision", default=None, choices=MATMUL_PRECISIONS,
                   help="float32 matrix products: auto (default: TF32 on CUDA, true float32 on the CPU), "
                        "highest, high (TF32), medium (bfloat16 where supported)")
    p.add_argument("--no-auto-batch", action="store_true",
                   help="on a GPU, keep the default conditions and cells per step instead of sizing the step "
                        "to fill the GPU's memory (explicit values in --config always win)")
    p.add_argument("--compile", action="store_true",
                   help="compile the solver step with torch.compile (~1.5x faster CPU steps for 1,000+ genes "
                        "after a one-off compilation of tens of seconds)")
    p.set_defaults(func=run)


def _explicit_options(args, data) -> tuple[dict, dict, list[str] | None]:
    """The model options, training options and training conditions the user gave (nothing else:
    a default must never override what a resumed run saved)."""
    from perturbode_core.errors import PerturbODEError

    cfg = read_config_file(args.config) if args.config else {}
    model_opts, train_opts = dict(cfg.get("model", {})), dict(cfg.get("train", {}))
    if args.modules is not None:
        model_opts["n_modules"] = args.modules
    given = {"epochs": args.epochs, "seed": args.seed, "val_fraction": args.val_fraction, "device": args.device,
             "compile": True if args.compile else None, "matmul_precision": args.matmul_precision,
             "auto_batch": False if args.no_auto_batch else None}
    train_opts.update({k: v for k, v in given.items() if v is not None})
    train_conditions = None
    if args.holdout:
        held = [h.strip() for h in args.holdout.split(",") if h.strip()]
        unknown = [h for h in held if h not in set(data.perturbations)]
        if unknown:
            raise PerturbODEError(f"Held-out condition(s) not in the data: {', '.join(unknown)}", where=args.data,
                                  fix="Name conditions as they appear in the perturbation column")
        train_conditions = [c for c in data.conditions if c not in set(held)]
    return model_opts, train_opts, train_conditions


def run(args) -> int:
    import dataclasses

    from tqdm import tqdm

    from perturbode_core.errors import PerturbODEError
    from perturbode_core.io import edges as edge_io
    from perturbode_core.io.checkpoint import load_checkpoint
    from perturbode_core.io.files import copy_file_atomic, write_text_atomic
    from perturbode_core.model import ModelConfig
    from perturbode_core.tools import grn
    from perturbode_core.train import TrainConfig, distributed, fit
    from perturbode_core.train.device import describe_device, resolve_device
    from perturbode_core.train.ensemble import fit_ensemble

    if args.seeds < 1 or args.jobs < 1:
        raise PerturbODEError("--seeds and --jobs must be at least 1", where="train",
                              fix="e.g. --seeds 3 --jobs 2")
    if args.seeds > 1 and (args.resume or distributed.launched_by_torchrun()):
        raise PerturbODEError("--seeds trains several runs; it cannot resume one or run under torchrun",
                              where="train", fix="Resume a seed with --out RUN_DIR/seed_S --resume, or drop --seeds")
    data = load_data(args)
    if not data.perturbations:
        raise PerturbODEError("The data have no perturbed conditions: every cell carries the control label",
                              where=f"{args.data}, obs[{args.perturbation_key!r}]",
                              fix="Training needs perturbed cells; check the perturbation column and --control")
    model_opts, train_opts, train_conditions = _explicit_options(args, data)
    out = Path(args.out)
    ckpt_path = out / "model.pt"
    resume = None
    if args.resume:
        if not ckpt_path.exists():
            raise PerturbODEError(f"Nothing to resume: {ckpt_path} does not exist", where=str(out),
                                  fix="Run without --resume to start training")
        # loaded once; fit continues from it. The saved options stand; what the user gave on the
        # command line is laid over them and fit refuses what conflicts (naming it)
        resume = load_checkpoint(ckpt_path, genes=data.gene_names)
        saved = resume.settings
        model_cfg = ModelConfig.from_dict({**saved.model_config.to_dict(), **model_opts})
        train_cfg = TrainConfig.from_dict({**(saved.train_config.to_dict() if saved.train_config else {}),
                                           **train_opts})
    else:
        model_cfg, train_cfg = ModelConfig.from_dict(model_opts), TrainConfig.from_dict(train_opts)
    if distributed.launched_by_torchrun():
        # data-parallel: torchrun started one process per device; join its process group
        train_cfg = dataclasses.replace(train_cfg, device=distributed.init_from_env(resolve_device(train_cfg.device)))
    device = describe_device(resolve_device(train_cfg.device))  # refuses a GPU that is not there, before any work
    out.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()
    if main and not args.quiet:
        print(f"training on {device}", file=sys.stderr)
    if not args.resume and ckpt_path.exists() and main:
        print(f"note: overwriting {ckpt_path} (use --resume to continue it)", file=sys.stderr)

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        stop.set()
        print("\nstopping after this step (the best model so far is kept)...", file=sys.stderr)

    signal.signal(signal.SIGINT, on_interrupt)
    bar = tqdm(total=train_cfg.epochs, unit="epoch", disable=args.quiet or not main or args.jobs > 1,
               file=sys.stderr, dynamic_ncols=True)

    def callback(pr):
        if pr.phase == "means":  # phase one (epoch 0): the bar stays at 0 and says so
            bar.set_description_str("condition means", refresh=False)
            bar.n = 0
        else:
            bar.set_description_str("cells", refresh=False)
            bar.n = pr.epoch - 1 + pr.step / pr.steps_per_epoch
        bar.set_postfix(loss=f"{pr.loss:.4f}", val=f"{pr.val_loss:.4f}" if pr.val_loss is not None else "-",
                        refresh=False)
        bar.refresh()

    ensemble = None
    try:
        if args.seeds > 1:
            if main and not args.quiet:
                print(f"training {args.seeds} seeds" + (f", {args.jobs} at a time" if args.jobs > 1 else ""),
                      file=sys.stderr)
            ensemble = fit_ensemble(data, seeds=args.seeds, model_config=model_cfg, train_config=train_cfg,
                                    train_conditions=train_conditions, jobs=args.jobs, checkpoint_dir=out,
                                    callback=callback, stop=stop)
            result = ensemble.members[0]
            copy_file_atomic(out / f"seed_{result.train_config.seed}" / "model.pt", ckpt_path)
        else:
            result = fit(data, model_config=model_cfg, train_config=train_cfg, train_conditions=train_conditions,
                         callback=callback, stop=stop, checkpoint_path=ckpt_path, resume=resume)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    if not main:  # rank 0 writes the outputs
        distributed.shutdown()
        return 0
    distributed.shutdown()
    write_text_atomic(out / "history.csv", result.history.to_csv(index=False))
    top_k = edge_selection(args.top_k, result.model.n_genes)
    reading = grn.network_reading(result.model, args.reading)
    if ensemble is not None:
        edges = ensemble.edges(top_k=top_k, reading=args.reading)
    else:
        edges = grn.model_edges(result.model, reading=args.reading, top_k=top_k)
    edge_io.write_edges_csv(edges, out / "grn.csv")
    written = [str(ckpt_path), str(out / "history.csv"), f"{out / 'grn.csv'} ({len(edges):,} edges, {reading} reading"
               + (f", consensus of {len(ensemble.members)} seeds)" if ensemble is not None else ")")]
    if args.matrix:  # the whole matrices only when asked for (the scores' ranks are the costly part)
        if ensemble is not None:
            G, score = ensemble.network(reading="direct"), ensemble.network(reading=args.reading)
        else:
            G, score = grn.grn_matrix(result.model), grn.network_matrix(result.model, reading=args.reading)
        written.append(str(edge_io.write_matrix_npz(G, result.model.gene_names, out / "grn_matrix.npz",
                                                    score=None if reading == "direct" else score)))
    evidence = result.model.response_evidence
    if evidence is not None and not args.quiet:
        print(f"the model reproduces its {evidence.n_perturbations} training perturbations with median correlation "
              f"{evidence.fit:.2f} (simulated vs measured mean change): its simulated responses weigh "
              f"{evidence.fit:.2f} beside G in the {reading} reading", file=sys.stderr)
    if not args.quiet:
        print(describe_offset(result.model.config.perturbation_offset), file=sys.stderr)
        if result.model.config.knockout_level > 0:
            print(describe_knockout_level(result.model.config.knockout_level), file=sys.stderr)
        if measured_knockdown(result.model.config):
            print(describe_knockdown_level(knockdown_rule(result.model.config)), file=sys.stderr)
    state = "stopped early" if result.stopped else "done"
    for event in result.events:
        if event.startswith("auto_batch"):
            print(f"note: {event}", file=sys.stderr)
    print(f"{state} on {device}: best epoch {result.best_epoch}; "
          f"wrote {', '.join(written)}")
    return 0
