"""Speed benchmark (issues 7 and 14): GEMM reference, training steps, knockout latency, OT loss, network files.

    python benchmarks/speed.py                  # the CPU table (~10 min on 2 cores)
    python benchmarks/speed.py --quick          # smoke run (~3 min)
    python benchmarks/speed.py --compile        # training rows also with torch.compile
    python benchmarks/speed.py --device cuda    # the GPU table (~5 min on an H100; scripts/gpu_check.py runs it)

``--device auto`` picks what ``TrainConfig(device="auto")`` would. Prints one Markdown table per
section and writes them to benchmarks/results/speed.md (``--quick``: speed_quick.md; CUDA: speed_cuda.md).

Definitions
- Training config (CPU rows, and the GPU rows marked ``default``): TrainConfig defaults (rk4,
  step 0.5, horizon 10 -> 80 field evaluations per solve, exact W2) except
  ``batch_conditions=8`` and ``cells_per_condition=64``: 9 groups (8 perturbations + control) x
  64 cells = 576 simulated and 576 observed cells per step. GPU rows marked ``auto``: the
  TrainConfig defaults with the step sized to fill the GPU (``auto_batch``, see
  perturbode_core/train/autobatch.py), the learning rate scaled as it says.
- Epoch: every cell of the dataset seen once as an observed cell. The benchmark times a few steps
  and extrapolates: s/epoch = cells / (observed cells per second of the timed steps). Reading rows
  of a bigger matrix costs the same per row, so 1M cells need no 1M-cell matrix in memory.
- FLOPs of a step: the vector field's matrix products, 2 forward (B z, A h) and 4 backward, each
  2 N p K, times 80 evaluations: 12 N p K x 80 (elementwise work, the OT loss and the optimizer
  are not counted: the ratio measures how much of the step is matrix arithmetic).
- GEMM reference: the matmul of the step's shape (N x p) @ (p x K), measured in the same run (on
  the CPU just before each configuration, in float32; on a GPU in float32 and in TF32, the ratio
  taken against the rate at the row's own precision, and also against TF32). CPU rates are given
  in CPU time (process_time) as well as wall time: other jobs share this machine's 2 cores, and
  CPU time is what contention distorts least.
- Compile rows: timed after a warm-up of one whole epoch (every step shape compiled), with the
  number of graphs built during the timed steps (0 = no recompilation).
- Data: synthetic Gaussian expression (data values do not change the arithmetic), 100 knockout
  conditions on the CPU, 200 on a GPU; each configuration runs in a fresh subprocess so that its
  peak memory (ru_maxrss; on a GPU torch.cuda.max_memory_allocated) is its own.
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
    warm = 2 if compile_ else 1  # compiled: step 1 builds the graphs, step 2 is the first warm one

    class Stop:
        def is_set(self):
            return len(stamps) >= steps + warm

    def cb(pr):
        stamps.append((time.perf_counter(), time.process_time()))

    fit(data, model_config=ModelConfig(checkpoint_steps=checkpoint_steps),
        train_config=TrainConfig(epochs=1, batch_conditions=batch, cells_per_condition=CELLS_PER, compile=compile_,
                                 device="cpu"),
        callback=cb, stop=Stop())
    gw2, gc2 = gemm_rate(N, p, K)
    w = np.diff([s[0] for s in stamps])[warm - 1:]
    c = np.diff([s[1] for s in stamps])[warm - 1:]
    flops = 12 * N * p * K * EVALS
    return {"p": p, "K": K, "cells": n_cells, "N": N, "step_wall": float(np.median(w)), "step_cpu": float(np.median(c)),
            "gemm_wall": (gw + gw2) / 2, "gemm_cpu": (gc + gc2) / 2, "flops": flops, "data_s": t_data,
            "steps_per_epoch": n_cells / (batch * CELLS_PER),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child_latency(p, reps, precision, device="cpu"):
    """One knockout of 1,000 cells. ``precision``: float32, tf32 (float32 with TF32 products),
    bfloat16, or preview (what the Simulate page's quick preview runs)."""
    import numpy as np
    import torch

    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.tools import simulate
    from perturbode_core.train.allocator import tune_allocator
    from perturbode_core.train.device import matmul_precision

    tune_allocator()
    m = PerturbODE([f"G{i}" for i in range(p)], ModelConfig(), control_level=np.full(p, 2.0), seed=0).to(device)
    x = (2 + 0.5 * np.random.default_rng(0).standard_normal((1000, p))).astype(np.float32)
    if precision == "preview":
        def run(cells):
            return simulate.trajectories(m, cells, ["G1"], n_times=2, preview=True)["states"]
    else:
        def run(cells):
            return m.simulate(cells, ["G1"], precision="bfloat16" if precision == "bfloat16" else "float32")
    with matmul_precision("high" if precision == "tf32" else "highest", device):
        run(x[:8])
        run(x)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            run(x)  # ends with a copy to host memory: the latency a caller sees
            ts.append(time.perf_counter() - t)
    K = m.n_modules
    cells = min(1000, simulate.preview_cell_count(p, K, simulate.preview_precision(m))) if precision == "preview" else 1000
    label = f"preview ({cells} cells, {simulate.preview_precision(m)})" if precision == "preview" else precision
    return {"p": p, "K": K, "precision": label, "latency": min(ts), "gflop": 4 * cells * p * K * EVALS / 1e9}


def child_network_files(p, write_all):
    """grn.csv with every ordered pair (what train wrote before), with the default top edges, and
    the whole matrix as .npz: rows, MB and seconds (selection and writing)."""
    import tempfile

    from perturbode_core.io import edges as edge_io
    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.tools import grn

    m = PerturbODE([f"G{i}" for i in range(p)], ModelConfig(), seed=0)
    G = grn.grn_matrix(m)
    out = {"p": p, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, k in ([("all pairs (before)", None)] if write_all else []) + \
                       [(f"default top {edge_io.default_top_k(p):,}", edge_io.default_top_k(p))]:
            t = time.perf_counter()
            table = edge_io.edge_table(G, m.gene_names, top_k=k)
            edge_io.write_edges_csv(table, Path(tmp) / "grn.csv")
            out["rows"][name] = (len(table), (Path(tmp) / "grn.csv").stat().st_size / 1e6, time.perf_counter() - t)
        t = time.perf_counter()
        edge_io.write_matrix_npz(G, m.gene_names, Path(tmp) / "grn_matrix.npz")
        out["rows"]["whole matrix .npz (float32)"] = (p * p, (Path(tmp) / "grn_matrix.npz").stat().st_size / 1e6,
                                                      time.perf_counter() - t)
    return out


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def device_gemm_rate(N, p, K, precision, device, reps=20):
    """GFLOP/s of (N x p) @ (p x K) on ``device`` at a float32 matmul precision (highest; high = TF32)."""
    import torch

    from perturbode_core.train.device import matmul_precision

    a, b = torch.randn(N, p, device=device), torch.randn(p, K, device=device)
    with matmul_precision(precision, device):
        for _ in range(3):
            a @ b
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        seconds = (time.perf_counter() - t) / reps
    return 2 * N * p * K / seconds / 1e9


def _peak_gb(device) -> float:
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child_train_gpu(p, n_cells, n_cond, steps, compile_, precision, mode, device="cuda"):
    """One GPU configuration: ``mode`` default (8 + 1 groups x 64 cells) or auto (sized to fill the
    GPU); ``precision`` highest (float32) or high (TF32). Timed after a warm-up (one step; with
    compile, one whole epoch so that every step shape is compiled). ``device="cpu"`` runs the same
    code on the CPU (a dry run of the script where no GPU is present)."""
    import dataclasses

    import numpy as np
    import torch
    from torch._dynamo.utils import counters

    from perturbode_core.model import ModelConfig
    from perturbode_core.train import TrainConfig, fit

    data = synthetic_data(p, n_cells, n_cond)
    n_pert = len(data.conditions) - 1
    group = int(np.median([len(data.cells_of(c)) for c in data.conditions[1:]]))
    cfg = TrainConfig(epochs=100) if mode == "auto" else \
        TrainConfig(epochs=100, batch_conditions=BATCH, cells_per_condition=CELLS_PER, auto_batch=False)
    cfg = dataclasses.replace(cfg, device=device, compile=compile_, matmul_precision=precision)
    stamps, warm = [], {}

    class Stop:
        def is_set(self):
            return "n" in warm and len(stamps) >= warm["n"] + steps

    def cb(pr):
        _sync(device)
        stamps.append((time.perf_counter(), pr.step, pr.steps_per_epoch, counters["stats"]["unique_graphs"]))
        warm.setdefault("n", pr.steps_per_epoch + 1 if compile_ else 1)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = fit(data, model_config=ModelConfig(), train_config=cfg, callback=cb, stop=Stop())
    eff = result.train_config
    B, c, K = eff.batch_conditions, eff.cells_per_condition, result.model.n_modules
    seconds = flops = observed = 0.0
    for prev, cur in zip(stamps[warm["n"] - 1:], stamps[warm["n"]:]):
        step, spe = cur[1], cur[2]
        conds = B if step < spe else n_pert - B * (spe - 1)  # the last step of an epoch takes the rest
        seconds += cur[0] - prev[0]
        flops += 12 * (conds + 1) * c * p * K * EVALS
        observed += conds * min(c, group)
    N = (B + 1) * c
    return {"p": p, "K": K, "mode": mode, "precision": precision, "compile": compile_, "B": B, "c": c, "N": N,
            "lr": eff.learning_rate, "step_s": seconds / steps, "gflops": flops / seconds / 1e9,
            "cells_per_s": observed / seconds, "warmup_s": stamps[warm["n"] - 1][0] - t0,
            "graphs_after_warmup": stamps[-1][3] - stamps[warm["n"] - 1][3],
            "gemm_fp32": device_gemm_rate(N, p, K, "highest", device),
            "gemm_tf32": device_gemm_rate(N, p, K, "high", device), "peak_gb": _peak_gb(device)}


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
    ap.add_argument("--compile", action="store_true",
                    help="also time training with torch.compile (1,000 and 10,000 genes)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per configuration (after a first one)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: what training would use)")
    ap.add_argument("--gpu-form", action="store_true",
                    help="the GPU table's code on any device (with --device cpu --genes 40: a dry run of it)")
    ap.add_argument("--genes", type=int, nargs="+", default=None, help="gene counts (overrides the defaults)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="GPU form: a Unix time after which rows are listed as skipped, not run")
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/speed[_quick|_cuda].md)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        print(json.dumps({"train": child_train, "latency": child_latency, "ot": child_ot, "files": child_network_files,
                          "train_gpu": child_train_gpu}[kind](*rest)))
        return

    from perturbode_core.train.device import resolve_device

    device = resolve_device(args.device)
    if device.startswith("cuda") or args.gpu_form:
        return gpu_tables(args, device)

    import torch

    genes = args.genes or ([100, 1000] if args.quick else [100, 1000, 5000, 10000])
    cells = [10000, 20000] if args.quick else [10000, 100000]
    lat_genes = args.genes or ([100, 2000] if args.quick else [100, 2000, 10000])
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
        for prec in ("float32", "bfloat16", "preview"):
            r = run_child("latency", p, 1 if p >= 10000 else 3, prec)
            emit(f"| {p} | {r['K']} | {r['precision']} | {r['gflop']:.0f} | {r['latency']:.3f} |")

    emit("\n## Network files of a 2,000-gene model (edge selection + writing)\n")
    emit("| genes | file | rows | MB | seconds |")
    emit("|---|---|---|---|---|")
    for p, every in ([(2000, True)] if args.quick else [(2000, True), (10000, False)]):
        r = run_child("files", p, every)
        for name, (rows, mb, sec) in r["rows"].items():
            emit(f"| {p:,} | {name} | {rows:,} | {mb:.1f} | {sec:.2f} |")

    emit("\n## OT loss alone (forward + backward), groups x 64 vs 64 cells\n")
    emit("| groups | genes | exact, per-group emd2 (before) s | exact, batched s | Sinkhorn (50 it) s |")
    emit("|---|---|---|---|---|")
    for G in (BATCH + 1, 33):
        for p in ([100, 1000] if args.quick else [100, 1000, 10000]):
            r = run_child("ot", G, CELLS_PER, p)
            emit(f"| {G} | {p} | {r['exact_loop']:.4f} | {r['exact_batched']:.4f} | {r['sinkhorn']:.4f} |")

    out = Path(args.out or ROOT / "benchmarks" / "results" / ("speed_quick.md" if args.quick else "speed.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


def gpu_tables(args, device="cuda"):
    """The GPU form of the table: knockout latency; training steps at the default and the auto-sized
    step, float32 and TF32, eager and compiled, against the card's GEMM rate. Rows run in order of
    importance (10,000 genes first) and those that would run past ``--deadline`` are listed as
    skipped. ``device="cpu"`` (``--gpu-form --device cpu``): the same code on the CPU, a dry run.
    Writes the table (.md) and its rows (.json, read by scripts/gpu_check.py)."""
    import torch

    from perturbode_core.train.device import describe_device

    genes = args.genes or ([1000] if args.quick else [10000, 1000])
    lat_genes = args.genes or ([2000] if args.quick else [2000, 10000])
    # the headline first: the auto-sized TF32 step, then compiled, then the references
    rows = [("auto", "high", False), ("auto", "high", True), ("default", "highest", False),
            ("default", "high", False), ("auto", "highest", False)]
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"speed_{'cuda' if device.startswith('cuda') else 'gpu_form_cpu'}.md")
    lines = ["# PerturbODE speed benchmark on a GPU\n",
             f"torch {torch.__version__}, {describe_device(device)}; {'quick' if args.quick else 'full'} run; "
             f"rk4 step 0.5, horizon 10 ({EVALS} evaluations), exact W2; default step = {BATCH}+1 groups x "
             f"{CELLS_PER} cells; auto = sized by auto_batch (TrainConfig defaults otherwise); 200 knockout "
             "conditions x ~100 cells; epoch = every cell once as an observed cell; TFLOP/s count the field's "
             "matrix products only.\n"]
    results = []

    def emit(text):
        print(text, flush=True)
        lines.append(text)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")  # kept current: a run cut short leaves its rows
        out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")

    def left() -> float:
        return (args.deadline - time.time()) if args.deadline else 600.0

    emit("## Knockout simulation, 1,000 cells (one knockout, rk4 to the horizon; latency includes the copy "
         "back to host memory)\n")
    emit("| genes | K | precision | GFLOP | latency s |")
    emit("|---|---|---|---|---|")
    for p in lat_genes:
        for prec in ("float32", "tf32", "bfloat16", "preview"):
            if left() < 30:
                emit(f"| {p:,} | | {prec} | | skipped (time) |")
                continue
            try:
                r = run_child("latency", p, 5, prec, device, timeout=min(600, left()))
            except Exception as exc:  # report it and go on to the training rows
                emit(f"| {p:,} | | {prec} | | failed: {str(exc).strip().splitlines()[-1][:150]} |")
                continue
            results.append(r)
            emit(f"| {p:,} | {r['K']} | {r['precision']} | {r['gflop']:.0f} | {r['latency']:.4f} |")

    emit("\n## Training steps\n")
    emit("| genes | K | step | products | compile | groups x cells | lr | step s | step TFLOP/s | "
         "GEMM fp32 TFLOP/s | GEMM TF32 TFLOP/s | ratio (own precision) | ratio (TF32) | cells/s | "
         "s/epoch 100k | s/epoch 1M | peak memory GB | warm-up s | graphs after warm-up |")
    emit("|" + "---|" * 19)
    for p in genes:
        for mode, prec, comp in rows:
            name = f"| {p:,} | | {mode} | {'TF32' if prec == 'high' else 'fp32'} | {'yes' if comp else 'no'} |"
            if comp and args.quick and not args.compile:
                continue
            if left() < (150 if comp else 45):
                emit(f"{name} skipped (time) |")
                continue
            try:
                r = run_child("train_gpu", p, 201 * 100, 200, args.steps + 1, comp, prec, mode, device,
                              timeout=min(600, left()))
            except Exception as exc:  # one failed configuration must not hide the others' numbers
                emit(f"{name} failed: {str(exc).strip().splitlines()[-1][:150]} |")
                continue
            results.append(r)
            own = r["gemm_tf32"] if prec == "high" else r["gemm_fp32"]
            emit(f"| {p:,} | {r['K']} | {mode} | {'TF32' if prec == 'high' else 'fp32'} | "
                 f"{'yes' if comp else 'no'} | {r['B'] + 1} x {r['c']} | {r['lr']:.4g} | {r['step_s']:.3f} | "
                 f"{r['gflops'] / 1e3:.2f} | {r['gemm_fp32'] / 1e3:.2f} | {r['gemm_tf32'] / 1e3:.2f} | "
                 f"{r['gflops'] / own:.2f} | {r['gflops'] / r['gemm_tf32']:.2f} | {r['cells_per_s']:,.0f} | "
                 f"{1e5 / r['cells_per_s']:.1f} | {1e6 / r['cells_per_s']:.0f} | {r['peak_gb']:.1f} | "
                 f"{r['warmup_s']:.0f} | {r['graphs_after_warmup']} |")
    print(f"\nwrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
