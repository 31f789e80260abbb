"""A new session's first page: drawn before the demo is read, and honest when the demo cannot be read.

The first page's layout goes to the browser before pandas and AnnData are imported (most of a
second on 2 cores; ``benchmarks/first_page.py`` measures the effect), which only works while the
modules ``app.py`` imports stay light.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from perturbode_ui import loaders
from perturbode_ui.state import STATE_KEY

ROOT = Path(__file__).resolve().parents[1]


def test_the_modules_app_py_imports_leave_pandas_anndata_and_torch_unimported():
    code = ("import sys, json, streamlit\n"
            "import perturbode_ui.navigation, perturbode_ui.state, perturbode_ui.widgets\n"
            "print(json.dumps([m for m in ('pandas', 'anndata', 'torch', 'scipy') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_data_page_shows_the_demo_summary_with_its_numbers(start_app):
    at = start_app()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    data = at.session_state[STATE_KEY].data
    # the placeholders ("…") drawn before the demo was read are gone: one row of real numbers
    assert metrics == {"Cells": f"{data.n_cells:,}", "Genes": f"{data.n_genes:,}",
                       "Conditions": str(len(data.conditions)),
                       "Control cells": f"{len(data.control_cells()):,}",
                       "Median cells / condition": metrics["Median cells / condition"]}
    assert "…" not in metrics.values()
    assert any("myeloid" in c.value for c in at.sidebar.caption)  # drawn after the page, in its place


def test_a_demo_that_cannot_be_read_is_explained_on_the_data_page(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(loaders, "DEMO_DATASET", "no-such-dataset")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    main_errors = " ".join(e.value for e in at.main.error)
    assert "The demo could not be loaded" in main_errors
    assert any("No dataset loaded yet" in i.value for i in at.info)
    assert not at.metric  # no placeholder metrics left behind
    at.run()  # the next run draws the sidebar first: it says so too
    assert "The demo could not be loaded" in " ".join(e.value for e in at.sidebar.error)
