"""Multiple-testing correction: the one Benjamini-Hochberg that enrichment and the interventional
check both use."""

from __future__ import annotations

import numpy as np


def benjamini_hochberg(pvalues, *, n_tests: int | None = None) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), monotone and capped at 1 (scipy's
    ``false_discovery_control``).

    Parameters
    ----------
    pvalues
        Array of p-values (any shape).
    n_tests
        The total number of tests, when ``pvalues`` holds only some of them and all the others
        have p = 1 (enrichment skips sets that cannot reach significance). Default: ``pvalues.size``.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(pvalues, dtype=float)
    shape = p.shape
    p = p.reshape(-1)
    m = p.size if n_tests is None else int(n_tests)
    if m < p.size:
        raise ValueError("n_tests must be at least the number of p-values")
    if p.size == 0:
        return p.reshape(shape)
    if np.isnan(p).any():
        raise ValueError("p-values contain NaN")
    # the untested ones (p = 1) rank last: appending them gives the larger m its due weight
    q = false_discovery_control(np.concatenate([p, np.ones(m - p.size)]), method="bh")[: p.size]
    return np.minimum(q, 1.0).reshape(shape)
