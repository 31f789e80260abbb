"""First-page benchmark: seconds from ``streamlit run app.py`` until the Data page shows its content,
beside two reference apps measured in the same run.

    python benchmarks/first_page.py [--runs 3]

Each run starts a fresh server (``scripts/screenshots.serve``), points the system Chromium at it as
soon as the health check answers, and times until the Data page's metrics ("Cells", "Genes") show
their numbers. A second browser session on the same, now warm, server is timed too (what every later user
sees). The same is measured, alternately, for two reference apps written to a temporary folder:

- ``bare Streamlit``: a title and one metric, nothing imported: the floor of any Streamlit app on
  this machine (server start, the browser fetching and running Streamlit's frontend);
- ``the Data page's widgets``: the elements the Data page draws above its metrics (sidebar note,
  title, tabs with a select box, button, file uploader and text input, then the metrics), with
  no computation: the floor of this page's layout.

The first run of each app is a warm-up of the disk cache and is not counted. Prints a Markdown
table of medians and the ratio to the bare app; not a test (speed is never asserted).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("perturbode_screenshots", ROOT / "scripts" / "screenshots.py")
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)

BARE_APP = '''import streamlit as st
st.title("Data")
st.metric("Cells", "3,450")
'''

LAYOUT_APP = '''import streamlit as st
st.set_page_config(page_title="PerturbODE", page_icon="🧬", layout="wide")
with st.sidebar:
    st.caption("Dataset: myeloid (demo) · model: demo")
st.title("Data")
st.caption("Learn a gene regulatory network from a perturbation screen.")
builtin, upload, server = st.tabs(["Built-in datasets", "Upload .h5ad", "Server-side file"])
with builtin:
    st.selectbox("Dataset", ["myeloid", "papalexi2021"])
    st.caption("**myeloid** (simulated, known network, demo model)")
    st.button("Load dataset", type="primary")
with upload:
    st.file_uploader("An AnnData file (.h5ad)", type=["h5ad"])
with server:
    st.text_input("Path of an .h5ad file on the server")
st.subheader("myeloid")
m = st.columns(5)
m[0].metric("Cells", "3,450")
m[1].metric("Genes", "11")
'''


def _content_seconds(browser, base: str, t0: float) -> float:
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(base)
        shots.first_page_numbers(page).wait_for(timeout=120_000)  # metrics with numbers, not placeholders
        seconds = time.perf_counter() - t0
        # let the rest of the page (the charts) arrive before the next session: a later user does
        # not come in while the first user's page is still drawing
        page.wait_for_load_state("networkidle", timeout=60_000)
        return seconds
    finally:
        ctx.close()


def one_run(browser, script: Path | None) -> dict:
    t0 = time.perf_counter()
    with shots.serve(timeout=120, script=script) as base:
        ready = time.perf_counter() - t0
        first = _content_seconds(browser, base, t0)
        t1 = time.perf_counter()
        second = _content_seconds(browser, base, t1)
    return {"server_ready_s": ready, "first_page_s": first, "second_session_s": second}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="measured runs of each app after one warm-up run")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        # a warm machine has Python's bytecode cached: the servers may write it (into this run's folder,
        # never the repository), whatever PYTHONDONTWRITEBYTECODE says; the warm-up run fills it
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        apps = {"PerturbODE (app.py, the demo)": None}
        for name, text in (("bare Streamlit (title + metric)", BARE_APP),
                           ("the Data page's widgets, no computation", LAYOUT_APP)):
            path = Path(tmp) / f"{len(apps)}.py"
            path.write_text(text, encoding="utf-8")
            apps[name] = path
        rows: dict[str, list[dict]] = {name: [] for name in apps}
        with sync_playwright() as pw:
            browser = shots.launch(pw)
            try:
                for script in apps.values():
                    one_run(browser, script)  # warm-up: disk cache, Python bytecode
                for _ in range(args.runs):  # alternating, so that a disturbance hits every app alike
                    for name, script in apps.items():
                        rows[name].append(one_run(browser, script))
            finally:
                browser.close()
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()}
    bare = med["bare Streamlit (title + metric)"]["first_page_s"]
    print(f"Medians of {args.runs} runs each, alternating (seconds from `streamlit run`; second session: from its "
          "page request on the warm server).\n")
    print("| app | server ready (s) | first page (s) | x bare Streamlit | second session (s) | runs (first page) |")
    print("|---|---|---|---|---|---|")
    for name, m in med.items():
        runs = ", ".join(f"{r['first_page_s']:.2f}" for r in rows[name])
        print(f"| {name} | {m['server_ready_s']:.2f} | {m['first_page_s']:.2f} | {m['first_page_s'] / bare:.2f} | "
              f"{m['second_session_s']:.2f} | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
