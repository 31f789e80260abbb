"""The dashboard's pages, in order: the one list app.py registers with ``st.navigation``.

Tests iterate over :data:`PAGES` to prove every page is reachable.
"""

from __future__ import annotations

#: (section, file relative to app.py, title, icon, url path)
PAGES = [
    ("Data & model", "pages/data_page.py", "Data", ":material/dataset:", "data"),
    ("Data & model", "pages/train_page.py", "Train", ":material/model_training:", "train"),
    ("Data & model", "pages/models_page.py", "Models", ":material/inventory_2:", "models"),
    ("Explore", "pages/simulate_page.py", "Simulate", ":material/science:", "simulate"),
    ("Explore", "pages/screen_page.py", "In-silico screen", ":material/format_list_numbered:", "screen"),
    ("Explore", "pages/network_page.py", "Network", ":material/hub:", "network"),
    ("Explore", "pages/modules_page.py", "Modules & enrichment", ":material/category:", "modules"),
    ("Check & share", "pages/evaluate_page.py", "Evaluate", ":material/fact_check:", "evaluate"),
    ("Check & share", "pages/report_page.py", "Report", ":material/description:", "report"),
]

#: The home page (loaded at /).
HOME = "pages/data_page.py"
