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
from dataclasses import dataclass, field

import pandas as pd

from perturbode_core.errors import PerturbODEError
from perturbode_core.io.files import atomic_path, check_input_file
from perturbode_core.model import ModelConfig, PerturbODE

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
                    train_state: dict | None = None, data=None, extra: dict | None = None) -> Path:
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
        "latent_regulators": list(model.latent_names),
        "state_dict": {k: v.detach().clone() for k, v in (state_dict or model.state_dict()).items()},
        "best_state_dict": None if best_state_dict is None else {k: v.detach().clone() for k, v in best_state_dict.items()},
        "history": _plain(list(history or [])),
        "train_state": train_state,
        "versions": package_versions(),
        "extra": _plain(extra or {}),
    }
    evidence = getattr(model, "response_evidence", None)
    if evidence is not None:  # describes the weights load_model returns (set by training at its end)
        bundle["response_evidence"] = evidence.to_bundle()
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


def _read_bundle(path: Path, where: str) -> dict:
    """The checked raw bundle of a checkpoint file (never runs code from the file)."""
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




@dataclass(frozen=True)
class TrainedSettings:
    """What a model was trained with: its options, the best epoch and which conditions it saw.

    ``train_config`` is None for a model that was never trained by :func:`~perturbode_core.train.fit`
    (a hand-built model); ``train_conditions`` is None when unknown (then every condition counts as
    seen: nothing is called held out that might not be).
    """

    model_config: ModelConfig
    train_config: object | None = None
    best_epoch: int | None = None
    train_conditions: list[str] | None = None
    val_conditions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def seen_conditions(self, data) -> tuple[list[str], list[str]]:
        """``(fitted, validation)`` conditions of ``data``: what the weights were fitted on and what
        only picked the best epoch. Unknown training conditions count as all of the data's."""
        trained = list(data.conditions) if self.train_conditions is None else list(self.train_conditions)
        val = [c for c in self.val_conditions if c in set(trained)]
        return [c for c in trained if c not in set(val)], val

    def heldout_conditions(self, data) -> list[str]:
        """Perturbations of ``data`` the model never saw (neither fitted nor validated on)."""
        fitted, val = self.seen_conditions(data)
        seen = set(fitted) | set(val)
        return [c for c in data.perturbations if c not in seen]


@dataclass(frozen=True)
class ResumeState:
    """Everything a resumed run needs to continue exactly where the saved one stopped."""

    epoch: int
    optimizer: dict
    rng: torch.Tensor
    best_metric: float | None
    best_epoch: int | None
    bad_epochs: int
    last_state_dict: dict
    best_state_dict: dict | None
    lr_scale: float = 1.0


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (best weights), its history and settings, and the state to resume.

    Built only by :func:`load_checkpoint`, which reads the file once and checks it (and, when
    asked, its genes) once.
    """

    path: Path
    model: PerturbODE
    history: pd.DataFrame
    settings: TrainedSettings
    resume_state: ResumeState | None
    data_info: dict
    versions: dict
    extra: dict

    @property
    def gene_names(self) -> list[str]:
        """The model's genes."""
        return list(self.model.gene_names)

    @property
    def resumable(self) -> bool:
        """Whether training can continue from this checkpoint."""
        return self.resume_state is not None


def _settings(bundle: dict) -> TrainedSettings:
    # train imports this module (fit writes checkpoints), so TrainConfig is imported here, on use,
    # to keep the two packages from importing each other at load time
    from perturbode_core.train.train_config import TrainConfig

    ts = bundle.get("train_state") or {}
    cfg = ts.get("train_config")
    return TrainedSettings(
        model_config=_model_config(bundle["model_config"]),
        train_config=TrainConfig.from_dict(cfg) if cfg else None,
        best_epoch=ts.get("best_epoch"),
        train_conditions=[str(c) for c in ts["train_conditions"]] if ts.get("train_conditions") else None,
        val_conditions=[str(c) for c in ts.get("val_conditions") or []],
        events=[str(e) for e in (bundle.get("extra") or {}).get("events", [])])


#: Parameters and buffers added after format version 1 was fixed, and inert at their initial value
#: (zero; -1, "not measured", for the per-target levels): checkpoints written before them load with it.
_LATER_PARAMETERS = ("W_latent", "type_offset", "log_delta_shared", "knockout_left", "knockdown_left")


def _model_config(saved: dict) -> ModelConfig:
    """The saved options; options added later take the value that keeps an older model's meaning."""
    saved = dict(saved)
    saved.setdefault("shift_units", "standardised")  # overexpression strengths were per gene sd
    saved.setdefault("knockout_level", 0.0)  # knockouts took their targets to zero
    saved.setdefault("knockdown_level", 0.5)  # undosed knock-downs removed the default dose
    return ModelConfig.from_dict(saved)


def _build_model(bundle: dict, state: dict) -> PerturbODE:
    model = PerturbODE(bundle["gene_names"], _model_config(bundle["model_config"]),
                       latent_regulators=bundle.get("latent_regulators") or [])
    state = dict(state)
    for name in _LATER_PARAMETERS:
        if name not in state:
            state[name] = getattr(model, name).detach().clone()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise PerturbODEError("The checkpoint's weights do not fit its own configuration (damaged file)",
                              fix="Use an intact checkpoint") from exc
    model.eval()
    return model


def load_checkpoint(path, *, genes=None, where: str | None = None) -> Checkpoint:
    """Read a checkpoint file once, check it, and return it as a :class:`Checkpoint`.

    Parameters
    ----------
    path
        ``model.pt``, or a run folder holding one.
    genes
        When given, refuse a checkpoint trained on other genes (the message lists the difference).
    where
        How to name the file in messages (default: its path), e.g. "uploaded file model.pt".

    Raises
    ------
    PerturbODEError
        Missing, empty, damaged, truncated or foreign files, files with Python objects that could
        run code, newer formats, and (with ``genes``) other genes.
    """
    path = Path(path)
    if path.is_dir() and (path / "model.pt").exists():
        path = path / "model.pt"
    where = where or str(path)
    check_input_file(path, kind="Checkpoint", where=where, fix="Check the path (RUN_DIR/model.pt)")
    bundle = _read_bundle(path, where)
    if genes is not None:
        check_genes(bundle, genes, where=where)
    best = bundle.get("best_state_dict") or bundle["state_dict"]
    ts = bundle.get("train_state")
    resume = None
    if ts and ts.get("optimizer") is not None:
        resume = ResumeState(epoch=int(ts["epoch"]), optimizer=ts["optimizer"], rng=ts["rng"],
                             best_metric=ts.get("best_metric"), best_epoch=ts.get("best_epoch"),
                             bad_epochs=int(ts.get("bad_epochs", 0)), last_state_dict=bundle["state_dict"],
                             best_state_dict=bundle.get("best_state_dict"), lr_scale=float(ts.get("lr_scale", 1.0)))
    model = _build_model(bundle, best)
    if isinstance(bundle.get("response_evidence"), dict):
        from perturbode_core.tools.response_evidence import ResponseEvidence

        model.response_evidence = ResponseEvidence.from_bundle(bundle["response_evidence"], model.n_genes,
                                                                model.n_latent)
    return Checkpoint(path=path, model=model, history=pd.DataFrame(bundle.get("history") or []),
                      settings=_settings(bundle), resume_state=resume, data_info=dict(bundle.get("data") or {}),
                      versions=dict(bundle.get("versions") or {}), extra=dict(bundle.get("extra") or {}))


def load_model(path, *, genes=None) -> PerturbODE:
    """The model of a checkpoint file (its best weights); see :func:`load_checkpoint`."""
    return load_checkpoint(path, genes=genes).model


def model_at_last_epoch(ckpt: Checkpoint) -> PerturbODE:
    """The model with the weights of the last completed epoch (where a resumed run continues)."""
    if ckpt.resume_state is None:
        raise PerturbODEError("This checkpoint holds no training state to resume from", where=str(ckpt.path),
                              fix="Start a new run instead")
    bundle = {"gene_names": ckpt.gene_names, "model_config": ckpt.model.config.to_dict(),
              "latent_regulators": list(ckpt.model.latent_names)}
    return _build_model(bundle, ckpt.resume_state.last_state_dict)


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
