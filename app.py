"""PerturbODE dashboard: page config, shared sidebar and navigation.

Run with ``streamlit run app.py``. Pages are registered with
``st.navigation`` only (the pages/ folder is never auto-discovered once st.navigation runs); the
list lives in :mod:`perturbode_ui.navigation`.
"""

import streamlit as st

st.set_page_config(page_title="PerturbODE", page_icon=":material/hub:", layout="wide")

from perturbode_ui.loaders import warm_up  # noqa: E402
from perturbode_ui.navigation import HOME, PAGES  # noqa: E402
from perturbode_ui.state import get_state  # noqa: E402
from perturbode_ui.widgets import sidebar_status  # noqa: E402

sections: dict[str, list] = {}
for section, path, title, icon, url in PAGES:
    sections.setdefault(section, []).append(
        st.Page(path, title=title, icon=icon, url_path=url, default=(path == HOME)))
page = st.navigation(sections)

# the demo (dataset + trained model) is loaded here on a session's first run, so every page works
state = get_state()
warm_up()  # once per server: makes the first training start quickly
state.sync_job()  # a job that finished while the user was elsewhere becomes the current model
sidebar_status(state)
page.run()
