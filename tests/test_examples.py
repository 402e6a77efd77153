"""Every gallery script in ``examples/`` runs cleanly on its own.

Each script is run as a user would run it (``python plot_x.py``) in a fresh
process, from an empty temporary directory, with the non-interactive Agg
backend and downloads forbidden; it must exit with status 0 within the time a
gallery example is allowed, and write nothing into its working directory.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))
TIMEOUT = 120  # seconds; each example is meant to take well under a minute


def test_there_are_examples():
    assert len(SCRIPTS) >= 4, f"expected the gallery scripts in {EXAMPLES}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = dict(os.environ, MPLBACKEND="Agg", XDYN_OFFLINE="1",
               XDYN_DATA_DIR=str(tmp_path / "xdyn-data"), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(script)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-5000:]}")
    assert list(workdir.iterdir()) == [], f"{script.name} wrote files into its working directory"
