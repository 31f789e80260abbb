"""Which reading of a trained model ranks true edges best? The evidence behind the default reading.

    python benchmarks/edge_readings.py [--quick] [--datasets a,b] [--seeds 0,1,2] [--jobs 2]

For every dataset of :mod:`perturbode_core.datasets.suite` and seed, PerturbODE trains with the
defaults on exactly the split of ``benchmarks/accuracy.py`` (20 % of perturbations held out, drawn
with the seed), and the same model is read as a network in several ways, each scored by AUPR
against the known network (no retraining; nothing here is chosen per dataset):

- ``G``: the model's direct effects ``A diag(alpha) B`` (the network's reading before the
  combined one became the default; ``--reading direct``);
- ``G, Jacobian alpha``: alpha times the mean sigma' over the control cells;
- ``G, perturbed first``: the edges out of regulators perturbed in training ranked before all
  others (only those are identified by an intervention);
- ``model response``: the model's own simulated response of each target to each training
  perturbation (the same intervention, from the control cells, in control-sd units): its total
  effects where the data have a perturbation;
- ``rank(G) + rank(response)``: the mean of the two percentile ranks (direct and total effects of
  the model agreeing);
- ``rank(G) + fit x rank(response)``: the same, the response's rank weighted by how well the model
  reproduces the measured training responses (the median correlation of simulated and observed
  mean change, clipped at 0; no ground truth, no tuned weight): the model's total effects trusted
  as far as they match the data. The default reading (``perturbode_core.tools.grn.network_matrix``,
  ``combined``);
- ``z-score``, ``z-score (control)``: the knockout z-score baselines, for reference;
- ``rank(G) + rank(z)``: the model ranked together with the measured response (the DREAM5
  "community" rule: a baseline stacked onto the model, shown to size that lever, not a reading of
  the model).

Prints and writes (benchmarks/results/edge_readings.md) the mean AUPR per dataset and, per reading,
the mean change against ``G`` and in how many runs it beats ``G``; and a second table that scores
``G`` and the z-scores only among the edges out of regulators perturbed in training (the edges an
intervention identifies) and, for the model, among the others: where a reading loses, this says
whether it ranks the perturbed regulators' targets worse or fills the top with edges out of
genes no intervention touched.
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

#: readings scored only among edges out of the regulators perturbed in training
RESTRICTED = ["G", "z-score", "z-score (control)"]
READINGS = ["G", "G, Jacobian alpha", "G, perturbed first", "model response", "rank(G) + rank(response)",
            "rank(G) + fit x rank(response)",
            "z-score", "z-score (control)", "rank(G) + rank(z)"]


def run_one(job: tuple[str, int]) -> dict:
    """Train one (dataset, seed) with the defaults and score every reading; one thread per process."""
    name, seed = job
    import torch

    torch.set_num_threads(1)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.datasets.suite import load_suite_dataset
    from perturbode_core.tools.baselines import NETWORK_BASELINES
    from perturbode_core.tools.evaluate import split_conditions
    from perturbode_core.tools.grn import grn_matrix, network_matrix, percentile_rank as percentile
    from perturbode_core.tools.metrics import network_metrics
    from perturbode_core.train import TrainConfig, fit

    adata, truth = load_suite_dataset(name, seed=seed)
    data = from_anndata(adata, source=name)
    train, _ = split_conditions(data, 0.2, seed=seed)  # the accuracy benchmark's split
    model = fit(data, train_config=TrainConfig(seed=seed), train_conditions=train).model
    genes = list(map(str, data.gene_names))
    G = grn_matrix(model)
    perturbed_in_training = data.perturbed_genes(train)
    perturbed = np.array([g in perturbed_in_training for g in genes])
    # the model's simulated responses to its training perturbations, kept by training (the
    # second half of the default reading, perturbode_core.tools.response_evidence)
    evidence = model.response_evidence
    R, fit = evidence.dense(data.n_genes), evidence.fit
    Z = NETWORK_BASELINES["knockout_zscore"](data, conditions=train, seed=seed)
    matrices = {
        "G": G,
        "G, Jacobian alpha": grn_matrix(model, alpha_mode="jacobian", cells=data.control_cells()),
        "G, perturbed first": np.abs(G) + (np.abs(G).max() + 1) * perturbed[None, :],
        "model response": R,
        "rank(G) + rank(response)": percentile(G) + percentile(R),
        "rank(G) + fit x rank(response)": network_matrix(model),  # the default reading
        "z-score": Z,
        "z-score (control)": NETWORK_BASELINES["knockout_zscore_control"](data, conditions=train, seed=seed),
        "rank(G) + rank(z)": percentile(G) + percentile(Z),
    }
    regulators, others = [g for g in genes if g in perturbed_in_training], [g for g in genes if g not in perturbed_in_training]
    row = {"dataset": name, "seed": seed, **{k: network_metrics(M, truth, genes)["aupr"] for k, M in matrices.items()}}
    row.update({f"{k}, perturbed sources": network_metrics(matrices[k], truth, genes, regulators=regulators)["aupr"]
                 for k in RESTRICTED})
    row["G, other sources"] = network_metrics(G, truth, genes, regulators=others)["aupr"] if others else np.nan
    return row


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
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = []
        for row in pool.map(run_one, jobs):
            rows.append(row)
            print(f"{row['dataset']} seed {row['seed']}: " + ", ".join(f"{k} {row[k]:.3f}" for k in READINGS), flush=True)
    raw = pd.DataFrame(rows)
    means = raw.groupby("dataset", sort=False)[READINGS].mean()
    means.loc["mean"] = means.mean()
    table = means.reset_index().rename(columns={"index": "dataset"})
    against = pd.DataFrame([{"reading": k, "mean change against G": (raw[k] - raw["G"]).mean(),
                             "runs better than G": f"{int((raw[k] > raw['G']).sum())}/{len(raw)}"}
                            for k in READINGS[1:]])
    restricted = [f"{k}, perturbed sources" for k in RESTRICTED] + ["G, other sources"]
    by_source = raw.groupby("dataset", sort=False)[restricted].mean()
    by_source.loc["mean"] = by_source.mean()
    by_source = by_source.reset_index().rename(columns={"index": "dataset"})
    text = (f"# Edge readings of the default model (AUPR)\n\n{len(seeds)} seed(s) per dataset, the accuracy "
            f"benchmark's splits; {(time.perf_counter() - t0) / 60:.1f} min ({args.jobs} processes). "
            "The default network is `rank(G) + fit x rank(response)` (the combined reading); `G` is "
            "`--reading direct`.\n\n"
            f"{to_markdown(table)}\n## Against G\n\n{to_markdown(against)}\n"
            "## By source: edges out of the regulators perturbed in training, and the rest\n\n"
            "AUPR among the edges out of the perturbed regulators only (`perturbed sources`), and, for G, among the "
            "edges out of every other gene (`G, other sources`; empty where every gene was perturbed).\n\n"
            f"{to_markdown(by_source)}")
    print(text)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / \
        ("quick_edge_readings.md" if args.quick else "edge_readings.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw.to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
