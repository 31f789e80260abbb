"""Screenshots of every dashboard page, taken in a real browser (for the README tour).

Starts ``streamlit run app.py`` on a free local port, drives the system Chromium with Playwright
through each page of the demo (running a knockout on Simulate, a screen on In-silico screen and
building the report on Report so those pages show results), and writes one PNG per page to
``docs/screenshots/``.

    python scripts/screenshots.py [--out docs/screenshots] [--width 1400]

Never downloads a browser: it uses ``/usr/bin/chromium`` (or ``$PERTURBODE_CHROMIUM``). The
helpers here (:func:`serve`, :func:`launch`, :func:`open_page`, :func:`wait_idle`) are shared with
``tests/test_browser.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PERTURBODE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: (navigation title, file name) of every page, in the sidebar's order
PAGES = [("Data", "data"), ("Train", "train"), ("Models", "models"), ("Simulate", "simulate"),
         ("In-silico screen", "screen"), ("Network", "network"), ("Modules & enrichment", "modules"),
         ("Evaluate", "evaluate"), ("Report", "report")]
#: the page's own title where it differs from its navigation title
HEADINGS = {"Network": "Gene regulatory network"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(port: int | None = None, *, timeout: float = 90.0, log_path: Path | None = None, script: Path | None = None):
    """Run the dashboard (or another Streamlit ``script``: a benchmark's reference app) on
    127.0.0.1:<port> for the duration of the block; yields the base URL."""
    port = port or free_port()
    script = Path(script) if script is not None else ROOT / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "BROWSER_PATH": os.environ.get("BROWSER_PATH", CHROMIUM)}  # kaleido's Chromium
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=script.parent, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"streamlit did not answer on {base} within {timeout:.0f} s")
            time.sleep(0.05)  # polled often: the first-page benchmark times from here
        yield base
    finally:
        proc.terminate()  # only the server this function started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if log_path:
            log.close()


def launch(playwright):
    """The system Chromium, headless (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_idle(page, timeout: float = 60.0) -> None:
    """Wait until the script run has finished (Streamlit's "Running…" status is gone)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    page.wait_for_timeout(300)  # the status widget appears a moment after a rerun starts
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running|Connecting/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)",
        timeout=timeout * 1000)
    # st.spinner blocks inside a running script or fragment (e.g. "Scoring the model...")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')",
                           timeout=timeout * 1000)


def first_page_numbers(page):
    """The Data page's summary metrics once they show numbers (a new session's page draws them
    without values first, while it reads the demo): what "the first page is there" means."""
    return page.locator('[data-testid="stMetricValue"]').filter(has_text=re.compile(r"\d")).first


def wait_first_page(page, timeout: float = 120.0) -> None:
    """Wait until a new session's Data page shows its dataset (:func:`first_page_numbers`) and the
    run has finished."""
    first_page_numbers(page).wait_for(timeout=timeout * 1000)
    wait_idle(page, timeout)


def open_page(page, title: str, *, timeout: float = 60.0) -> None:
    """Open a page through the sidebar navigation (a new URL would start a new session).

    Returns once the page's own title is drawn and its script run has finished.
    """
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.locator('[data-testid="stMain"] h1').filter(has_text=HEADINGS.get(title, title)).first.wait_for(
        timeout=timeout * 1000)
    wait_idle(page, timeout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with serve() as base, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(base)
        wait_first_page(page)
        for title, name in PAGES:
            if title != "Data":
                open_page(page, title)
            if name == "simulate":
                page.get_by_role("button", name="Run simulation").click()
                wait_idle(page)
                page.locator('[data-testid="stDataFrame"]').first.wait_for()
            if name == "screen":
                page.get_by_role("button", name="Run the screen").click()
                wait_idle(page)
                page.locator('[data-testid="stDataFrame"]').first.wait_for()
            if name == "report":
                page.get_by_role("button", name="Build report").click()
                wait_idle(page)
                page.get_by_text("Report ready").wait_for()
            page.wait_for_timeout(800)  # let plotly finish drawing
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
