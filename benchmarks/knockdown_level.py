"""What a knock-down without a dose leaves of its target: ``knockdown_level="auto"`` (the line the
training knock-downs show, and each training target's own level: the defaults) against the line
alone (``per_target_levels=False``) and against ``0.5`` (the library's default dose, the reading
before), on CRISPRi-like screens whose knock-downs come without a dose.

    python benchmarks/knockdown_level.py            # 4 strengths x 3 seeds x 3 settings (~6 min on 2 cores)
    python benchmarks/knockdown_level.py --jobs 1

The screens: SERGIO DS1 with every regulator knocked down (the accuracy benchmark's knock-down
design), labelled as a CRISPRi screen is (``perturbation`` = gene, ``intervention_type`` =
knockdown, no dose), simulated with 50 %, 80 % and 95 % of the target's transcription removed, and
with a share drawn per regulator from 30-95 % ("varied": CRISPRi guides differ in efficiency). The
simulator's data are log counts, so a loss of a share of the transcripts is a constant drop of the
measured level (slope about 1), not a share of it: the model clamps the measured level, which is
what ``auto`` reads. 20 % of the
knock-downs are held out (drawn with the seed); every other setting is the default. Network AUPR
against the known network beside the knockout z-score; held-out energy distance, Pearson of the
change and MSE of the mean beside the prediction baselines. Writes
benchmarks/results/knockdown_level.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("aupr", "heldout_energy", "heldout_pearson_delta", "heldout_mse_mean")
STRENGTHS = (0.5, 0.8, 0.95, "varied")  # the simulator's share of transcription removed
SEEDS = (0, 1, 2)
#: label -> ModelConfig options; the first is the default
SETTINGS = {
    "knockdown_level=auto": {},
    "knockdown_level=auto, per_target_levels=False": {"per_target_levels": False},
    "knockdown_level=0.5, per_target_levels=False (before)": {"knockdown_level": 0.5, "per_target_levels": False},
}


def screen(strength, seed: int):
    """A CRISPRi-like screen of SERGIO DS1: every regulator knocked down by ``strength`` (or, with
    ``"varied"``, by a share drawn per regulator from 30-95 %, as CRISPRi guides differ), no dose written."""
    import numpy as np

    from perturbode_core.datasets import registry
    from perturbode_core.datasets.screen_simulator import simulate_screen

    net = registry.get_network("sergio-ds1")
    if strength == "varied":
        shares = np.random.default_rng(1000 + seed).uniform(0.3, 0.95, len(net.regulators))
        conditions = [f"{g}:knockdown={f:.3f}" for g, f in zip(net.regulators, shares)]
    else:
        conditions = [f"{g}:knockdown" for g in net.regulators]
    adata = simulate_screen(net, conditions=conditions, cells_per_condition=100,
                            cell_types=["ct0", "ct1", "ct2"], intrinsic_noise=0.2, seed=seed,
                            knockdown_fraction=0.5 if strength == "varied" else strength)
    # written as a CRISPRi screen is: the gene, no dose
    adata.obs["perturbation"] = adata.obs["perturbation"].astype(str).str.split(":").str[0]
    return adata, net.truth_edges()


def run_one(job) -> pd.DataFrame:
    """One (strength, seed, setting): ``run_benchmark`` on the screen; one row per method."""
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.data.knockout_level import knockdown_rule
    from perturbode_core.model import ModelConfig
    from perturbode_core.tools.evaluate import run_benchmark

    strength, seed, setting = job
    adata, truth = screen(strength, seed)
    data = from_anndata(adata, source=f"ds1-knockdown-{strength}")
    res = run_benchmark(data, truth=truth, holdout=0.2, seed=seed, log=None,
                        network_baselines=("knockout_zscore", "knockout_zscore_control"),
                        model_config=ModelConfig(**SETTINGS[setting]))
    table = res.table[["method", *[m for m in METRICS if m in res.table]]].copy()
    table.insert(0, "strength", strength)
    table.insert(1, "seed", seed)
    slope, intercept = knockdown_rule(res.model.config)
    table.insert(2, "setting", setting)
    table.insert(3, "slope", slope)
    table.insert(4, "intercept", intercept)
    return table


def summarise(raw: pd.DataFrame) -> str:
    """Per strength, the means over seeds of PerturbODE under each setting beside the baselines."""
    model = raw[raw.method == "PerturbODE"].assign(method=lambda f: "PerturbODE, " + f.setting)
    base = raw[(raw.method != "PerturbODE") & (raw.setting == next(iter(SETTINGS)))]
    both = pd.concat([model, base], ignore_index=True)
    means = both.groupby(["strength", "method"], sort=False)[list(METRICS) + ["slope", "intercept"]].mean().reset_index()
    means.loc[~means.method.str.startswith("PerturbODE, knockdown_level"), ["slope", "intercept"]] = float("nan")

    def cell(v):
        return "-" if pd.isna(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))

    cols = ["strength", "method", "slope", "intercept", *METRICS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in means.iterrows():
        lines.append("| " + " | ".join(cell(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--raw", default=None, metavar="CSV", help="re-summarise a previous run's CSV")
    args = parser.parse_args(argv)
    out = ROOT / "benchmarks" / "results" / "knockdown_level.md"
    t0 = time.perf_counter()
    if args.raw:
        raw = pd.read_csv(args.raw, dtype={"setting": str})
    else:
        jobs = [(f, s, k) for f in STRENGTHS for s in SEEDS for k in SETTINGS]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            raw = pd.concat(list(pool.map(run_one, jobs)), ignore_index=True)
        raw.to_csv(out.with_suffix(".csv"), index=False)
    text = (f"# Knock-downs without a dose (CRISPRi-like screens of SERGIO DS1)\n\nMeans over {raw.seed.nunique()} "
            f"seeds; `slope`, `intercept`: the level an undosed knock-down leaves, slope x control level + "
            f"intercept (data units; `auto`: the line the training knock-downs show, means over seeds). AUPR and Pearson higher, energy and MSE lower are better; "
            f"{(time.perf_counter() - t0) / 60:.1f} min ({args.jobs} processes).\n\n{summarise(raw)}")
    print(text)
    if not args.raw:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
