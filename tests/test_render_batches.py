"""Rendering a layer in fixed batches without Ray, sharded-mining merges, and the --ray errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from phosphene import mining
from phosphene.cli.app import main
from phosphene.distributed.layer_batches import plan_batches
from phosphene.errors import install_hint
from phosphene.mining import sharded

RENDER = ["render", "--layer", "_blocks.0", "--steps", "2", "--size", "32", "--device", "cpu", "--quiet"]


def test_plan_batches_are_fixed_with_seeds_by_batch_number():
    batches = plan_batches(list(range(10)), chunk=4, seed=7)
    assert [b.units for b in batches] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert [(b.seed, b.folder) for b in batches] == [(7, "batch_0000"), (8, "batch_0001"),
                                                     (9, "batch_0002")]


def test_channels_all_renders_every_unit_in_resumable_batches(one_thread, tmp_path):
    runner = CliRunner()
    out = tmp_path / "all"
    result = runner.invoke(main, RENDER + ["--channels", "all", "--chunk", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rendered 16 units of _blocks.0 in 3 batches" in result.output  # _blocks.0: 16 channels
    pngs = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}
    assert len(pngs) == 16 + 3 and not list(out.glob(".batch_*"))
    # batch 0 is the plain render of its units with --seed
    plain = runner.invoke(main, RENDER + ["--channels", "0-5", "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    for path in (tmp_path / "plain").glob("*.png"):
        assert pngs[f"batch_0000/{path.name}"] == path.read_bytes(), path.name
    # a rerun renders only the missing batch, to the same bytes
    for path in (out / "batch_0001").iterdir():
        path.unlink()
    (out / "batch_0001").rmdir()
    (out / "batch_0002" / "grid.png").write_bytes(b"kept: finished batches are not redone")
    again = runner.invoke(main, RENDER + ["--channels", "all", "--chunk", "6", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "batch_0002" / "grid.png").read_bytes().startswith(b"kept")
    assert all((out / name).read_bytes() == data for name, data in pngs.items()
               if name.startswith("batch_0001"))


def test_batched_render_errors_are_one_line(tmp_path):
    runner = CliRunner()
    out = ["--out", str(tmp_path / "x")]
    result = runner.invoke(main, RENDER + ["--channels", "3,40", "--chunk", "2"] + out)
    assert result.exit_code == 2 and "unit 40 out of range: _blocks.0 has 16 units" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    # a bad number is refused by the option's range, as click reports it (usage line + one error line)
    result = runner.invoke(main, RENDER + ["--channels", "all", "--chunk", "0"] + out)
    assert result.exit_code == 2
    assert "Invalid value for '--chunk': 0 is not in the range x>=1" in result.output
    assert "Traceback" not in result.output


def test_merging_shard_states_in_any_order_equals_one_pass():
    """The driver's merge: same total order as the running top-k (value, then image index)."""
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (40, 3), generator=generator).float()  # many ties
    whole = mining.topk.LayerExtremes(3, 6)
    whole.update(values[:, :, None, None], torch.arange(40))
    shards = []
    for start in (0, 8, 16, 24, 32):
        part = mining.topk.LayerExtremes(3, 6)
        part.update(values[start:start + 8, :, None, None], torch.arange(start, start + 8))
        shards.append(part.state())
    merged = {"l": mining.topk.LayerExtremes(3, 6)}
    for state in (shards[3], shards[0], shards[4], shards[1], shards[2]):
        sharded.merge_states(merged, {"l": state})
    for key, ranking in whole.state().items():
        for field, tensor in ranking.items():
            assert torch.equal(merged["l"].state()[key][field], tensor), (key, field)


def test_ray_errors_are_one_line_with_exit_code_2(samples_dir, tmp_path, monkeypatch):
    args = ["mine", "--layers", "_blocks.2", "--images", str(samples_dir), "--out", str(tmp_path / "r"),
            "--device", "cpu"]
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
        missing = CliRunner().invoke(main, args + ["--ray"])
    assert missing.exit_code == 2, missing.output
    assert missing.output.strip() == f"error: --ray needs Ray: {install_hint('ray')}"
    plain = CliRunner().invoke(main, ["render", "--classes", "1", "--ray", "--out", str(tmp_path / "c")])
    assert plain.exit_code == 2 and "--ray renders --layer" in plain.output
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(main, args + ["--ray", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and "cannot reach Ray at 127.0.0.1" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(main, args + ["--ray", "local:zero"])
    assert bad.exit_code == 2 and "local:N needs N >= 1" in bad.output, bad.output


@pytest.fixture
def silent_service():
    """A TCP port that accepts connections and never answers (another service, as Ray sees it)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_port_that_is_not_ray_fails_within_the_connect_timeout(silent_service):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    from phosphene.distributed.executor import RayUnavailableError, connect

    started = time.monotonic()
    with pytest.raises(RayUnavailableError, match=f"no Ray cluster answered at {silent_service}"):
        connect(silent_service, timeout_s=2.0)
    assert time.monotonic() - started < 5.0


def test_sigterm_ends_a_connection_attempt_at_once(silent_service):
    pytest.importorskip("ray")
    code = ("import sys, ray\nfrom phosphene.distributed.executor import connect\n"
            "print('connecting', flush=True)\nconnect(sys.argv[1])\n")
    child = subprocess.Popen([sys.executable, "-c", code, silent_service], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout.readline().strip() == "connecting"
        time.sleep(1.5)  # inside the attempt (the old code was in ray.init by now, deaf to SIGTERM)
        child.send_signal(signal.SIGTERM)
        started = time.monotonic()
        child.wait(timeout=10)
        assert time.monotonic() - started < 3.0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_killed_renders_half_written_batches_are_removed_on_resume(tmp_path):
    out = tmp_path / "render"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a pid that has ended
    (out / f".batch_0000.tmp-{dead}").mkdir(parents=True)
    (out / f".batch_0001.tmp-{os.getpid()}").mkdir()  # a running process's: left alone
    result = CliRunner().invoke(main, RENDER + ["--channels", "0", "--chunk", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [f".batch_0001.tmp-{os.getpid()}"]
