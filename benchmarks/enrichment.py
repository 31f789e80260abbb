"""Speed of module over-representation analysis (prints a table; not a timed test).

    python benchmarks/enrichment.py [--repeats 3]

A model of ``genes`` random GO-BP genes with random A, B (K modules, 50 targets each) is tested
against GO Biological Process 2021 (6,036 sets). ``sets`` is the number of sets tested after
restricting them to the model's genes and applying the size filter (min_size 5, or 1 for the
"all sets" rows). Seconds: best of ``--repeats`` calls of ``over_representation`` (library
already parsed; membership selection excluded). Peak MB: tracemalloc peak of Python/numpy
allocations during one call.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perturbode_core.tools import enrichment as E  # noqa: E402
from perturbode_core.tools import modules as M  # noqa: E402


def case(lib, n_genes, n_modules, min_size, repeats, rng):
    genes = [g.upper() for g in rng.choice(lib.vocabulary.astype(str), n_genes, replace=False)]
    A = rng.standard_normal((n_genes, n_modules))
    B = rng.standard_normal((n_modules, n_genes))
    members = M.module_members(A, B, np.ones(n_modules), genes, role="targets", top_n=50)
    lists = M.module_gene_lists(members)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        res = E.over_representation(lists, genes, lib, min_size=min_size)
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    E.over_representation(lists, genes, lib, min_size=min_size)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return dict(genes=n_genes, modules=n_modules, sets=res.attrs["n_sets_tested"], tests=res.attrs["n_tests"],
                rows=len(res), seconds=best, peak_mb=peak)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    lib = E.load_library("go_bp")
    print(f"parse go_bp ({len(lib)} sets): {time.perf_counter() - t:.3f} s")
    rng = np.random.default_rng(0)
    rows = [case(lib, g, k, ms, args.repeats, rng)
            for g, k, ms in [(2000, 200, 5), (2000, 2000, 5), (2000, 200, 1), (2000, 2000, 1), (5000, 2000, 5)]]
    head = f"{'genes':>6} {'modules':>8} {'sets':>6} {'tests':>10} {'rows':>8} {'seconds':>8} {'peak MB':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['genes']:>6} {r['modules']:>8} {r['sets']:>6} {r['tests']:>10} {r['rows']:>8} "
              f"{r['seconds']:>8.3f} {r['peak_mb']:>8.1f}")


if __name__ == "__main__":
    main()
