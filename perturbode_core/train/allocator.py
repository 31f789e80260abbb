"""CPU memory-allocator tuning for training (glibc ``mallopt``)."""

from __future__ import annotations


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
    """Keep freed memory in the process for reuse (glibc ``mallopt``), once per process.

    Every out-of-place op of a training step allocates a cell x gene tensor. glibc serves
    blocks above its mmap threshold (at most 32 MB) with fresh ``mmap`` calls and returns them on
    free, so each op paid page faults to zero new pages: the profiler showed elementwise ops at
    2 GB/s instead of ~8. Raising the mmap and trim thresholds (what jemalloc/tcmalloc do, as the
    PyTorch CPU tuning guides recommend) lets the heap recycle those blocks. Skipped off glibc, or
    when ``PERTURBODE_NO_MALLOPT`` is set. The cost: the process keeps its peak heap until exit.
    """
    global _ALLOCATOR_TUNED
    import os
    import sys

    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux") or os.environ.get("PERTURBODE_NO_MALLOPT"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)        # M_MMAP_THRESHOLD: 1 GiB
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD: do not give freed heap back eagerly
    except (OSError, AttributeError):
        pass
    _ALLOCATOR_TUNED = True
