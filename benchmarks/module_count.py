"""Does the default module count K still hold? The rule re-checked under the current training.

    python benchmarks/module_count.py [--datasets a,b] [--seeds 0,1] [--factors 0.5,1,2,4] [--jobs 2]
    python benchmarks/module_count.py --summarise rows.jsonl

For every dataset (default: the suite's designs with more than 64 genes, where the rule of
:func:`~perturbode_core.model.model_config.resolve_n_modules` ties K to the number of perturbed
genes) and seed, PerturbODE trains on exactly the split of ``benchmarks/accuracy.py`` (20 % of
perturbations held out, drawn with the seed) with K = factor x the default K, every other option at
its default, and is scored on the network (AUPR against the known edges) and on the held-out
perturbations (energy distance, Pearson of the change). A factor of 1 is the default itself.

The held-out columns are the signal a user has without a known network: the table shows whether
choosing K by them would also choose a good network. Each run is appended to a JSON-lines file as
it finishes (``--rows``), so a long sweep can be summarised at any point with ``--summarise``.
Writes ``benchmarks/results/module_count.md``; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

DEFAULT_DATASETS = ["sergio-ds1", "sergio-ds2", "human-tf-atlas", "bulk-ko", "knockdown", "partial"]
METRICS = ["aupr", "heldout_energy", "heldout_pearson_delta"]
RESULTS = Path(__file__).parent / "results"


def run_one(job: tuple[str, int, float]) -> dict:
    """Train one (dataset, seed, factor) and score it; one thread per process."""
    name, seed, factor = job
    import torch

    torch.set_num_threads(1)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.datasets.suite import load_suite_dataset
    from perturbode_core.model.model_config import ModelConfig, resolve_n_modules
    from perturbode_core.tools.evaluate import run_benchmark, split_conditions

    adata, truth = load_suite_dataset(name, seed=seed)
    data = from_anndata(adata, source=name)
    train, _ = split_conditions(data, 0.2, seed=seed)  # the accuracy benchmark's split
    default_k = resolve_n_modules(data.n_genes, len(data.perturbed_genes(train)))
    k = max(2, int(round(factor * default_k)))
    t0 = time.perf_counter()
    result = run_benchmark(data, truth=truth, holdout=0.2, seed=seed, model_config=ModelConfig(n_modules=k),
                           network_baselines=(), prediction_baselines=(), log=None)
    row = result.table[result.table.method == "PerturbODE"].iloc[0]
    return {"dataset": name, "seed": seed, "factor": factor, "K": k, "default_K": default_k,
            **{m: float(row[m]) for m in METRICS}, "seconds": round(time.perf_counter() - t0, 1)}


def summarise(rows: pd.DataFrame) -> str:
    """Markdown: mean per dataset and factor (K in brackets), then the mean over datasets."""
    rows = rows.assign(factor=rows.factor.astype(float))
    per = rows.groupby(["dataset", "factor"], sort=False).agg(
        K=("K", "first"), seeds=("seed", "nunique"), **{m: (m, "mean") for m in METRICS}).reset_index()
    overall = rows.groupby("factor")[METRICS].mean().reset_index()
    best = {m: overall.loc[overall[m].idxmin() if m == "heldout_energy" else overall[m].idxmax(), "factor"]
            for m in METRICS}
    from perturbode_core.tools.evaluate import to_markdown

    return ("# Module count K (factor x the default rule)\n\n"
            f"{rows.seed.nunique()} seed(s), the accuracy benchmark's splits; every other option at its default. "
            "Held-out energy: lower is better.\n\n"
            f"{to_markdown(per.round(3))}\n## Mean over datasets\n\n{to_markdown(overall.round(3))}\n"
            f"Best factor by AUPR: {best['aupr']:g}; by held-out energy: {best['heldout_energy']:g}; "
            f"by held-out Pearson of the change: {best['heldout_pearson_delta']:g}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--factors", default="0.5,1,2,4")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--rows", default=str(RESULTS / "module_count.jsonl"), help="JSON lines, appended per run")
    parser.add_argument("--summarise", metavar="ROWS", default=None, help="only summarise this JSON-lines file")
    parser.add_argument("--out", default=str(RESULTS / "module_count.md"))
    args = parser.parse_args(argv)
    rows_path = Path(args.summarise or args.rows)
    if args.summarise is None:
        jobs = [(d, int(s), float(f)) for d in args.datasets.split(",") for s in args.seeds.split(",")
                for f in args.factors.split(",")]
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows_path.write_text("")
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for row in pool.map(run_one, jobs):
                with rows_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    rows = pd.DataFrame([json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()])
    text = summarise(rows)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
