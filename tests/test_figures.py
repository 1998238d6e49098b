"""scripts/figures/ run at tiny sizes and write their PNG and JSON (slow: a model load per script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "figures"


@pytest.mark.parametrize("script,extra,png", [
    ("regularization.py", ["--units", "_blocks.4:3,_blocks.4:5"], "regularization.png"),
    ("interpolation.py", ["--a", "_blocks.4:3", "--b", "_blocks.4:5", "--frames", "3"], "interpolation.png"),
    ("objectives.py", ["--layer", "_blocks.4"], "objectives.png"),
])
def test_figure_script_runs_at_tiny_sizes(tmp_path, script, extra, png):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS.parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPTS / script), "--size", "32", "--steps", "2", *extra,
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / png).is_file()
    record = json.loads((tmp_path / png.replace(".png", ".json")).read_text())
    assert record["seconds"] > 0
