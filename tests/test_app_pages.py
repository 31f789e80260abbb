"""Dashboard shell: every page is registered with st.navigation, reachable, and renders on the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


from perturbode_ui.navigation import HOME, PAGES
from perturbode_ui.state import STATE_KEY


@pytest.fixture(scope="module")
def app(start_app):
    return start_app()


def test_every_page_file_is_registered():
    # a page file that st.navigation does not list would be unreachable (no folder auto-discovery)
    files = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert files == {path for _, path, *_ in PAGES}
    assert HOME in files
    assert "st.navigation(" in (ROOT / "app.py").read_text()


def test_home_is_data_page_with_demo(app):
    assert not app.exception
    assert [t.value for t in app.title] == ["Data"]
    state = app.session_state[STATE_KEY]
    # the first page shows the data without reading the demo model (no torch on the way: issue 15)
    assert state.entry is not None and not state.entry.loaded
    assert state.data is not None and state.model is not None
    assert state.model_source == "demo checkpoint"
    sidebar = " ".join(c.value for c in app.sidebar.caption)
    assert state.dataset_name in sidebar and "demo checkpoint" in sidebar
    assert not app.error


def test_every_page_reachable_and_renders(app):
    titles = {}
    for _, path, title, *_ in PAGES:
        app.switch_page(path).run()
        assert not app.exception, f"{path}: {app.exception}"
        assert app.title, f"{path} rendered no title"
        titles[path] = app.title[0].value
    # each page ran its own script (not the home page again): distinct titles
    assert len(set(titles.values())) == len(PAGES), titles
    assert titles["pages/data_page.py"] == "Data" and titles["pages/train_page.py"] == "Train"
    assert titles["pages/simulate_page.py"] == "Simulate"


def test_sessions_are_isolated(app, start_app):
    other = start_app()
    a, b = app.session_state[STATE_KEY], other.session_state[STATE_KEY]
    assert a is not b and a.model is not b.model and a.workdir != b.workdir
    # the built-in dataset is shared read-only; the model is private to each session
    assert a.model.A.data_ptr() != b.model.A.data_ptr()
