"""Checkpoints: one file with weights, optimizer state, config, genes, vocabulary, history, versions.

Written atomically (temporary file, fsync, rename) and read with ``torch.load(weights_only=True)``:
a checkpoint holds only tensors and plain JSON-like values, so loading one can never run code.
A file from another tool, a damaged file, a newer format or a model for other genes is refused
with a message that says so.
"""

from __future__ import annotations

import math
import pickle
import platform
import zipfile
from importlib import metadata
from pathlib import Path

import torch

from perturbode_core.io.files import atomic_path
from perturbode_core.errors import PerturbODEError
from perturbode_core.model.field import ModelConfig, PerturbODE

FORMAT = "perturbode-checkpoint"
FORMAT_VERSION = 1


def package_versions() -> dict:
    """Versions of the packages that shape a result (stored in checkpoints and reports)."""
    out = {"python": platform.python_version()}
    for name in ("perturbode", "torch", "torchdiffeq", "numpy", "scipy", "pandas", "anndata", "scanpy", "POT",
                 "networkx", "plotly", "streamlit"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _plain(value):
    """Make history / config values plain Python (floats, ints, str, lists, dicts, None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def save_checkpoint(path, model: PerturbODE, *, state_dict=None, best_state_dict=None, history=None,
                    train_state=None, data=None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path
        Target file (conventionally ``RUN_DIR/model.pt``).
    model
        The model (its config and genes are stored; its weights unless ``state_dict`` is given).
    state_dict
        Weights to resume from (default: the model's current weights).
    best_state_dict
        The best weights (what :func:`load_model` returns by default).
    history
        Per-epoch records (list of dicts).
    train_state
        Optimizer state, RNG state, epoch counters, training config and split (for resume).
    data
        The PerturbationData it was trained on (its vocabulary and source are stored).
    extra
        More JSON-able metadata.
    """
    bundle = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "gene_names": list(model.gene_names),
        "state_dict": {k: v.detach().clone() for k, v in (state_dict or model.state_dict()).items()},
        "best_state_dict": None if best_state_dict is None else {k: v.detach().clone() for k, v in best_state_dict.items()},
        "history": _plain(list(history or [])),
        "train_state": train_state,
        "versions": package_versions(),
        "extra": _plain(extra or {}),
    }
    if data is not None:
        bundle["data"] = {
            "source": str(data.source), "control": str(data.control), "perturbation_key": str(data.perturbation_key),
            "n_cells": int(data.n_cells),
            "perturbations": {c: "+".join(iv.to_spec() for iv in ivs) for c, ivs in data.interventions.items()},
        }
    if train_state is not None:
        ts = dict(train_state)
        ts["train_config"] = _plain(ts.get("train_config", {}))
        for key in ("train_conditions", "val_conditions"):
            ts[key] = [str(c) for c in ts.get(key, [])]
        bundle["train_state"] = ts
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return Path(path)


def load_checkpoint(path) -> dict:
    """Read and check a checkpoint bundle (never runs code from the file)."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise PerturbODEError(f"Checkpoint not found: {path}", where=where, fix="Check the path (RUN_DIR/model.pt)")
    if path.is_dir():
        candidate = path / "model.pt"
        if candidate.exists():
            path, where = candidate, str(candidate)
        else:
            raise PerturbODEError(f"{path} is a folder without model.pt", where=where, fix="Point to the model.pt file")
    if not zipfile.is_zipfile(path):
        raise PerturbODEError("Not a PerturbODE checkpoint (not a torch zip archive; damaged, truncated or another kind of file)",
                              where=where, fix="Use a model.pt written by PerturbODE's train command or dashboard")
    try:  # torch does not check the archive's CRC32s: flipped bytes in the weights would load silently
        with zipfile.ZipFile(path) as zf:
            bad_member = zf.testzip()
    except Exception as exc:  # truncated members, bad compression ...
        bad_member = f"{type(exc).__name__}: {exc}"
    if bad_member is not None:
        raise PerturbODEError(f"The checkpoint is damaged or corrupted (its contents fail the checksum: {bad_member.split('/', 1)[-1]})",
                              where=where, fix="Use an intact copy (training keeps model.pt up to date at every epoch)")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise PerturbODEError(
            "Refused to load: the checkpoint contains Python objects that could run code when loaded",
            where=where, fix="Only load checkpoints written by PerturbODE; ask the sender to re-export it") from exc
    except Exception as exc:  # damaged zip members, truncated tensors ...
        raise PerturbODEError(f"The checkpoint is damaged or truncated ({type(exc).__name__})", where=where,
                              fix="Use an intact copy (training keeps model.pt up to date at every epoch)") from exc
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise PerturbODEError("Not a PerturbODE checkpoint (it holds something else)", where=where,
                              fix="Use a model.pt written by PerturbODE")
    version = bundle.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PerturbODEError(
            f"The checkpoint has format version {version}, newer than this PerturbODE reads ({FORMAT_VERSION})",
            where=where, fix="Upgrade PerturbODE (pip install -U perturbode)")
    for key in ("model_config", "gene_names", "state_dict"):
        if key not in bundle:
            raise PerturbODEError(f"The checkpoint lacks its {key!r}", where=where, fix="Use an intact checkpoint")
    return bundle


def model_from_bundle(bundle: dict, *, which: str = "best") -> PerturbODE:
    """Build the model stored in a bundle (``which``: ``best`` weights, or ``last`` for resume)."""
    config = ModelConfig.from_dict(bundle["model_config"])
    model = PerturbODE(bundle["gene_names"], config)
    state = bundle["best_state_dict"] if which == "best" and bundle.get("best_state_dict") else bundle["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise PerturbODEError("The checkpoint's weights do not fit its own configuration (damaged file)",
                              fix="Use an intact checkpoint") from exc
    model.eval()
    return model


def load_model(path, *, which: str = "best") -> PerturbODE:
    """Load the model of a checkpoint file (its best weights by default)."""
    return model_from_bundle(load_checkpoint(path), which=which)


def check_genes(bundle_or_model, gene_names, *, where: str = "checkpoint") -> None:
    """Refuse a checkpoint or model trained on other genes than ``gene_names`` (with a diff)."""
    have = list(bundle_or_model["gene_names"] if isinstance(bundle_or_model, dict) else bundle_or_model.gene_names)
    want = [str(g) for g in gene_names]
    if have == want:
        return
    missing = [g for g in have if g not in set(want)]
    extra = [g for g in want if g not in set(have)]
    if not missing and not extra:
        detail = "the same genes in another order"
    else:
        detail = (f"{len(missing)} of the model's genes are missing from the data"
                  f"{' (' + ', '.join(missing[:5]) + ')' if missing else ''}, the data have {len(extra)} others"
                  f"{' (' + ', '.join(extra[:5]) + ')' if extra else ''}")
    raise PerturbODEError(f"The model was trained on other genes than these data: {detail}", where=where,
                          fix="Load the dataset the model was trained on (or subset it to the model's genes), "
                              "or train a new model on these data")
