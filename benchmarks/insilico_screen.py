"""In-silico screen benchmark: every single perturbation of the human-tf-atlas demo, ranked, on 2 cores.

    python benchmarks/insilico_screen.py [--cells 300] [--threads 2]

The screen (``perturbode_core.tools.insilico_screen.run_screen``) overexpresses each of the
atlas's 41 TFs from the control cells and ranks them by their effect on one gene (also as the
dashboard's "2-fold" overexpression, with each TF's strength calibrated first); the reference,
measured in the same run, is the same 41 perturbations simulated one at a time (one solve each),
which is what a page calling ``simulate`` in a loop would cost. Prints a Markdown table (seconds,
peak resident memory, ratio); not a test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=300, help="start cells (the dashboard's default subsample)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--readout", default="GATA1")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.datasets import demo_checkpoint_path, load_dataset
    from perturbode_core.io.checkpoint import load_checkpoint
    from perturbode_core.tools.insilico_screen import Readout, run_screen
    from perturbode_core.tools.intervention_units import calibrate_overexpression

    data = from_anndata(load_dataset("human-tf-atlas"))
    model = load_checkpoint(demo_checkpoint_path("human-tf-atlas")).model
    ctrl = data.control_cells()
    cells = ctrl[np.sort(np.random.default_rng(0).choice(len(ctrl), min(args.cells, len(ctrl)), replace=False))]
    perts = [f"{c}:overexpression" for c in data.perturbations]  # the atlas's 41 TFs
    readout = Readout("gene", args.readout)
    run_screen(model, cells[:8], perts[:2], readout=readout)  # warm-up (first solve allocates)

    t0 = time.perf_counter()
    result = run_screen(model, cells, perts, readout=readout, direction="either")
    screen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # what the dashboard runs for "overexpression, 2-fold": each TF's strength calibrated (batched), then the screen
    cal = calibrate_overexpression(model, cells, list(data.perturbations), 2.0)
    run_screen(model, cells, [[c.intervention] for c in cal], readout=readout, direction="either")
    fold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in perts:  # the reference: one solve per perturbation
        model.simulate(cells, ["control", p], [0.0, model.config.horizon])
    loop_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"human-tf-atlas demo: {data.n_genes} genes, {model.n_modules} modules, {len(cells)} start cells, "
          f"{args.threads} threads; readout {readout.label}")
    print("| what | perturbations | seconds | peak RSS (MB) | ratio to one-at-a-time |")
    print("|---|---|---|---|---|")
    print(f"| batched screen (run_screen) | {len(perts)} | {screen_s:.2f} | {peak:.0f} | {screen_s / loop_s:.2f} |")
    print(f"| batched screen, overexpression 2-fold (strengths calibrated first) | {len(perts)} | {fold_s:.2f} | "
          f"| {fold_s / loop_s:.2f} |")
    print(f"| one solve per perturbation | {len(perts)} | {loop_s:.2f} | | 1.00 |")
    print("\ntop 5:")
    print(result.table.head(5)[["rank", "perturbation", "effect", "z_effect"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
