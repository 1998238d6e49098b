"""Mining and rendering on Ray workers (a local Ray with 2 CPUs) equal the single-process results,
also when a worker process dies mid-run and when the driver is killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from test_mining import sample_subset

from phosphene import mining
from phosphene.cli.app import main
from phosphene.distributed.layer_batches import render_batches
from phosphene.mining import sharded, store

pytestmark = pytest.mark.slow
RAY_MISSING = "Ray is not installed (pip install -e '.[ray]' -c constraints/cpu.txt)"
ray = pytest.importorskip("ray", reason=RAY_MISSING)
from phosphene.distributed.executor import RayExecutor  # noqa: E402

LAYERS = ["_blocks.3", "_blocks.4._relu1"]  # _relu1: tied zeros, ranked by image index
MINE = dict(k=4, batch_size=4, size=96, num_workers=0, progress=False)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs, no dashboard) for the module; executors reuse it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # DyingJob, for the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(samples_dir, tmp_path_factory) -> Path:
    folder = sample_subset(samples_dir, tmp_path_factory.mktemp("ray-images"), 44, step=11)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")  # skipped exactly once
    return folder


@pytest.fixture(scope="module")
def reference(model, images, tmp_path_factory) -> Path:
    """The single-process run, computing with one thread like each 1-CPU Ray worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("ray-reference") / "run"
        mining.run_mining(model, LAYERS, images, out, **MINE)
    finally:
        torch.set_num_threads(before)
    return out


def assert_same_run(out: Path, reference: Path) -> None:
    assert (out / store.TOPK).read_bytes() == (reference / store.TOPK).read_bytes()
    assert (out / store.SKIPPED).read_text() == (reference / store.SKIPPED).read_text()
    summary = store.read_json(out / store.MANIFEST)["summary"]
    assert (summary["n_used"], summary["n_skipped"]) == (44, 1)  # nothing lost, nothing twice


def test_two_workers_mine_byte_identical_tables(ray_local, model, images, reference, tmp_path):
    with RayExecutor("local:2", workers=2, shard_batches=1) as executor:
        run = mining.run_mining(model, LAYERS, images, tmp_path / "run", executor=executor, **MINE)
    assert_same_run(run.root, reference)
    saved = sharded.load_shards(run.root)
    assert saved["finished"] == list(range(12)) and executor.retried == 0  # 45 files, 4 per shard


@dataclass
class DyingJob:
    """Wraps a job; the worker process that gets shard ``at`` SIGKILLs itself (once)."""

    job: Any
    marker: str
    at: int

    def setup(self, device):
        return self.job.setup(device)

    def run(self, context, task):
        if task.index == self.at and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.job.run(context, task)


class KillingExecutor(RayExecutor):
    def __init__(self, marker: Path, at: int, **options):
        super().__init__("local:2", **options)
        self.marker, self.at = str(marker), at

    def map(self, job, tasks, on_result):
        super().map(DyingJob(job, self.marker, self.at), tasks, on_result)


def test_a_worker_killed_mid_run_changes_nothing(ray_local, model, images, reference, tmp_path):
    with KillingExecutor(tmp_path / "killed", at=5, workers=2, shard_batches=1) as executor:
        run = mining.run_mining(model, LAYERS, images, tmp_path / "run", executor=executor, **MINE)
    assert (tmp_path / "killed").exists() and executor.retried >= 1  # shard 5 (and any queued) redone
    assert_same_run(run.root, reference)


def mine_cli(images: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from phosphene.cli import main; main()", "mine", "--layers",
            ",".join(LAYERS), "--images", str(images), "--out", str(out), "--k", "4", "--batch-size", "4",
            "--size", "96", "--workers", "0", "--device", "cpu", "--quiet", "--ray", "local:2",
            "--shard-batches", "1", "--checkpoint-every", "1"]


def test_a_killed_driver_resumes_from_its_finished_shards(ray_local, images, reference, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # own session: the SIGKILL takes the driver and the local Ray it started (as a lost machine would)
    driver = subprocess.Popen(mine_cli(images, out), env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, finished = time.monotonic() + 240, []
    while driver.poll() is None and time.monotonic() < deadline:
        saved = sharded.load_shards(out) if (out / sharded.SHARDS).is_file() else None
        if saved and len(saved["finished"]) >= 3:
            os.killpg(driver.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    driver.wait(timeout=60)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read()[-800:]
    finished = sharded.load_shards(out)["finished"]
    assert 3 <= len(finished) < 12 and store.read_json(out / store.MANIFEST)["status"] == "running"
    resumed = subprocess.run(mine_cli(images, out), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-800:]
    assert "mined 44 of 45 images" in resumed.stdout
    assert_same_run(out, reference)


def test_render_on_ray_equals_a_local_render(ray_local, model, tmp_path):
    options = dict(chunk=2, seed=3, steps=4, size=48, param="fourier", transforms="standard")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = render_batches(model, "_blocks.3", [0, 5, 7], tmp_path / "local", **options)
    finally:
        torch.set_num_threads(before)
    cli = CliRunner().invoke(main, ["render", "--layer", "_blocks.3", "--channels", "0,5,7", "--chunk", "2",
                                    "--seed", "3", "--steps", "4", "--size", "48", "--device", "cpu",
                                    "--quiet", "--out", str(tmp_path / "ray"), "--ray", "local:2"])
    assert cli.exit_code == 0, cli.output
    assert "rendered 3 units of _blocks.3 in 2 batches" in cli.output
    index = json.loads((tmp_path / "ray" / "render.json").read_text())
    assert index == local and [b["seed"] for b in local["batches"]] == [3, 4]
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert len(files) == 3 + 2  # an image per unit, a grid per batch
    for name in files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    for folder in ("batch_0000", "batch_0001"):  # objectives and settings too, all but the timing
        local_record, ray_record = (json.loads((tmp_path / side / folder / "render.json").read_text())
                                    for side in ("local", "ray"))
        local_record.pop("seconds"), ray_record.pop("seconds")
        assert ray_record == local_record


def test_atoms_mined_on_ray_equal_a_single_process_run(ray_local, model, images, tmp_path):
    """The atom layer travels with the model (its forward wrapper survives pickling and the worker's
    deepcopy for BatchNorm folding): `mine --ray --dictionary F` gives the single-process tables."""
    from phosphene.dictionary import Dictionary, attached

    seeded = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.normalize(torch.randn(3, 40, generator=seeded), dim=1)
    dictionary = Dictionary(atoms, atoms.clone(), torch.zeros(40), torch.full((3,), 1 / 3), "kmeans",
                            "_blocks.3", model.name, "random3")
    dictionary.save(tmp_path / "random3.safetensors")
    layers = ["_blocks.3", "_blocks.3.random3"]
    with attached(model, [dictionary]):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            single = mining.run_mining(model, layers, images, tmp_path / "single", **MINE)
        finally:
            torch.set_num_threads(before)
        with RayExecutor("local:2", workers=2, shard_batches=2) as executor:
            on_ray = mining.run_mining(model, layers, images, tmp_path / "ray", executor=executor, **MINE)
    assert (on_ray.root / store.TOPK).read_bytes() == (single.root / store.TOPK).read_bytes()
    assert on_ray.config["dictionaries"]["_blocks.3.random3"]["sha256"] == dictionary.sha256
    assert len(on_ray.top("_blocks.3.random3", 2)) == 4
