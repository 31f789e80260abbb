"""What the default (combined) network reading costs: the model's simulated responses to its
training perturbations, computed once at the end of training, and the combined scores behind
grn.csv, against the direct reading (G alone) measured in the same run.

    python benchmarks/network_reading.py [--quick]

Two tables (each configuration in a fresh subprocess, so its peak memory, ru_maxrss, is its own;
random-initialised models: the arithmetic does not depend on the weights; synthetic data):

- evidence: ``response_evidence`` for a screen of P single-gene perturbations at p genes and the
  default module count: the start cells the work budget chose, seconds, and the ratio to one
  reference solve (the same start cells under one perturbation, timed just before).
- readings: ``model_edges`` with the default top-k in the combined reading against the direct one
  (``--reading direct``): seconds, peak memory and their ratio.

Writes benchmarks/results/network_reading.md (``--quick``: network_reading_quick.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic(p: int, n_pert: int, n_control: int = 400, per_condition: int = 20, seed: int = 0):
    """Control cells and ``n_pert`` knockouts of the first genes, Gaussian expression."""
    import numpy as np

    from perturbode_core.data.dataset import PerturbationData
    from perturbode_core.data.interventions import parse_spec

    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(p)]
    conds = ["control"] + genes[:n_pert]
    labels = np.repeat(conds, [n_control] + [per_condition] * n_pert)
    X = (2.0 + rng.standard_normal((len(labels), p))).astype(np.float32)
    return PerturbationData(X=X, gene_names=genes, labels=labels, control="control", conditions=conds,
                            interventions={c: parse_spec(c) for c in conds[1:]}, source="synthetic")


def child_evidence(p: int, n_pert: int) -> dict:
    import torch

    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.tools.response_evidence import response_evidence, start_cell_count

    torch.set_num_threads(os.cpu_count() or 1)
    data = synthetic(p, n_pert)
    model = PerturbODE.from_data(data, ModelConfig(), seed=0).eval()
    n = start_cell_count(n_pert, p, model.n_modules, len(data.cells_of("control")))
    start = data.X[data.cells_of("control")][:n]
    with torch.no_grad():
        model.simulate(start, [data.interventions[data.conditions[1]]])  # warm-up
        t = time.perf_counter()
        model.simulate(start, [data.interventions[data.conditions[1]]])
        ref = time.perf_counter() - t
    t = time.perf_counter()
    ev = response_evidence(model, data)
    sec = time.perf_counter() - t
    return {"p": p, "K": model.n_modules, "P": n_pert, "cells": n, "seconds": sec, "reference": ref,
            "regulators": len(ev.regulators), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child_reading(p: int, reading: str) -> dict:
    import numpy as np

    from perturbode_core.io.edges import default_top_k
    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.tools import grn
    from perturbode_core.tools.response_evidence import ResponseEvidence

    model = PerturbODE([f"G{i}" for i in range(p)], ModelConfig(), seed=0)
    n_reg = min(p, 1000)  # a screen of 1,000 regulators (or every gene)
    rng = np.random.default_rng(0)
    model.response_evidence = ResponseEvidence(regulators=np.arange(n_reg),
                                               response=np.abs(rng.standard_normal((p, n_reg))).astype(np.float32),
                                               fit=0.8, n_perturbations=n_reg)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    edges = grn.model_edges(model, reading=reading, top_k=default_top_k(p))
    sec = time.perf_counter() - t
    return {"p": p, "reading": reading, "edges": len(edges), "seconds": sec, "baseline_gb": before,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_child(kind: str, *args, timeout: int = 1800) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps([kind, *args])], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from perturbode_core.tools.evaluate import to_markdown

    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes only")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        print(json.dumps({"evidence": child_evidence, "reading": child_reading}[kind](*rest)))
        return 0
    t0 = time.perf_counter()
    shapes = [(100, 100), (1000, 100)] if args.quick else [(100, 100), (1000, 100), (2000, 100), (2000, 1000)]
    ev_rows = []
    for p, P in shapes:
        r = run_child("evidence", p, P)
        ev_rows.append({"genes": r["p"], "modules": r["K"], "perturbations": r["P"], "start cells": r["cells"],
                        "seconds": r["seconds"], "one solve (s)": r["reference"],
                        "x one solve": r["seconds"] / max(r["reference"], 1e-9), "peak memory (GB)": r["peak_gb"]})
        print(ev_rows[-1], flush=True)
    read_rows = []
    for p in ([1000, 2000] if args.quick else [1000, 2000, 5000]):
        direct, combined = run_child("reading", p, "direct"), run_child("reading", p, "combined")
        read_rows.append({"genes": p, "edges kept": combined["edges"], "direct (s)": direct["seconds"],
                          "combined (s)": combined["seconds"],
                          "x direct (time)": combined["seconds"] / max(direct["seconds"], 1e-9),
                          "direct peak (GB)": direct["peak_gb"], "combined peak (GB)": combined["peak_gb"]})
        print(read_rows[-1], flush=True)
    load = os.getloadavg()[0]
    text = (f"# The combined network reading: what it costs\n\n`python benchmarks/network_reading.py"
            f"{' --quick' if args.quick else ''}`; {os.cpu_count()} CPU threads, float32, load average {load:.1f} at "
            f"the end; {(time.perf_counter() - t0) / 60:.1f} min.\n\n"
            "## The model's simulated responses to its training perturbations (once, at the end of training)\n\n"
            "Start cells chosen by the work budget (`tools.response_evidence.start_cell_count`); `one solve`: the "
            "same start cells under one perturbation, timed in the same process just before.\n\n"
            f"{to_markdown(pd.DataFrame(ev_rows), digits=2)}\n"
            "## grn.csv's edges: the combined reading against G alone\n\n"
            "`model_edges` with the default top-k, a screen of 1,000 perturbed regulators (every gene below 1,000 "
            "genes); peak memory of the whole process (the model included).\n\n"
            f"{to_markdown(pd.DataFrame(read_rows), digits=2)}")
    print(text)
    out = ROOT / "benchmarks" / "results" / ("network_reading_quick.md" if args.quick else "network_reading.md")
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
