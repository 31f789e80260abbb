"""Accuracy benchmark: PerturbODE with its default settings beside every baseline, on screens of
several designs with known networks, over several seeds.

    python benchmarks/accuracy.py [--quick] [--datasets a,b] [--seeds 0,1,2] [--jobs 2]

For every dataset of :mod:`perturbode_core.datasets.suite` and every seed: the data are simulated
with that seed, 20 % of the perturbations are held out (drawn with that seed), PerturbODE trains
with the library's defaults on the rest, and the network baselines (knockout z-score against the
median profile and against the control, GENIE3, correlation) and the prediction baselines (no
change, mean shift, linear, additive) see exactly the same training conditions. Prints and writes
(benchmarks/results/accuracy.md, or quick_accuracy.md) one table of mean +- standard deviation over
seeds and a verdict per dataset. ``--quick`` runs the small datasets with one seed (under 10 minutes
on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

NETWORK = ["aupr", "auroc", "early_precision"]
HELDOUT = ["heldout_energy", "heldout_pearson_delta", "heldout_mse_mean"]
LOWER_IS_BETTER = {"heldout_energy", "heldout_mse_mean"}


def run_one(job: tuple[str, int]) -> pd.DataFrame:
    """Train and score one (dataset, seed); one thread per process so that jobs run side by side."""
    name, seed = job
    import torch

    torch.set_num_threads(1)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.datasets.suite import load_suite_dataset
    from perturbode_core.tools.evaluate import run_benchmark

    t0 = time.perf_counter()
    adata, truth = load_suite_dataset(name, seed=seed)
    data = from_anndata(adata, source=name)
    result = run_benchmark(data, truth=truth, holdout=0.2, seed=seed, log=None)
    table = result.table.assign(dataset=name, seed=seed, n_genes=data.n_genes,
                                n_perturbations=len(data.perturbations), total_seconds=time.perf_counter() - t0)
    return table


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sd over seeds of every metric, one row per (dataset, method)."""
    metrics = [c for c in NETWORK + HELDOUT + ["seconds"] if c in raw]
    rows = []
    for (ds, method), g in raw.groupby(["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": method, "seeds": len(g)}
        for m in metrics:
            v = g[m].astype(float).dropna()
            row[m] = "-" if v.empty else (f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(raw: pd.DataFrame, model: str = "PerturbODE") -> pd.DataFrame:
    """Per dataset: the model's mean against the best baseline's mean on each headline metric
    (other readings of the model itself, kind ``model reading``, are not baselines)."""
    rows = []
    for ds, g in raw[raw["kind"] != "model reading"].groupby("dataset", sort=False):
        means = g.groupby("method")[[c for c in ["aupr"] + HELDOUT if c in g]].mean()
        row = {"dataset": ds}
        for m in means.columns:
            base = means.drop(index=model)[m].dropna()
            if base.empty or pd.isna(means.loc[model, m]):
                continue
            best = base.idxmin() if m in LOWER_IS_BETTER else base.idxmax()
            mine = means.loc[model, m]
            win = mine <= base[best] if m in LOWER_IS_BETTER else mine >= base[best]
            row[m] = f"{'win' if win else 'loss'} {mine:.3f} vs {base[best]:.3f} ({best})"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from perturbode_core.datasets.suite import suite_names
    from perturbode_core.tools.evaluate import to_markdown

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: the whole suite)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true", help="the small datasets, one seed")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    names = args.datasets.split(",") if args.datasets else suite_names(quick=args.quick)
    seeds = [0] if args.quick and args.seeds == "0,1,2" else [int(s) for s in args.seeds.split(",")]
    jobs = [(n, s) for n in names for s in seeds]
    t0 = time.perf_counter()
    tables = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (name, seed), table in zip(jobs, pool.map(run_one, jobs)):
            tables.append(table)
            model = table[table.method == "PerturbODE"].iloc[0]
            print(f"{name} seed {seed}: {table.n_genes.iloc[0]} genes, AUPR {model.get('aupr', float('nan')):.3f}, "
                  f"held-out energy {model.get('heldout_energy', float('nan')):.3f} "
                  f"({table.total_seconds.iloc[0]:.0f} s)", flush=True)
    raw = pd.concat(tables, ignore_index=True)
    total = (time.perf_counter() - t0) / 60
    summary, wins = summarise(raw), verdict(raw)
    text = (f"# Accuracy benchmark{' (quick)' if args.quick else ''}\n\n"
            f"PerturbODE with default settings; {len(seeds)} seed(s) per dataset (data, split and training "
            f"seeded alike), 20 % of perturbations held out; {total:.1f} min on this machine "
            f"({args.jobs} processes).\n\n## Verdict (means over seeds; best baseline in brackets)\n\n"
            f"{to_markdown(wins)}\n## All methods (mean ± sd over seeds)\n\n{to_markdown(summary)}")
    print(text)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / \
        ("quick_accuracy.md" if args.quick else "accuracy.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw.to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
