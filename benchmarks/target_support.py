"""Are held-out perturbations of weakly supported targets predicted less well? The evidence behind
the simulate command's note (``perturbode_core.tools.target_support``).

    python benchmarks/target_support.py [--datasets a,b] [--seeds 0,1,2] [--jobs 2] [--raw CSV]

For every dataset of :mod:`perturbode_core.datasets.suite` and seed, PerturbODE trains with the
defaults on exactly the split of ``benchmarks/accuracy.py``; each held-out condition gets the
support of its weakest target in the training screen (perturbed in training or not, and for the
others the largest change a training perturbation caused in it: the model's own evidence, no
ground truth) beside its held-out scores (Pearson of the change, energy distance over that of "no
change") for the model and the linear baseline. Prints and writes
(benchmarks/results/target_support.md) the mean scores per support level, overall, with the
targets not perturbed split by whether a training perturbation moved them by one control sd (a
threshold that turned out not to matter, so the note does not use one), and per dataset; the raw
rows as CSV. ``--raw`` re-summarises a CSV written earlier without training.
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

METHODS = ["PerturbODE", "linear", "no_change"]


def run_one(job: tuple[str, int]) -> pd.DataFrame:
    """Train one (dataset, seed) as the accuracy benchmark does; one row per held-out condition."""
    name, seed = job
    import torch

    torch.set_num_threads(1)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.datasets.suite import load_suite_dataset
    from perturbode_core.tools.evaluate import run_benchmark
    from perturbode_core.tools.target_support import weakest

    adata, truth = load_suite_dataset(name, seed=seed)
    data = from_anndata(adata, source=name)
    result = run_benchmark(data, truth=truth, holdout=0.2, seed=seed, log=None)
    scores = result.per_condition.set_index(["method", "condition"])
    rows = []
    for cond in result.heldout:
        if cond == data.control:
            continue
        least = weakest(result.model, data.interventions[cond])
        row = {"dataset": name, "seed": seed, "condition": cond, "support": least.level,
               "largest_change": least.largest_change}
        for method in METHODS:
            if (method, cond) in scores.index:
                row[f"{method}:pearson_delta"] = scores.loc[(method, cond), "pearson_delta"]
                row[f"{method}:energy"] = scores.loc[(method, cond), "energy"]
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(raw: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean held-out scores per group: the Pearson of the change (model, linear) and the energy
    distance over that of no change (model, linear), with the number of conditions."""
    d = raw.assign(**{f"{m} energy / no change": raw[f"{m}:energy"] / raw["no_change:energy"]
                      for m in ("PerturbODE", "linear")})
    cols = {"PerturbODE:pearson_delta": "PerturbODE Pearson", "linear:pearson_delta": "linear Pearson",
            "PerturbODE energy / no change": "PerturbODE energy / no change",
            "linear energy / no change": "linear energy / no change"}
    table = d.groupby(by, sort=False)[list(cols)].mean().rename(columns=cols)
    table.insert(0, "conditions", d.groupby(by, sort=False).size())
    return table.reset_index()


def main(argv=None) -> int:
    from perturbode_core.datasets.suite import suite_names
    from perturbode_core.tools.evaluate import to_markdown

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: the whole suite)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--raw", default=None, help="summarise this CSV (written by an earlier run) instead")
    args = parser.parse_args(argv)
    out = Path(__file__).parent / "results" / "target_support.md"
    t0 = time.perf_counter()
    if args.raw:
        raw = pd.read_csv(args.raw)
    else:
        names = args.datasets.split(",") if args.datasets else suite_names()
        jobs = [(n, int(s)) for n in names for s in args.seeds.split(",")]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            raw = pd.concat(list(pool.map(run_one, jobs)), ignore_index=True)
    minutes = (time.perf_counter() - t0) / 60
    moved = np.where(raw["largest_change"] >= 1.0, "moved >= 1 sd", "moved < 1 sd")
    raw["moved"] = np.where(raw["support"] == "not perturbed in training", moved, "-")
    text = (f"# Held-out predictions by the support of their targets\n\n"
            f"PerturbODE with default settings on the accuracy benchmark's splits ({raw.seed.nunique()} seeds, "
            f"{raw.dataset.nunique()} datasets, {len(raw)} held-out conditions"
            + ("" if args.raw else f"; {minutes:.1f} min") + "). A condition's support is that of its weakest "
            "target: perturbed in training (in another way: a knockout held out, its overexpression trained) or "
            "not; for the latter, the largest change a training perturbation caused in it (the model's simulated "
            "response, control sd). Energy is the distance to the observed cells over that of predicting no "
            "change (below 1: better than no change).\n\n## Overall\n\n"
            f"{to_markdown(summarise(raw, ['support']))}\n## Targets not perturbed, by how far training moved them\n\n"
            f"{to_markdown(summarise(raw[raw['moved'] != '-'], ['moved']))}\n## Per dataset\n\n"
            f"{to_markdown(summarise(raw, ['dataset', 'support']))}")
    print(text)
    if not args.raw:
        out.parent.mkdir(parents=True, exist_ok=True)
        raw.to_csv(out.with_suffix(".csv"), index=False)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
