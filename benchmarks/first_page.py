"""First-page benchmark: seconds from ``streamlit run app.py`` until the Data page shows its content.

    python benchmarks/first_page.py [--runs 3]

Each run starts a fresh server (``scripts/screenshots.serve``), points the system Chromium at it as
soon as the health check answers, and times until the Data page's metrics ("Cells", "Genes") are
drawn. A second browser session on the same, now warm, server is timed too (what every later user
sees). The first run is a warm-up of the disk cache and is not counted in the median. Prints a
Markdown table; not a test (speed is never asserted).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("perturbode_screenshots", ROOT / "scripts" / "screenshots.py")
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)

#: what "the first page is there" means: the Data page's summary metrics
CONTENT = '[data-testid="stMetric"]'


def _content_seconds(browser, base: str, t0: float) -> float:
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(base)
        page.locator(CONTENT).first.wait_for(timeout=120_000)
        return time.perf_counter() - t0
    finally:
        ctx.close()


def one_run(pw) -> dict:
    browser = shots.launch(pw)
    try:
        t0 = time.perf_counter()
        with shots.serve(timeout=120) as base:
            ready = time.perf_counter() - t0
            first = _content_seconds(browser, base, t0)
            t1 = time.perf_counter()
            second = _content_seconds(browser, base, t1)
        return {"server_ready_s": ready, "first_page_s": first, "second_session_s": second}
    finally:
        browser.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="measured runs after one warm-up run")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as pw:
        one_run(pw)  # warm-up: disk cache, Python bytecode
        for _ in range(args.runs):
            rows.append(one_run(pw))
    print("| run | server ready (s) | first page after `streamlit run` (s) | second session (s) |")
    print("|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['server_ready_s']:.2f} | {r['first_page_s']:.2f} | {r['second_session_s']:.2f} |")
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"| median | {med['server_ready_s']:.2f} | {med['first_page_s']:.2f} | {med['second_session_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
