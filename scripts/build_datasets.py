"""Regenerate the files shipped in ``perturbode_core/datasets/builtin`` byte-for-byte.

    python scripts/build_datasets.py            # rebuild in place
    python scripts/build_datasets.py --demo-only  # retrain only the demo checkpoints
    python scripts/build_datasets.py --check    # build the datasets twice in temporary folders, compare sha256
                                                # with each other and with the shipped files

Everything is deterministic: fixed seeds in the registry, and ``.h5ad`` files whose bytes depend
only on their content (HDF5 keeps no timestamps here; see ``datasets/export.py``).

Real screens (``papalexi2021``) are copied from the project's reference data when it is on this
machine (sha256 printed); their demo checkpoints are trained like the others, with the dataset's
load options turned into the CLI's data flags (``cli.common.data_flags``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perturbode_core.cli.common import data_flags  # noqa: E402
from perturbode_core.datasets.writers import edges_path_for, write_h5ad  # noqa: E402
from perturbode_core.io.edges import write_edges_csv  # noqa: E402
from perturbode_core.datasets.registry import (ATLAS_TFS, _REGISTRY, load_options, simulate_dataset,  # noqa: E402
                                               truth_edges)

BUILTIN = ROOT / "perturbode_core" / "datasets" / "builtin"
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_COLLECTRI = SHARED_DATA / "tf_networks" / "collectri_human_hengkp.csv"
#: Where each shipped real screen is copied from (the project's reference data).
REAL_SCREENS = {"papalexi2021": SHARED_DATA / "perturb_seq" / "papalexi2021_thp1.h5ad"}


def build_collectri_subset(out_dir: Path, source: Path = SHARED_COLLECTRI) -> Path | None:
    """The CollecTRI edges among the atlas TFs and all their targets (what ``read_collectri`` needs).

    Skipped (None) when the full CollecTRI file is not on this machine; the shipped copy stays.
    """
    if not source.exists():
        return None
    import pandas as pd

    from perturbode_core.io.files import write_text_atomic

    net = pd.read_csv(source)
    tfs = [tf for group in ATLAS_TFS.values() for tf in group]
    universe = set(tfs) | set(net.loc[net["source"].isin(tfs), "target"])
    sub = net.loc[net["source"].isin(universe) & net["target"].isin(universe), ["source", "target", "weight"]]
    out = out_dir / "collectri_atlas_subset.csv"
    write_text_atomic(out, sub.to_csv(index=False, lineterminator="\n"))
    return out


def copy_real_screens(out_dir: Path) -> list[Path]:
    """Copy each shipped real screen from the reference data (skipped when it is not on this
    machine: the shipped copy stays)."""
    import shutil

    written = []
    for name, source in REAL_SCREENS.items():
        target = out_dir / _REGISTRY[name].file_name
        if source.exists() and source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        if target.exists():
            written.append(target)
    return written


def build_datasets(out_dir: Path) -> list[Path]:
    """Simulate and write every simulated dataset marked ``shipped`` in the registry (h5ad + edges CSV)."""
    written = []
    for spec in _REGISTRY.values():
        if not spec.shipped or not spec.simulated:
            continue
        path = out_dir / spec.file_name
        write_h5ad(simulate_dataset(spec.name), path)
        written += [path, write_edges_csv(truth_edges(spec.name), edges_path_for(path))]
    return written


def demo_train_command(name: str, data: Path, tmp: Path) -> list[str]:
    """The command that trains the demo checkpoint of ``name`` into ``tmp/run`` (writing its config
    file into ``tmp``): the dataset's data flags, its held-out conditions and its model and train
    options from ``DEMO_TRAIN_CONFIG`` (``benchmarks/real_screen.py`` times this same command)."""
    import json

    from perturbode_core.datasets.registry import DEMO_TRAIN_CONFIG

    config = DEMO_TRAIN_CONFIG[name]
    cfg = Path(tmp) / "config.json"
    cfg.write_text(json.dumps({k: v for k, v in config.items() if k in ("model", "train")}))
    cmd = [sys.executable, "-m", "perturbode_core", "train", "--data", str(data), *data_flags(load_options(name)),
           "--out", str(Path(tmp) / "run"), "--config", str(cfg), "--quiet"]
    if config.get("holdout"):
        cmd += ["--holdout", ",".join(config["holdout"])]
    return cmd


def build_demo_checkpoints(out_dir: Path, names=None) -> list[Path]:
    """Train the demo checkpoints with the project's own CLI on the shipped datasets.

    ``perturbode train --data <name>.h5ad <data flags> --holdout <its held-out conditions> --config <its
    model and train options>`` (``DEMO_TRAIN_CONFIG[name]``; the data flags are the dataset's load
    options, none for the simulated ones); the checkpoint, which records the conditions it
    was trained on, is copied to ``<name>_model.pt``. Training is seeded and deterministic on CPU, so the weights are
    identical on every rebuild on the same machine and library versions; the file's bytes are not
    (it records training times and package versions).
    """
    import shutil
    import subprocess

    from perturbode_core.datasets.registry import DEMO_TRAIN_CONFIG

    written = []
    for name in DEMO_TRAIN_CONFIG:
        if names is not None and name not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(demo_train_command(name, out_dir / f"{name}.h5ad", Path(tmp)), check=True, cwd=ROOT)
            target = out_dir / f"{name}_model.pt"
            shutil.copyfile(Path(tmp) / "run" / "model.pt", target)
            written.append(target)
            print(f"trained {target.name}", flush=True)
    return written


def build_all(out_dir: Path = BUILTIN, *, checkpoints: bool = True) -> list[Path]:
    """Regenerate every shipped file into ``out_dir``; returns the paths written.

    The CollecTRI subset is refreshed first (when the full file is available) and only when
    building in place, since the datasets are simulated from the installed copy.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if out_dir.resolve() == BUILTIN.resolve():
        subset = build_collectri_subset(out_dir)
        if subset:
            written.append(subset)
    written += copy_real_screens(out_dir)
    written += build_datasets(out_dir)
    if checkpoints:
        written += build_demo_checkpoints(out_dir)
    return written


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILTIN, help="output folder (default: the package's builtin/)")
    parser.add_argument("--check", action="store_true",
                        help="build twice in temporary folders and compare sha256 (nothing is changed)")
    parser.add_argument("--demo-only", action="store_true",
                        help="only retrain the demo checkpoints from the shipped datasets")
    parser.add_argument("--only", default=None, metavar="NAME[,NAME]",
                        help="with --demo-only: retrain only these datasets' checkpoints")
    args = parser.parse_args(argv)
    if args.demo_only:
        names = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
        for path in build_demo_checkpoints(args.out, names):
            print(f"{path.stat().st_size / 1e6:7.3f} MB  {path}")
        return 0
    if not args.check:
        for path in build_all(args.out):
            print(f"{sha256(path)[:16]}  {path.stat().st_size / 1e6:7.3f} MB  {path}")
        return 0
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        # checkpoints record training times, so only the datasets are compared byte for byte
        first, second = build_all(Path(a), checkpoints=False), build_all(Path(b), checkpoints=False)
        ok = True
        for p1, p2 in zip(first, second):
            h1, h2 = sha256(p1), sha256(p2)
            shipped = BUILTIN / p1.name
            hs = sha256(shipped) if shipped.exists() else "missing"
            status = "ok" if h1 == h2 == hs else "DIFFERS"
            ok &= status == "ok"
            print(f"{status:8s} {p1.name:28s} build1 {h1[:12]} build2 {h2[:12]} shipped {hs[:12]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
