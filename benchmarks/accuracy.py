"""Accuracy benchmark: PerturbODE against every baseline on each built-in dataset with a known network.

    python benchmarks/accuracy.py [--datasets myeloid,sergio-ds1] [--epochs N] [--seed S] [--quick]

Prints one table (dataset x method: AUPR, AUROC, early precision, held-out W2 / Pearson, time)
and writes a Markdown copy to benchmarks/results/accuracy.md. The same comparison for your own
data: ``python -m perturbode_core benchmark --data FILE.h5ad --truth EDGES.csv --out DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from perturbode_core.tools.evaluate import run_benchmark, to_markdown
from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import registry
from perturbode_core.train import TrainConfig

COLUMNS = ["dataset", "method", "aupr", "auroc", "aupr_ratio", "early_precision", "sign_accuracy",
           "heldout_w2", "heldout_pearson_delta", "heldout_pearson_delta_top", "seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="myeloid,sergio-ds1,human-tf-atlas,sergio-ds2")
    parser.add_argument("--epochs", type=int, default=None, help="PerturbODE epochs (default: the library's)")
    parser.add_argument("--holdout", type=float, default=0.2, help="share of perturbations held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 epochs, small datasets only (smoke run)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "accuracy.md"))
    args = parser.parse_args(argv)
    names = ["myeloid", "sergio-ds1"] if args.quick else [n.strip() for n in args.datasets.split(",")]
    epochs = 10 if args.quick else args.epochs
    cfg = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    tables = []
    t_all = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        adata = registry.load_dataset(name)
        data = from_anndata(adata, source=name)
        truth = registry.truth_edges(name)
        print(f"== {name}: {data.n_genes} genes, {len(data.perturbations)} perturbations, {data.n_cells} cells "
              f"(loaded in {time.perf_counter() - t0:.1f} s)", flush=True)
        result = run_benchmark(data, truth=truth, holdout=args.holdout, seed=args.seed, train_config=cfg,
                               log=lambda *a: print(*a, flush=True))
        tables.append(result.table.assign(dataset=name))
    table = pd.concat(tables, ignore_index=True)
    table = table[[c for c in COLUMNS if c in table.columns]]
    md = to_markdown(table)
    print()
    print(md)
    total = time.perf_counter() - t_all
    print(f"total {total / 60:.1f} min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Accuracy benchmark\n\nseed {args.seed}, held-out share {args.holdout}, "
                   f"PerturbODE epochs {cfg.epochs}; total {total / 60:.1f} min on this machine.\n\n{md}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
