"""PerturbODE dashboard: page config, shared sidebar and navigation.

Run with ``streamlit run app.py``. Pages are registered with
``st.navigation`` only (the pages/ folder is never auto-discovered once st.navigation runs); the
list lives in :mod:`perturbode_ui.navigation`.

Only light modules are imported here: on a session's first run the page draws its layout before
anything reads the demo (pandas, AnnData), so the browser fetches the page's widgets while the
server reads the data (see benchmarks/first_page.py).
"""

import streamlit as st

# an emoji, not a Material icon: the page icon must never be fetched from a font server
st.set_page_config(page_title="PerturbODE", page_icon="🧬", layout="wide")

from perturbode_ui.navigation import HOME, PAGES  # noqa: E402
from perturbode_ui.state import get_state, has_state  # noqa: E402
from perturbode_ui.widgets import save_inputs, sidebar_status  # noqa: E402

sections: dict[str, list] = {}
for section, path, title, icon, url in PAGES:
    sections.setdefault(section, []).append(
        st.Page(path, title=title, icon=icon, url_path=url, default=(path == HOME)))
page = st.navigation(sections)

status = st.sidebar.container()  # the sidebar's dataset and model, above anything a page adds there
new_session = not has_state()
if not new_session:
    state = get_state()
    state.sync_job()  # a job that finished while the user was elsewhere is kept (and, if done, made current)
    with status:
        sidebar_status(state)
try:
    page.run()  # a new session's page reads the demo (get_state) after drawing its layout
finally:
    state = get_state()
    save_inputs(state)  # remembered widget values survive a visit to another page
    from perturbode_ui.loaders import warm_up

    warm_up()  # once per server, after the first page is drawn: makes the first training start quickly
    if new_session:  # last: after st.stop() (no demo, no data) Streamlit draws nothing more
        with status:
            sidebar_status(state)
