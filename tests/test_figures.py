"""scripts/figures/run_all.py runs every figure script at tiny sizes; each writes its PNG and JSON
(slow: a model load per script; one test per figure, so that a slow machine times out per figure)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "figures"
_spec = importlib.util.spec_from_file_location("run_all", SCRIPTS / "run_all.py")
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)


def test_run_all_knows_every_figure_script():
    scripts = {p.stem for p in SCRIPTS.glob("*.py") if p.stem != "run_all" and p.stem[0] != "_"}
    assert scripts == set(run_all.FIGURES)


@pytest.mark.parametrize("name", run_all.FIGURES)
def test_figure_script_runs_at_tiny_sizes(name, tmp_path, samples_dir):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS.parents[1]), "OMP_NUM_THREADS": "1",
           "PHOSPHENE_SHARED": str(samples_dir.parents[1])}
    done = subprocess.run([sys.executable, str(SCRIPTS / "run_all.py"), "--size", "32", "--steps", "2",
                           "--only", name, "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / name / f"{name}.png").is_file()
    record = json.loads((tmp_path / name / f"{name}.json").read_text())
    assert record["seconds"] > 0 and f"{name}: " in done.stdout
