"""The scripts in examples/ run as a user would run them (tiny sizes: PHOSPHENE_EXAMPLE_TINY=1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

EXAMPLES = REPO / "examples"


def _run(script: str, *args: str, cwd) -> str:
    env = {**os.environ, "PHOSPHENE_EXAMPLE_TINY": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("script, needs_image, figure", [
    ("render_units.py", False, "grid.png"),
    ("accentuate_image.py", True, "figure.png"),
    ("tension_inversion.py", True, "figure.png"),
    ("own_model.py", False, "grid.png"),
])
def test_example_runs(script, needs_image, figure, samples_dir, tmp_path):
    image = sorted(samples_dir.iterdir())[0]
    out = tmp_path / "out"
    stdout = _run(script, *([image] if needs_image else []), out, cwd=tmp_path)
    assert (out / figure).stat().st_size > 0 and "->" in stdout
