"""What a knockout leaves of its target's level, on the real screen: ``knockout_level="auto"`` (the
fraction the training knockouts left, with each training target's own: the defaults) against the
pooled fraction alone (``per_target_levels=False``) and ``0`` (the transcript removed, the reading
before), held-out knockouts of the built-in Papalexi et al. (2021) screen beside the
prediction baselines.

    python benchmarks/knockout_level.py            # 5 splits x 3 settings (~9 min on 2 cores)
    python benchmarks/knockout_level.py --jobs 1

Splits: the real-screen benchmark's two named held-out sets (the demo's no-signature knockouts;
the two strongest IFN-gamma pathway knockouts) and three seeded 20 % draws (the draw leaves the
knockouts of unmeasured targets in training). Every other setting is the default; the simulated
designs of ``benchmarks/accuracy.py`` are unaffected (their knockouts leave 0-1 % of the target,
read as 0). Writes benchmarks/results/knockout_level.md and .csv.
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

METRICS = ("heldout_energy", "heldout_pearson_delta", "heldout_mse_mean")
SPLITS = (("STAT2", "TNFRSF14", "UBE2L6"), ("JAK2", "STAT1"), 0, 1, 2)  # names, or the seed of a 20 % draw
#: label -> ModelConfig options; the first is the default
SETTINGS = {
    "knockout_level=auto": {},
    "knockout_level=auto, per_target_levels=False": {"per_target_levels": False},
    "knockout_level=0 (before)": {"knockout_level": 0.0},
}


def run_one(job) -> pd.DataFrame:
    """One (split, setting): ``run_benchmark`` with the dataset's load options; one row per method."""
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import perturbode_core as po
    from perturbode_core.datasets.registry import load_options, shipped_path
    from perturbode_core.model import ModelConfig
    from perturbode_core.tools.evaluate import run_benchmark

    split, setting = job
    data = po.load_data(str(shipped_path("papalexi2021")), **load_options("papalexi2021"))
    holdout, seed = (list(split), 0) if isinstance(split, tuple) else (0.2, int(split))
    res = run_benchmark(data, holdout=holdout, seed=seed, network_baselines=(), log=None,
                        model_config=ModelConfig(**SETTINGS[setting]))
    table = res.table[["method", *METRICS]].copy()
    table.insert(0, "split", ",".join(res.heldout))
    table.insert(1, "setting", setting)
    table.insert(2, "resolved", res.model.config.knockout_level)
    return table


def summarise(raw: pd.DataFrame) -> str:
    """Per split, PerturbODE under each setting beside the baselines; then the means over splits."""
    model = raw[raw.method == "PerturbODE"]
    base = raw[(raw.method != "PerturbODE") & (raw.setting == next(iter(SETTINGS)))]
    rows = []
    for split, part in model.groupby("split", sort=False):
        for _, r in part.iterrows():
            rows.append({"split": split, "method": f"PerturbODE, {r.setting}"
                         + (f" ({r.resolved:.2f})" if r.resolved > 0 else ""),
                         **{m: r[m] for m in METRICS}})
        for _, r in base[base.split == split].iterrows():
            rows.append({"split": split, "method": r.method, **{m: r[m] for m in METRICS}})
    per = pd.DataFrame(rows)
    means = per.assign(method=per.method.str.replace(r" \(\d\.\d\d\)", "", regex=True)) \
        .groupby("method", sort=False)[list(METRICS)].mean().reset_index()

    def md(frame):
        cols = list(frame.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, r in frame.iterrows():
            lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
        return "\n".join(lines)

    return f"## Means over the {per.split.nunique()} splits\n\n{md(means)}\n\n## Per split\n\n{md(per)}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--raw", default=None, metavar="CSV", help="re-summarise a previous run's CSV")
    args = parser.parse_args(argv)
    out = ROOT / "benchmarks" / "results" / "knockout_level.md"
    t0 = time.perf_counter()
    if args.raw:
        raw = pd.read_csv(args.raw, dtype={"setting": str})
    else:
        jobs = [(s, k) for s in SPLITS for k in SETTINGS]  # setting labels
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            raw = pd.concat(list(pool.map(run_one, jobs)), ignore_index=True)
        raw.to_csv(out.with_suffix(".csv"), index=False)
    text = (f"# Knockout level on the real screen (Papalexi 2021)\n\nHeld-out energy distance, Pearson of the "
            f"change and MSE of the mean (lower, higher, lower are better); {len(set(raw.split))} splits; "
            f"{(time.perf_counter() - t0) / 60:.1f} min ({args.jobs} processes).\n\n{summarise(raw)}")
    print(text)
    if not args.raw:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
