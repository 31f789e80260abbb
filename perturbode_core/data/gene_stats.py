"""Per-gene statistics of an expression matrix, read in row chunks (works on memory-mapped data)."""

from __future__ import annotations

import numpy as np


def column_mean_std(X, rows=None, *, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and (population) standard deviation of ``X[rows]``, read in row chunks.

    ``X[rows].std(0)`` would copy the selected rows and then make two more full-size
    temporaries; for a 100,000 x 10,000 matrix that is 12 GB on top of the data. Chunks keep the
    extra memory to a few MB and work on memory-mapped (backed) matrices too. Two passes (mean,
    then squared deviations) in float64 for accuracy.
    """
    n_rows = X.shape[0] if rows is None else len(rows)
    p = X.shape[1]
    if n_rows == 0:
        return np.zeros(p, np.float32), np.zeros(p, np.float32)

    def chunks():
        for s in range(0, n_rows, chunk):
            idx = slice(s, min(s + chunk, n_rows)) if rows is None else rows[s:s + chunk]
            yield np.asarray(X[idx], dtype=np.float64)

    total = np.zeros(p)
    for block in chunks():
        total += block.sum(0)
    mean = total / n_rows
    ss = np.zeros(p)
    for block in chunks():
        # not in place: for float64 input without row selection, the block is a view of X
        block = block - mean
        ss += np.einsum("ij,ij->j", block, block)
    sd = np.sqrt(ss / n_rows) if n_rows > 1 else np.zeros(p)
    return mean.astype(np.float32), sd.astype(np.float32)
