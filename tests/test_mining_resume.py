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


def mine_args(folder: Path, out: Path) -> list[str]:
    return ["mine", "--layers", LAYERS, "--images", str(folder), "--k", "4", "--out", str(out),
            "--batch-size", "4", "--size", "96", "--workers", "1", "--checkpoint-every", "1",
            "--device", "cpu", "--quiet"]


# Runs `phosphene mine` in a subprocess that SIGKILLs itself at an exact point of the run:
#   after N   - right after the N-th checkpoint of this process is on disk;
#   during N  - in the middle of writing the N-th checkpoint (half a temporary file, no rename);
#   tables 0  - after topk.parquet is written, before the manifest is marked complete.
KILLER = """
import os, signal, sys
from phosphene.mining import store
mode, at = sys.argv[1], int(sys.argv[2])
write, count = store.atomic_write_bytes, [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def killing_write(path, data):
    if os.path.basename(path) == store.CHECKPOINT:
        count[0] += 1
        if mode == "during" and count[0] == at:
            with open(os.path.join(os.path.dirname(path), ".checkpoint.pt.partial"), "wb") as handle:
                handle.write(data[: len(data) // 2])
            die()
    write(path, data)
    if mode == "after" and count[0] == at and os.path.basename(path) == store.CHECKPOINT:
        die()
    if mode == "tables" and os.path.basename(path) == store.TOPK:
        die()
store.atomic_write_bytes = killing_write
from phosphene.cli.app import main
sys.argv = ["phosphene"] + sys.argv[3:]
main()
"""


def run_killed(folder: Path, out: Path, mode: str, at: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", KILLER, mode, str(at)] + mine_args(folder, out), env=env,
                          capture_output=True, text=True, timeout=300)


def test_runs_killed_at_several_points_resume_to_identical_results(samples_dir, tmp_path):
    folder = sample_subset(samples_dir, tmp_path / "images", 48, step=10)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # skipped, once
    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = tmp_path / "reference"
    cli = [sys.executable, "-c", "from phosphene.cli import main; main()"]
    subprocess.run(cli + mine_args(folder, reference), env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    done = []
    for mode, at in (("after", 2), ("during", 3), ("after", 4), ("during", 1), ("tables", 0)):
        killed = run_killed(folder, out, mode, at)
        assert killed.returncode == -signal.SIGKILL, (mode, at, killed.stderr[-500:])
        done.append(store.load_checkpoint(out)["processed"])
        assert store.read_json(out / store.MANIFEST)["status"] == "running"
    assert done == [8, 16, 32, 32, 49]  # 4 files per batch, 49 files; kills mid-write lose nothing
    finished = subprocess.run(cli + mine_args(folder, out), env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "mined 48 of 49 images" in finished.stdout

    assert pq.read_table(out / "topk.parquet").equals(pq.read_table(reference / "topk.parquet"))
    assert (out / "skipped.csv").read_text() == (reference / "skipped.csv").read_text()
    summary = store.read_json(out / "manifest.json")["summary"]
    assert (summary["n_used"], summary["n_skipped"]) == (48, 1)  # nothing counted twice
    for name in ("_blocks.3", "_blocks.3._relu1"):
        for key, state in store.load_checkpoint(reference)["state"][name].items():
            for field, tensor in state.items():
                assert torch.equal(store.load_checkpoint(out)["state"][name][key][field], tensor), key


def test_a_run_killed_from_outside_resumes_to_identical_results(samples_dir, tmp_path):
    """An external SIGKILL at an arbitrary moment (here: as soon as a checkpoint exists)."""
    folder = sample_subset(samples_dir, tmp_path / "images", 24, step=17)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cli = [sys.executable, "-c", "from phosphene.cli import main; main()"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(cli + mine_args(folder, reference), env=env, check=True, capture_output=True)
    process = subprocess.Popen(cli + mine_args(folder, out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if (out / store.CHECKPOINT).is_file():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    subprocess.run(cli + mine_args(folder, out), env=env, check=True, capture_output=True)
    assert pq.read_table(out / "topk.parquet").equals(pq.read_table(reference / "topk.parquet"))
