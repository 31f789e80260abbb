"""One command for a GPU machine: a smoke check of every GPU path, then the GPU speed table.

    python scripts/gpu_check.py [--out DIR] [--quick] [--no-speed]

What it does, in order, printing each result (and writing them to DIR, default ``$OUT`` or
``gpu_check_out/``):

1. the device: what ``--device auto`` resolves to, the card, torch and CUDA versions; the
   packages the CLI needs (anndata, POT...) are importable;
2. the same seeded run on the CPU and on CUDA in float32 (losses must agree to float rounding),
   and on CUDA with TF32 (the default there; losses within 1e-3 relative of float32);
3. ``perturbode train --device cuda`` through the command line for a few epochs on the shipped
   myeloid data (checks the device line, the auto-sized step and the checkpoint), then
   ``perturbode simulate`` of that checkpoint on the CPU (``CUDA_VISIBLE_DEVICES=""``);
4. several GPUs (when present): ``torchrun`` with NCCL, 2 processes, against one process;
5. ``benchmarks/speed.py --device cuda`` (the GPU tables; ``--quick``: 1,000 genes only), and
   from its rows: ``--compile`` never slower than eager after warm-up and building no graph
   after it; the auto-sized TF32 step's share of the TF32 GEMM rate at 10,000 genes (aim 0.7).

The whole run keeps within ``--budget`` seconds (default 560: one device command of at most 600);
table rows that would run past it are listed as skipped.

Exit status 0 when every check passed. Run on the device machine (docs/scaling.md says how, with the
wheels of scripts/gpu_wheels.sh). Without a GPU it stops after step 1 with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MYELOID = ROOT / "perturbode_core" / "datasets" / "builtin" / "myeloid.h5ad"
NEEDED = ("numpy", "scipy", "pandas", "h5py", "anndata", "ot", "torchdiffeq", "networkx", "sklearn", "tqdm")


class Report:
    """Collects check results, prints them, and keeps gpu_check.md up to date in the output folder
    (a run cut short still leaves what it had)."""

    def __init__(self, out: Path):
        self.out, self.lines, self.failed = out, ["# GPU check\n"], []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, text: str, ok: bool | None = None):
        mark = "" if ok is None else ("PASS " if ok else "FAIL ")
        if ok is False:
            self.failed.append(text)
        line = f"- {mark}{text}"
        print(line, flush=True)
        self.lines.append(line)
        (self.out / "gpu_check.md").write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "perturbode_core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


def seeded_losses(data, device, precision, epochs=2):
    from perturbode_core.train import TrainConfig, fit

    cfg = TrainConfig(epochs=epochs, seed=0, device=device, matmul_precision=precision, auto_batch=False)
    return fit(data, train_config=cfg).history["train_loss"].tolist()


def check_equivalence(rep: Report, device: str):
    from perturbode_core.data.dataset import load

    data = load(MYELOID)
    cpu = seeded_losses(data, "cpu", "highest")
    fp32 = seeded_losses(data, device, "highest")
    tf32 = seeded_losses(data, device, "high")
    rel = max(abs(a - b) / abs(a) for a, b in zip(cpu, fp32))
    rep.add(f"same seeded myeloid run, losses per epoch: CPU {[f'{v:.6f}' for v in cpu]}, CUDA float32 "
            f"{[f'{v:.6f}' for v in fp32]} (max relative difference {rel:.1e})", rel < 1e-4)
    rel = max(abs(a - b) / abs(a) for a, b in zip(fp32, tf32))
    rep.add(f"CUDA TF32 (the default there) {[f'{v:.6f}' for v in tf32]}: max relative difference to float32 "
            f"{rel:.1e} (tolerance 1e-3)", rel < 1e-3)


def check_cli(rep: Report, out: Path, device: str):
    from perturbode_core.io.checkpoint import load_checkpoint
    from perturbode_core.train.device import describe_device

    run = out / "run"
    res = cli("train", "--data", MYELOID, "--out", run, "--epochs", 3, "--device", device, "--quiet")
    tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
    rep.add(f"perturbode train --device {device}: exit {res.returncode}; {' | '.join(tail)}",
            res.returncode == 0 and f"on {describe_device(device)}" in res.stdout)
    if res.returncode != 0:
        return
    ckpt = load_checkpoint(run / "model.pt")
    tc = ckpt.settings.train_config
    rep.add(f"checkpoint: device {tc.device!r}, step {tc.batch_conditions} conditions x {tc.cells_per_condition} "
            f"cells, learning rate {tc.learning_rate:.4g}, auto_batch recorded as {tc.auto_batch}; events "
            f"{[e for e in ckpt.settings.events if e.startswith('auto_batch')]}",
            (tc.auto_batch is False or not device.startswith("cuda")) and len(ckpt.history) == 3)
    gene = ckpt.model.gene_names[0]
    t = time.perf_counter()
    res = cli("simulate", "--checkpoint", run / "model.pt", "--data", MYELOID, "--perturb", gene, "--out",
              out / "pred.h5ad", env={"CUDA_VISIBLE_DEVICES": ""})
    rep.add(f"perturbode simulate of that checkpoint on the CPU: exit {res.returncode} in "
            f"{time.perf_counter() - t:.1f} s; "
            f"{res.stdout.strip().splitlines()[0] if res.stdout.strip() else res.stderr[-300:]}",
            res.returncode == 0 and (out / "pred_effects.csv").exists())


def check_multi_gpu(rep: Report, out: Path, device: str):
    import torch

    n = torch.cuda.device_count() if device.startswith("cuda") else 0
    if n < 2:
        rep.add(f"{n} GPU: the torchrun/NCCL check needs 2 or more (skipped)")
        return
    runs = {}
    for procs in (1, 2):
        run = out / f"ddp{procs}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "perturbode_core", "train", "--data", str(MYELOID), "--out", str(run), "--epochs", "2",
               "--device", "cuda", "--quiet", "--no-auto-batch", "--matmul-precision", "highest"]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
        runs[procs] = res
        if res.returncode != 0:
            rep.add(f"torchrun --nproc_per_node={procs}: exit {res.returncode}: {res.stderr[-400:]}", False)
            return
    import pandas as pd

    a, b = (pd.read_csv(out / f"ddp{k}" / "history.csv")["train_loss"] for k in (1, 2))
    rel = float(((a - b).abs() / a.abs()).max())
    rep.add(f"torchrun with NCCL, 2 processes on {n} GPUs vs 1: losses {list(b.round(6))} vs {list(a.round(6))} "
            f"(max relative difference {rel:.1e})", rel < 1e-4)


def judge_speed(rep: Report, path: Path):
    """PASS/FAIL lines from the speed table's rows: compile never slower than eager after warm-up
    and without recompiling; the auto-sized TF32 step at >= 0.7 of the TF32 GEMM rate (the issue's aim)."""
    if not path.exists():
        rep.add(f"no {path.name}: the speed table did not finish", False)
        return
    rows = [r for r in json.loads(path.read_text()) if "step_s" in r]
    for r in rows:
        if r["mode"] == "auto" and r["precision"] == "high" and not r["compile"]:
            rep.add(f"{r['p']:,} genes, auto step, TF32: {r['gflops'] / r['gemm_tf32']:.2f} of the TF32 GEMM rate "
                    f"({r['B'] + 1} x {r['c']} cells, {r['step_s']:.3f} s a step; aim >= 0.7 at 10,000 genes)",
                    r["gflops"] / r["gemm_tf32"] >= 0.7 if r["p"] >= 10000 else None)
            comp = [c for c in rows if c["p"] == r["p"] and c["mode"] == "auto" and c["precision"] == "high"
                    and c["compile"]]
            for c in comp:
                rep.add(f"{r['p']:,} genes, compile: {c['step_s']:.3f} s a step vs eager {r['step_s']:.3f} s "
                        f"({r['step_s'] / c['step_s']:.2f}x), {c['graphs_after_warmup']} graphs built after warm-up "
                        f"(warm-up {c['warmup_s']:.0f} s)", c["graphs_after_warmup"] == 0)
                rep.add(f"{r['p']:,} genes: compile {'wins' if c['step_s'] <= r['step_s'] else 'LOSES'} on this GPU "
                        "(if it loses, docs/scaling.md must say not to use --compile there)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "gpu_check_out"))
    ap.add_argument("--quick", action="store_true", help="speed table at 1,000 genes only")
    ap.add_argument("--no-speed", action="store_true", help="the checks only, not benchmarks/speed.py")
    ap.add_argument("--device", default="cuda",
                    help="cuda (default); cpu runs every check on the CPU: a dry run of this script without a GPU")
    ap.add_argument("--budget", type=float, default=560,
                    help="seconds the whole check may take (the speed table skips what would run past it)")
    args = ap.parse_args()
    started = time.time()
    out = Path(args.out)
    rep = Report(out)
    missing = []
    for name in NEEDED:
        try:
            __import__(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    rep.add("packages: " + ("all importable" if not missing else "missing " + ", ".join(missing) +
                            " (carry the wheels of scripts/gpu_wheels.sh)"), not missing)
    import torch

    from perturbode_core.train.device import describe_device, resolve_device

    auto = resolve_device("auto")
    dry = args.device == "cpu"
    rep.add(f"torch {torch.__version__}, CUDA {torch.version.cuda}; --device auto -> {auto} "
            f"({describe_device(auto)})" + (" (dry run on the CPU)" if dry else ""), dry or auto.startswith("cuda"))
    if missing or not (dry or auto.startswith("cuda")):
        print("\nno usable GPU or packages missing: stopping here", file=sys.stderr)
        return 1
    device = "cpu" if dry else "cuda"
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))  # run folders: not brought back, only the tables are
    checks = (("equivalence", lambda: check_equivalence(rep, device)), ("cli", lambda: check_cli(rep, work, device)),
              ("multi-gpu", lambda: check_multi_gpu(rep, work, device)))
    for name, fn in checks:
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # report and go on: one broken check must not hide the others
            rep.add(f"{name} check raised {type(exc).__name__}: {str(exc)[:400]}", False)
        print(f"  ({name}: {time.perf_counter() - t:.0f} s)", flush=True)
    if not args.no_speed:
        left = args.budget - (time.time() - started)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--device", device, "--gpu-form", "--out",
               str(out / "speed_cuda.md"), "--deadline", str(time.time() + left - 20)] + \
            (["--quick", "--compile"] if args.quick or dry else []) + (["--genes", "30", "--steps", "1"] if dry else [])
        res = subprocess.run(cmd, cwd=ROOT, timeout=max(60, left))
        rep.add(f"benchmarks/speed.py --device cuda: exit {res.returncode} (tables above, and {out / 'speed_cuda.md'})",
                res.returncode == 0)
        judge_speed(rep, out / "speed_cuda.json")
    rep.add(f"{len(rep.failed)} check(s) failed" if rep.failed else "every check passed", not rep.failed)
    (out / "gpu_check.json").write_text(json.dumps({"failed": rep.failed}), encoding="utf-8")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
