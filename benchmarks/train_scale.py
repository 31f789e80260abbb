"""Issue 2's scale check: the CLI trains on 1,000 genes x 20,000 cells; time and peak memory.

    python benchmarks/train_scale.py [--genes 1000] [--cells 20000] [--epochs 1] [--backed] [--compile]

Writes a synthetic dataset (Gaussian expression, 100 knockout conditions) to a temporary .h5ad,
runs ``python -m perturbode_core train`` on it in a subprocess (default options), and reports
wall time and the peak resident memory of that process (ru_maxrss of the child). Writes
benchmarks/results/train_scale.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--cells", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="pass --compile to the CLI")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_scale.md"))
    args = ap.parse_args()

    import anndata as ad
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.cells, args.genes), dtype=np.float32) + 2.0
    genes = [f"G{i}" for i in range(args.genes)]
    names = np.array(["control"] + genes[:100])
    labels = names[rng.integers(0, len(names), args.cells)]
    adata = ad.AnnData(X, obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(args.cells)]),
                       var=pd.DataFrame(index=genes))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.h5ad"
        adata.write_h5ad(path)
        del adata, X
        cmd = [sys.executable, "-m", "perturbode_core", "train", "--data", str(path), "--out", str(Path(tmp) / "run"),
               "--epochs", str(args.epochs), "--quiet"] + (["--compile"] if args.compile else [])
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        data_gb = args.cells * args.genes * 4 / 2**30
    text = (f"# CLI training at scale\n\n| genes | cells | epochs | compile | wall s | peak RSS GB | X in float32 GB |\n"
            f"|---|---|---|---|---|---|---|\n| {args.genes} | {args.cells:,} | {args.epochs} | "
            f"{'yes' if args.compile else 'no'} | {wall:.0f} | {peak:.2f} | {data_gb:.2f} |\n\n"
            f"Default options (32 conditions + control x 64 cells per step, rk4, exact W2); epoch = one pass over "
            f"the 100 conditions (4 steps). Load average at the end: {os.getloadavg()[0]:.1f}.\n"
            f"{proc.stdout.strip()}\n")
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
