"""Kill-and-resume: `phosphene mine` killed with SIGKILL at several points, then rerun, ends with
exactly the tables of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
from test_mining import sample_subset

from phosphene.mining import store

LAYERS = "_blocks.3,_blocks.3._relu1"


def mine_command(folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from phosphene.cli import main; main()", "mine", "--layers", LAYERS,
            "--images", str(folder), "--k", "4", "--out", str(out), "--batch-size", "4", "--size", "96",
            "--workers", "1", "--checkpoint-every", "1", "--device", "cpu", "--quiet"]


def processed(out: Path) -> int:
    """Files covered by the last checkpoint (-1 before the first one)."""
    try:
        return store.load_checkpoint(out)["processed"] if (out / store.CHECKPOINT).is_file() else -1
    except Exception:  # replaced while being read: try again next poll
        return -1


def run_and_kill(command: list[str], out: Path, after: int, timeout: float = 60.0) -> bool:
    """Start ``command``, SIGKILL it once a checkpoint covers more than ``after`` files (or, with
    ``after`` < 0, as soon as the manifest exists). True if it was killed before finishing."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            started = (out / store.MANIFEST).is_file()
            if (after < 0 and started) or (after >= 0 and processed(out) > after):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.01)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_runs_killed_at_several_points_resume_to_identical_results(samples_dir, tmp_path):
    folder = sample_subset(samples_dir, tmp_path / "images", 48, step=10)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # skipped, once
    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = tmp_path / "reference"
    subprocess.run(mine_command(folder, reference), env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    command = mine_command(folder, out)
    kills = [run_and_kill(command, out, after) for after in (-1, 4, 20, 36)]
    assert sum(kills) >= 3, f"too few runs were killed before finishing: {kills}"
    checkpoint = store.load_checkpoint(out)
    assert checkpoint is not None and 0 < checkpoint["processed"]
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "mined 48 of 49 images" in finished.stdout

    assert pq.read_table(out / "topk.parquet").equals(pq.read_table(reference / "topk.parquet"))
    assert (out / "skipped.csv").read_text() == (reference / "skipped.csv").read_text()
    summary = store.read_json(out / "manifest.json")["summary"]
    assert (summary["n_used"], summary["n_skipped"]) == (48, 1)  # nothing counted twice
    assert torch.equal(store.load_checkpoint(out)["state"]["_blocks.3"]["mean/top"]["index"],
                       store.load_checkpoint(reference)["state"]["_blocks.3"]["mean/top"]["index"])
