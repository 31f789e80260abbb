"""The core stays pure: importing it (and all its modules) never pulls in streamlit."""

import subprocess
import sys


def test_core_never_imports_streamlit():
    code = (
        "import importlib, pkgutil, sys, perturbode_core\n"
        "for m in pkgutil.walk_packages(perturbode_core.__path__, 'perturbode_core.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'streamlit']\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
