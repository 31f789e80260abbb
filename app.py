"""PerturbODE dashboard: page config, shared sidebar and navigation.

Run with ``streamlit run app.py``. Pages are registered with
``st.navigation`` only (the pages/ folder is never auto-discovered once st.navigation runs); the
list lives in :mod:`perturbode_ui.navigation`.
"""

import streamlit as st

# an emoji, not a Material icon: the page icon must never be fetched from a font server
st.set_page_config(page_title="PerturbODE", page_icon="🧬", layout="wide")

from perturbode_ui.loaders import warm_up  # noqa: E402
from perturbode_ui.navigation import HOME, PAGES  # noqa: E402
from perturbode_ui.state import get_state  # noqa: E402
from perturbode_ui.widgets import save_inputs, sidebar_status  # noqa: E402

sections: dict[str, list] = {}
for section, path, title, icon, url in PAGES:
    sections.setdefault(section, []).append(
        st.Page(path, title=title, icon=icon, url_path=url, default=(path == HOME)))
page = st.navigation(sections)

# the demo (dataset; its model is read when a page first needs it) is loaded on a session's first run
state = get_state()
state.sync_job()  # a job that finished while the user was elsewhere is kept (and, if done, made current)
sidebar_status(state)
try:
    page.run()
finally:
    save_inputs(state)  # remembered widget values survive a visit to another page
    warm_up()  # once per server, after the first page is drawn: makes the first training start quickly
