"""Speed benchmark (issue 7): GEMM reference, training steps, knockout latency, OT loss alone.

    python benchmarks/speed.py            # full table (~10 min on 2 cores)
    python benchmarks/speed.py --quick    # smoke run (~1 min)
    python benchmarks/speed.py --compile  # training rows also with torch.compile

Prints one Markdown table per section and writes them to benchmarks/results/speed.md.

Definitions
- Training config: TrainConfig defaults (rk4, step 0.5, horizon 10 -> 80 field evaluations per
  solve, exact W2) except ``batch_conditions=8`` and ``cells_per_condition=64``: 9 groups (8
  perturbations + control) x 64 cells = 576 simulated and 576 observed cells per step.
- Epoch: every cell of the dataset seen once as an observed cell, i.e. n_cells / 576 steps. The
  benchmark times a few steps and extrapolates (s/epoch = steps/epoch x median step time).
- FLOPs of a step: the vector field's matrix products, 2 forward (B z, A h) and 4 backward, each
  2 N p K, times 80 evaluations: 12 N p K x 80 (elementwise work, the OT loss and the optimizer
  are not counted: the ratio measures how much of the step is matrix arithmetic).
- GEMM reference: float32 matmul of the step's shape (N x p) @ (p x K), measured in the same run
  just before each configuration. Rates are given in CPU time (process_time) as well as wall
  time: other jobs share this machine's 2 cores, and CPU time is what contention distorts least.
- Data: synthetic Gaussian expression (data values do not change the arithmetic), 100
  knockout conditions; each configuration runs in a fresh subprocess so that its peak resident
  memory (ru_maxrss) is its own.
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

BATCH, CELLS_PER = 8, 64
EVALS = 80


def gemm_rate(N, p, K, reps=5):
    import torch

    a, b = torch.randn(N, p), torch.randn(p, K)
    a @ b
    best_w = best_c = float("inf")
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        a @ b
        best_w, best_c = min(best_w, time.perf_counter() - w), min(best_c, time.process_time() - c)
    f = 2 * N * p * K
    return f / best_w / 1e9, f / max(best_c, 1e-9) / 1e9


def synthetic_data(p, n_cells, n_cond=100, seed=0):
    import numpy as np

    from perturbode_core.data.dataset import PerturbationData
    from perturbode_core.data.interventions import parse_spec

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_cells, p), dtype=np.float32)
    X += 2.0
    n_cond = min(n_cond, p)
    genes = [f"G{i}" for i in range(p)]
    names = np.array(["control"] + genes[:n_cond])
    labels = names[rng.integers(0, n_cond + 1, n_cells)]
    conds = ["control"] + sorted(set(labels.tolist()) - {"control"})
    return PerturbationData(X=X, gene_names=genes, labels=labels, control="control", conditions=conds,
                            interventions={c: parse_spec(c) for c in conds[1:]}, source="synthetic")


def child_train(p, n_cells, steps, compile_, checkpoint_steps, batch=BATCH):
    """One configuration (runs in a subprocess): times `steps` steps after a first one."""
    import numpy as np

    from perturbode_core.model import ModelConfig, resolve_n_modules
    from perturbode_core.train import TrainConfig, fit

    t0 = time.perf_counter()
    data = synthetic_data(p, n_cells)
    t_data = time.perf_counter() - t0
    K = resolve_n_modules(p)
    N = (batch + 1) * CELLS_PER
    gw, gc = gemm_rate(N, p, K)
    stamps = []

    class Stop:
        def is_set(self):
            return len(stamps) >= steps + 1

    def cb(pr):
        stamps.append((time.perf_counter(), time.process_time()))

    fit(data, model_config=ModelConfig(checkpoint_steps=checkpoint_steps),
        train_config=TrainConfig(epochs=1, batch_conditions=batch, cells_per_condition=CELLS_PER, compile=compile_),
        callback=cb, stop=Stop())
    gw2, gc2 = gemm_rate(N, p, K)
    w = np.diff([s[0] for s in stamps])
    c = np.diff([s[1] for s in stamps])
    flops = 12 * N * p * K * EVALS
    return {"p": p, "K": K, "cells": n_cells, "N": N, "step_wall": float(np.median(w)), "step_cpu": float(np.median(c)),
            "gemm_wall": (gw + gw2) / 2, "gemm_cpu": (gc + gc2) / 2, "flops": flops, "data_s": t_data,
            "steps_per_epoch": n_cells / (batch * CELLS_PER),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child_latency(p, reps, precision):
    import numpy as np

    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.train.allocator import tune_allocator

    tune_allocator()
    m = PerturbODE([f"G{i}" for i in range(p)], ModelConfig(), seed=0)
    x = np.random.default_rng(0).standard_normal((1000, p)).astype(np.float32)
    m.simulate(x[:8], ["G1"], precision=precision)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        m.simulate(x, ["G1"], precision=precision)
        ts.append(time.perf_counter() - t)
    K = m.n_modules
    return {"p": p, "K": K, "precision": precision, "latency": min(ts), "gflop": 4 * 1000 * p * K * EVALS / 1e9}


def child_ot(G, n, p):
    import ot
    import torch

    from perturbode_core.train.ot_loss import exact_w2_batched, sinkhorn_divergence, squared_distances

    g = torch.Generator().manual_seed(0)
    x = torch.randn(G, n, p, generator=g, requires_grad=True)
    y = torch.randn(G, n, p, generator=g)

    def per_group_emd2():  # what the loss did before: one POT call (and autograd node) per group
        a = torch.full((n,), 1.0 / n)
        return torch.stack([ot.emd2(a, a, squared_distances(x[i], y[i])) for i in range(G)])

    out = {"G": G, "n": n, "p": p}
    for name, fn in [("exact_loop", per_group_emd2), ("exact_batched", lambda: exact_w2_batched(x, y)),
                     ("sinkhorn", lambda: sinkhorn_divergence(x, y))]:
        fn().sum().backward()
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            fn().sum().backward()
            ts.append(time.perf_counter() - t)
        out[name] = min(ts)
    return out


def run_child(kind, *args, timeout=900):
    cmd = [sys.executable, __file__, "--child", json.dumps([kind, *args])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes only (smoke test, ~1 min)")
    ap.add_argument("--compile", action="store_true", help="also time training with torch.compile (1,000 and 10,000 genes)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per configuration (after a first one)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.md"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        print(json.dumps({"train": child_train, "latency": child_latency, "ot": child_ot}[kind](*rest)))
        return

    import torch

    genes = [100, 1000] if args.quick else [100, 1000, 5000, 10000]
    cells = [10000, 20000] if args.quick else [10000, 100000]
    lat_genes = [100, 2000] if args.quick else [100, 2000, 10000]
    lines = ["# PerturbODE speed benchmark\n",
             f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} threads; "
             f"load average at start {os.getloadavg()[0]:.1f}; {'quick' if args.quick else 'full'} run; "
             f"config: rk4 step 0.5, horizon 10 ({EVALS} evaluations), exact W2, {BATCH}+1 groups x {CELLS_PER} cells "
             f"= {(BATCH + 1) * CELLS_PER} cells per step; epoch = every cell once as an observed cell.\n"]

    def emit(text):
        print(text, flush=True)
        lines.append(text)

    emit("## Training steps\n")
    emit("| genes | K | cells | compile | step s (wall) | step s (CPU) | GEMM GF/s (CPU) | step GF/s (CPU) | "
         "ratio (CPU) | ratio (wall) | cells/s | s/epoch | peak RSS GB |")
    emit("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    modes = [False, True] if args.compile else [False]
    for p in genes:
        for comp in modes:
            if comp and p not in (1000, 10000):  # the aims' sizes (compilation costs ~1 min each)
                continue
            for n in cells:
                r = run_child("train", p, n, args.steps, comp, False)
                rc = r["flops"] / r["step_cpu"] / 1e9
                rw = r["flops"] / r["step_wall"] / 1e9
                emit(f"| {p} | {r['K']} | {n:,} | {'yes' if comp else 'no'} | {r['step_wall']:.2f} | "
                     f"{r['step_cpu']:.2f} | {r['gemm_cpu']:.0f} | {rc:.0f} | {rc / r['gemm_cpu']:.2f} | "
                     f"{rw / r['gemm_wall']:.2f} | {BATCH * CELLS_PER / r['step_wall']:.0f} | "
                     f"{r['steps_per_epoch'] * r['step_wall']:.0f} | {r['peak_rss_gb']:.2f} |")

    emit("\n## Knockout simulation, 1,000 cells (one knockout, rk4 to the horizon, no gradient)\n")
    emit("| genes | K | precision | GFLOP | latency s |")
    emit("|---|---|---|---|---|")
    for p in lat_genes:
        for prec in ("float32", "bfloat16"):
            r = run_child("latency", p, 1 if p >= 10000 else 3, prec)
            emit(f"| {p} | {r['K']} | {prec} | {r['gflop']:.0f} | {r['latency']:.3f} |")

    emit("\n## OT loss alone (forward + backward), groups x 64 vs 64 cells\n")
    emit("| groups | genes | exact, per-group emd2 (before) s | exact, batched s | Sinkhorn (50 it) s |")
    emit("|---|---|---|---|---|")
    for G in (BATCH + 1, 33):
        for p in ([100, 1000] if args.quick else [100, 1000, 10000]):
            r = run_child("ot", G, CELLS_PER, p)
            emit(f"| {G} | {p} | {r['exact_loop']:.4f} | {r['exact_batched']:.4f} | {r['sinkhorn']:.4f} |")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
