"""Which cheap solve previews a knockout best (issue 14, item 6)? Latency and agreement with the full solve.

    python benchmarks/preview.py            # 2,000 genes (~3 min on 2 cores)
    python benchmarks/preview.py --genes 500

Candidates, each timed on one knockout of 1,000 start cells (the issue's measure; fastest of five
runs after a warm-up) and scored against the full solve (1,000 cells, float32 rk4 to the horizon)
on the effect of the knockout, ``mean(knockout end) - mean(control end)`` per gene:

- ``bf16``: bfloat16 matrix products (AMX / AVX512-BF16 CPUs);
- ``N cells``: a seeded subsample of the start cells (the effect is a paired difference, so it
  varies far less across cells than the states do);
- ``mean cell``: one cell, the mean start state, integrated (ignores the spread of the cells);
- ``Newton``: the steady state of the mean cell solved directly (Woodbury on the low-rank
  Jacobian); no trajectory;
- ``preview``: what the Simulate page's quick preview runs (:func:`perturbode_core.tools.simulate.trajectories`
  with ``preview=True``: 64-200 cells by model size, bfloat16 where fast).

Tried and dropped: a stop once max |dz/dt| < 1e-3 (the states have settled). It never fires
within the horizon for a trained model (none of the three demo models settle by t = 10, every
step of their solve is taken), so it saves nothing where it matters.

Error: max over genes of |effect - full effect|, relative to the largest full effect; overlap: of
the 20 genes with the largest full effects, how many the candidate also ranks in its top 20.

Models: the speed benchmark's model (2,000 genes, K = 512, random initial weights: weak coupling;
anchored at 2, cells around it with sd 0.5) and a teacher network (2,000 genes, K = 2,000, sparse
strong regulation, a control state around 2; what a trained model's knockouts look like).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def newton_steady_state(model, z0, batch, iters=30, tol=1e-5):
    """Steady state of one cell (standardised units) under a one-condition batch, by Newton's method.

    J = diag(keep) A' diag(sigma'(u)) B - diag(gamma) is diagonal plus rank K, so each Newton step
    solves a K x K system (Woodbury) instead of a p x p one.
    """
    k = model.field_constants(batch)
    keep = k.keep[0, 0] if k.keep is not None else torch.ones(model.n_genes)
    AT, BT, gamma, bias = k.AT, k.BT, k.gamma, k.bias[0, 0]
    z = z0.clone()
    for _ in range(iters):
        u = z @ BT + k.b
        s = torch.sigmoid(u)
        f = keep * (s @ AT) + bias - gamma * z
        if float(f.abs().max()) < tol:
            break
        U = (keep[:, None] * AT.T) * (s * (1 - s))[None, :]      # p x K
        gi = 1.0 / gamma
        small = torch.eye(U.shape[1]) - BT.T @ (gi[:, None] * U)  # K x K: I - V G^-1 U
        # J^-1 f = -G^-1 f - G^-1 U (I - V G^-1 U)^-1 V G^-1 f
        w = gi * f
        step = -w - gi * (U @ torch.linalg.solve(small, BT.T @ w))
        z = z - step
    return z


def candidates(model, x0, spec):
    """name -> function(perturbation list) -> end states (C, n, p) in data units."""
    from perturbode_core.tools import simulate
    from perturbode_core.tools.embedding import subsample

    def solve(cells, **kw):
        return lambda perts: model.simulate(cells, perts, **kw)[-1]

    out = {
        "full (float32)": solve(x0),
        "bf16": solve(x0, precision="bfloat16"),
    }
    for n in (250, 100):
        sub = x0[subsample(len(x0), n, seed=0)]
        out[f"{n} cells"] = solve(sub)
        out[f"{n} cells, bf16"] = solve(sub, precision="bfloat16")
    out["mean cell"] = solve(x0.mean(0, keepdims=True))
    out[f"preview: tools.simulate ({len(simulate.preview_cells(len(x0), model))} cells, "
        f"{simulate.preview_precision(model)})"] = \
        lambda perts: simulate.trajectories(model, x0, perts, n_times=2, preview=True)["states"][-1]

    def newton(perts):
        with torch.no_grad():
            z0 = model.standardize(x0.mean(0))
            ends = [newton_steady_state(model, z0, model.encode([p])) for p in perts]
            return model.unstandardize(torch.stack(ends)[:, None, :]).numpy()

    out["Newton (mean cell)"] = newton
    return out


def effect(end):
    return end[1].mean(0) - end[0].mean(0)


def run(model, x0, spec, label, emit):
    cands = candidates(model, x0, spec)
    ref = effect(cands["full (float32)"](["control", spec]))
    top = set(np.argsort(-np.abs(ref))[:20])
    scale = np.abs(ref).max()
    for name, fn in cands.items():
        fn([spec])  # warm-up
        ts, cs = [], []
        for _ in range(5):
            t, c = time.perf_counter(), time.process_time()
            fn([spec])
            ts.append(time.perf_counter() - t)
            cs.append(time.process_time() - c)
        e = effect(fn(["control", spec]))
        err = np.abs(e - ref).max() / scale
        overlap = len(top & set(np.argsort(-np.abs(e))[:20]))
        emit(f"| {label} | {name} | {min(ts):.3f} | {min(cs):.3f} | {err:.4f} | {overlap}/20 |")


def page_scenarios(model, x0, emit):
    """Before / after, interleaved (each the fastest of 7): the issue's knockout of 1,000 cells, and
    what the Simulate page solves (its 300 start cells, control + knockout, 21 output times)."""
    from perturbode_core.tools import simulate

    fns = {
        "knockout, 1,000 cells: full solve (before)": lambda: model.simulate(x0, ["G1"]),
        "knockout, 1,000 cells: preview (after)":
            lambda: simulate.trajectories(model, x0, ["G1"], n_times=2, preview=True),
        "Simulate page (300 cells, control + knockout, 21 times): full solve":
            lambda: simulate.trajectories(model, x0[:300], ["control", "G1"]),
        "Simulate page: quick preview": lambda: simulate.trajectories(model, x0[:300], ["control", "G1"], preview=True),
    }
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(7):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    emit(f"\n## Before and after at {model.n_genes:,} genes (K = {model.n_modules}), fastest of 7, interleaved\n")
    emit("| solve | latency s |")
    emit("|---|---|")
    for name, sec in best.items():
        emit(f"| {name} | {sec:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "preview.md"))
    args = ap.parse_args()

    from perturbode_core.datasets.teacher import teacher_model
    from perturbode_core.model import ModelConfig, PerturbODE
    from perturbode_core.train.allocator import tune_allocator

    tune_allocator()
    p = args.genes
    lines = [f"# Knockout preview: latency and agreement with the full solve ({p:,} genes, 1,000 start cells)\n",
             f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} threads, "
             f"AMX {torch.cpu._is_amx_tile_supported()}; load average at start {os.getloadavg()[0]:.1f}. "
             "Latency: one knockout, 1,000 cells (or the candidate's subsample), the fastest of 5 after a warm-up "
             "(the least disturbed by other jobs), "
             "in wall time and in CPU time of the process (2 threads: CPU time / 2 is the wall time of an idle "
             "machine; other jobs share this one). "
             "Error: max |effect - full effect| / max |full effect| (effect = knockout minus control, mean over "
             "cells); overlap: top-20 genes by |effect| shared with the full solve.\n",
             "| model | candidate | latency s (wall) | CPU s | error | top-20 overlap |", "|---|---|---|---|---|---|"]

    def emit(text):
        print(text, flush=True)
        lines.append(text)

    for line in lines:
        print(line)
    rng = np.random.default_rng(0)
    # anchored at 2 with cells around it, so that a knockout (level 0) is a change of 2 units
    rand = PerturbODE([f"G{i}" for i in range(p)], ModelConfig(), control_level=np.full(p, 2.0), seed=0)
    x0 = (2.0 + 0.5 * rng.standard_normal((1000, p))).astype(np.float32)
    run(rand, x0, "G1", f"random init, K={rand.n_modules}", emit)
    teach = teacher_model(p, seed=1)
    level = teach.unstandardize(teach.anchor).detach().numpy()
    x0 = (level + 0.2 * rng.standard_normal((1000, p))).astype(np.float32)
    # the teacher's strongest regulator: the knockout with the widest effect
    hub = teach.gene_names[int(np.argmax(np.abs(teach.A.detach().numpy()).sum(0)))]
    run(teach, x0, hub, f"teacher, K={teach.n_modules}", emit)
    page_scenarios(rand, (2.0 + 0.5 * rng.standard_normal((1000, p))).astype(np.float32), emit)
    emit(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
