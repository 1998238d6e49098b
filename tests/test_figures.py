"""scripts/figures/run_all.py runs every figure script at tiny sizes; each writes its PNG and JSON
(slow: a model load per script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "figures"


def test_every_figure_script_runs_at_tiny_sizes(tmp_path, samples_dir):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS.parents[1]), "OMP_NUM_THREADS": "1",
           "PHOSPHENE_SHARED": str(samples_dir.parents[1])}
    done = subprocess.run([sys.executable, str(SCRIPTS / "run_all.py"), "--size", "32", "--steps", "2",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    scripts = sorted(p.stem for p in SCRIPTS.glob("*.py") if p.stem != "run_all" and p.stem[0] != "_")
    for name in scripts:
        assert (tmp_path / name / f"{name}.png").is_file(), name
        record = json.loads((tmp_path / name / f"{name}.json").read_text())
        assert record["seconds"] > 0
        assert f"{name}: " in done.stdout
