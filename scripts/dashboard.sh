#!/usr/bin/env bash
# Install PerturbODE and start the dashboard on the built-in demo data (http://127.0.0.1:8501).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt
exec python -m streamlit run app.py "$@"
