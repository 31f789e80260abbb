"""Do seed ensembles predict held-out perturbations better than one run? The evidence behind
keeping one seed the default (``perturbode train --seeds N`` trains N).

    python benchmarks/seed_ensemble.py [--datasets a,b] [--seeds 0,1,2] [--members 3] [--jobs 2] [--raw CSV]

For every dataset and seed, on exactly the split of ``benchmarks/accuracy.py``, members with seeds
s, s+1, ... train with the defaults (the first is the accuracy benchmark's own run); after each
added member the consensus network (the mean of the members' signed scores, as ``--seeds`` writes
it) is scored by AUPR and the held-out conditions are predicted as ``perturbode simulate`` does for
a run with seeds (each start cell's end state averaged over members). Prints and writes
(benchmarks/results/seed_ensemble.md) the means per dataset for one member and for all, and in
how many runs the ensemble is better. ``--raw`` re-summarises a CSV written earlier. The default
datasets are the suite's small networks (up to 64 genes), where one run is cheapest and seeds
spread most.
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

METRICS = ["aupr", "heldout_energy", "heldout_pearson_delta", "heldout_mse_mean"]
LOWER_IS_BETTER = {"heldout_energy", "heldout_mse_mean"}
SMALL = ["myeloid", "boolode-hsc", "boolode-gsd", "cellcycle", "drugs"]


def run_one(job: tuple[str, int, int]) -> pd.DataFrame:
    """One (dataset, seed): members trained one after another; one row per ensemble size."""
    name, seed, n_members = job
    import torch

    torch.set_num_threads(1)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.data.splits import split_conditions
    from perturbode_core.datasets.suite import load_suite_dataset
    from perturbode_core.tools.evaluate import predict_conditions
    from perturbode_core.tools.grn import network_matrix
    from perturbode_core.tools.metrics import network_metrics
    from perturbode_core.tools.metrics.prediction_metrics import score_predictions
    from perturbode_core.train import TrainConfig, fit

    adata, truth = load_suite_dataset(name, seed=seed)
    data = from_anndata(adata, source=name)
    train, heldout = split_conditions(data, 0.2, seed=seed)
    heldout = [c for c in heldout if c != data.control]
    models, rows, t0 = [], [], time.perf_counter()
    for k in range(n_members):
        models.append(fit(data, train_config=TrainConfig(seed=seed + k), train_conditions=train).model)
        network = np.mean([network_matrix(m) for m in models], axis=0)
        net = network_metrics(network, truth, list(map(str, data.gene_names)))
        preds = [predict_conditions(m, data, heldout, seed=seed) for m in models]
        mean = {c: np.mean([p[c] for p in preds], axis=0) for c in heldout}
        s = score_predictions(mean, data, heldout, max_cells=500, seed=seed)
        s = s[s["condition"] == "mean"].iloc[0]
        rows.append({"dataset": name, "seed": seed, "members": k + 1, "aupr": net["aupr"],
                     "heldout_energy": s["energy"], "heldout_pearson_delta": s["pearson_delta"],
                     "heldout_mse_mean": s["mse_mean"], "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (and overall): the mean of each metric for one member and for all, and the
    runs where all members beat one."""
    top = int(raw["members"].max())
    ends = raw[raw["members"].isin([1, top])]
    rows = []
    for ds, g in list(ends.groupby("dataset", sort=False)) + [("mean", ends)]:
        one, many = g[g.members == 1].set_index(["dataset", "seed"]), g[g.members == top].set_index(["dataset", "seed"])
        row = {"dataset": ds, "runs": len(one)}
        for m in METRICS:
            better = (many[m] < one[m]) if m in LOWER_IS_BETTER else (many[m] > one[m])
            row[f"{m} (1)"], row[f"{m} ({top})"] = one[m].mean(), many[m].mean()
            row[f"{m} better"] = f"{int(better.sum())}/{len(one)}"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from perturbode_core.tools.evaluate import to_markdown

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(SMALL))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--raw", default=None, help="summarise this CSV (written by an earlier run) instead")
    args = parser.parse_args(argv)
    out = Path(__file__).parent / "results" / "seed_ensemble.md"
    t0 = time.perf_counter()
    if args.raw:
        raw = pd.read_csv(args.raw)
    else:
        jobs = [(n, int(s), args.members) for n in args.datasets.split(",") for s in args.seeds.split(",")]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            raw = pd.concat(list(pool.map(run_one, jobs)), ignore_index=True)
        raw.to_csv(out.with_suffix(".csv"), index=False)
    text = (f"# Seed ensembles against one run\n\nPerturbODE with default settings on the accuracy benchmark's "
            f"splits; members seeds s .. s+{int(raw.members.max()) - 1} (the first is the benchmark's run); "
            f"{raw.dataset.nunique()} datasets x {raw.seed.nunique()} seeds"
            + ("" if args.raw else f"; {(time.perf_counter() - t0) / 60:.1f} min") + ".\n\n"
            f"{to_markdown(summarise(raw))}")
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
