"""Where training runs, and at what matrix-product precision: the one place that decides both.

``resolve_device`` turns the ``device`` option (``auto`` by default) into a concrete device;
:func:`~perturbode_core.train.fit`, the command line and the dashboard all call it, so they agree
on where a run goes. ``matmul_precision`` applies the ``matmul_precision`` option for the length
of a run and restores the previous setting afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from perturbode_core.errors import PerturbODEError, check_choice

#: Values of the ``device`` option besides ``cuda:N``.
DEVICES = ("auto", "cpu", "cuda", "mps")

#: Values of the ``matmul_precision`` option (``auto``: ``high`` on CUDA, ``highest`` elsewhere).
MATMUL_PRECISIONS = ("auto", "highest", "high", "medium")


def check_device_name(device) -> None:
    """Refuse a device option that is none of ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    ok = isinstance(device, str) and (device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()))
    if not ok:
        raise PerturbODEError(f"Unknown device {device!r}", where="option 'device'",
                              fix="Give auto, cpu, cuda, cuda:N or mps")


def _mps_works() -> bool:
    """Apple's MPS backend is present and runs what a training step needs (a matrix product and a
    sigmoid); some macOS / PyTorch pairs report it available but fail on first use."""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return False
    try:
        a = torch.ones(4, 3, device="mps")
        return bool(torch.isfinite(torch.sigmoid(a @ a.T)).all().item())
    except Exception:  # the backend raises several types when unusable
        return False


def resolve_device(device: str = "auto") -> str:
    """The concrete device a run uses for the ``device`` option.

    Parameters
    ----------
    device
        ``auto`` (CUDA when PyTorch sees a GPU, else Apple's MPS where it works, else the CPU),
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Returns
    -------
    str
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    PerturbODEError
        A GPU was asked for by name but PyTorch cannot use it (no CUDA build, no GPU, an index
        beyond the GPUs present, MPS absent).
    """
    check_device_name(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_works() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PerturbODEError(f"device {device!r} was asked for, but PyTorch sees no CUDA GPU",
                                  where="option 'device'",
                                  fix="Use --device auto or cpu, or install a CUDA build of PyTorch on a GPU machine")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise PerturbODEError(f"device {device!r} was asked for, but PyTorch sees {torch.cuda.device_count()} "
                                  "CUDA GPU(s)", where="option 'device'",
                                  fix=f"Give cuda:0 ... cuda:{torch.cuda.device_count() - 1}, or auto")
    if device == "mps" and not _mps_works():
        raise PerturbODEError("device 'mps' was asked for, but Apple's MPS backend is not usable here",
                              where="option 'device'", fix="Use --device auto or cpu")
    return device


def describe_device(device: str) -> str:
    """A short human description of a resolved device, e.g. ``CUDA GPU 0 (NVIDIA H100, 79 GiB)``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"CUDA GPU {index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def resolve_matmul_precision(level: str, device: str) -> str:
    """The float32 matrix-product precision for ``level`` on a (resolved) ``device``.

    ``auto`` is ``high`` on CUDA (TF32 tensor cores: a 10-bit mantissa in the products, float32
    accumulation; 2.2x faster training steps at 10,000 genes on an H200) and ``highest`` (true
    float32) elsewhere, so CPU runs compute exactly what they always did. An explicit level applies
    on any device: on CPUs with AMX, ``medium`` lets oneDNN use bfloat16 products.
    """
    check_choice("matmul_precision", level, MATMUL_PRECISIONS)
    if level == "auto":
        return "high" if torch.device(device).type == "cuda" else "highest"
    return level


@contextmanager
def matmul_precision(level: str, device: str):
    """Run the block at ``level`` (see :func:`resolve_matmul_precision`), then restore the setting.

    ``torch.set_float32_matmul_precision`` is process-wide: while a run holds ``high`` or
    ``medium``, other threads' float32 products follow it too (on CPUs without TF32 units ``high``
    changes nothing there).
    """
    wanted = resolve_matmul_precision(level, device)
    before = torch.get_float32_matmul_precision()
    if wanted == before:
        yield wanted
        return
    torch.set_float32_matmul_precision(wanted)
    try:
        yield wanted
    finally:
        torch.set_float32_matmul_precision(before)
