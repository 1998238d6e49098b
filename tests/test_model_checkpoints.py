"""Weight files in the formats people have, torch.hub's cache, and offline mode (no torchvision needed)."""

from __future__ import annotations

import os
import re

import pytest
import torch
from torch import nn

import phosphene
from phosphene.errors import ModelLoadError
from phosphene.models.checkpoints import cached_download, is_offline, load_into, read_state_dict


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
], ids=["plain", "state_dict", "model", "ddp-prefix", "compile-prefix"])
def test_checkpoint_wrappers_and_prefixes_are_unwrapped(tmp_path, wrap):
    net = _net()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(net.state_dict()), path)
    state = read_state_dict(path)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_safetensors_files_load(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch", reason="safetensors not installed")
    net = _net()
    path = tmp_path / "net.safetensors"
    safetensors.save_file(net.state_dict(), str(path))
    loaded = phosphene.load_model(_net().apply(_zero), weights=path)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(x), net(x))


def _zero(module: nn.Module) -> None:
    for p in module.parameters(recurse=False):
        p.data.zero_()


def test_a_file_without_tensors_is_a_clear_error(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "note": "no weights here"}, path)
    with pytest.raises(ModelLoadError, match="does not hold a state dict"):
        read_state_dict(path)


def test_optional_prefixes_are_dropped_other_extra_keys_refused():
    net = _net()
    state = dict(net.state_dict())
    load_into(net, {**state, "aux1.fc.weight": torch.zeros(2)}, "f", optional_prefixes=("aux1.",))
    with pytest.raises(ModelLoadError, match="do not fit the model: unexpected extra.weight$"):
        load_into(net, {**state, "extra.weight": torch.zeros(2)}, "f", optional_prefixes=("aux1.",))


def test_a_mismatch_is_one_short_line_naming_keys_and_shapes():
    net = nn.Sequential(*[nn.Linear(4, 4) for _ in range(50)])
    other = {f"x{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(ModelLoadError) as info:
        load_into(net, other, "other.pth")
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert "missing 0.bias, 0.weight, 1.bias, ... (100 in all)" in message and "unexpected x0.bias" in message
    wrong = {**net.state_dict(), "3.weight": torch.zeros(2, 4)}
    with pytest.raises(ModelLoadError, match=r"3.weight is \(2, 4\) in the file, \(4, 4\) in the model"):
        load_into(net, wrong, "wrong.pth")


def test_offline_comes_from_argument_or_environment(monkeypatch):
    for var in ("PHOSPHENE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert not is_offline() and is_offline(True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline() and not is_offline(False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("PHOSPHENE_OFFLINE", "true")
    assert is_offline()


def test_download_goes_into_torch_hub_cache_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = tmp_path / "remote" / "tiny.pth"
    source.parent.mkdir()
    torch.save(_net().state_dict(), source)
    cached = cached_download(source.as_uri(), "tiny", offline=False)
    assert cached == tmp_path / "torch" / "hub" / "checkpoints" / "tiny.pth"
    assert cached.read_bytes() == source.read_bytes()
    source.unlink()  # a second call must not fetch again
    assert cached_download(source.as_uri(), "tiny", offline=True) == cached


def test_download_checks_the_hash_in_the_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = tmp_path / "tiny-0123abcd.pth"
    torch.save(_net().state_dict(), source)
    with pytest.raises(ModelLoadError, match="could not download"):
        cached_download(source.as_uri(), "tiny", offline=False)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "tiny-0123abcd.pth").exists()


def test_offline_makes_no_network_call_and_names_cache_and_command(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelLoadError) as info:
        cached_download("https://example.com/weights/tiny.pth", "tiny", offline=True)
    message = str(info.value)
    assert "\n" not in message and "phosphene download tiny" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "tiny.pth") in message
    assert no_network == []


# -- weights that cannot be a trained network's (issue 27) ----------------------------------------
@pytest.mark.parametrize("spoil, reason", [
    (lambda v: torch.full_like(v, float("nan")), "NaN or Inf"),
    (lambda v: v.masked_fill(torch.rand_like(v) < 0.5, float("inf")), "NaN or Inf"),
    (lambda v: (v * 100).to(torch.int64), "torch.int64 values where the model has floats"),
], ids=["all-nan", "some-inf", "integers"])
def test_odd_weights_are_refused_unless_allowed(tmp_path, spoil, reason):
    path = tmp_path / "odd.pth"
    torch.save({k: spoil(v) for k, v in _net().state_dict().items()}, path)
    with pytest.raises(ModelLoadError, match=f"cannot be a trained network's: .*{reason}"):
        phosphene.load_model(_net(), weights=path)
    loaded = phosphene.load_model(_net(), weights=path, allow_odd_weights=True)
    assert loaded.net[0].weight.shape == (4, 3, 3, 3)


def test_half_precision_and_integer_buffers_are_not_odd(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # num_batches_tracked is an integer
    path = tmp_path / "half.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)
    phosphene.load_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), weights=path)


def _with_mask() -> nn.Module:
    net = _net()
    net.register_buffer("mask", torch.tensor([0.0, float("-inf")]))  # an attention-mask-like buffer
    return net


def test_infinite_values_the_model_itself_holds_are_not_odd():
    load_into(_with_mask(), dict(_with_mask().state_dict()), "f")


@pytest.mark.parametrize("path, message", [
    ("/dev/zero", "is not a regular file (a character device)"),
    ("missing.pth", "weights file not found"),
])
def test_a_device_or_missing_path_is_named_for_what_it_is(tmp_path, path, message):
    if path.startswith("/dev/") and not os.path.exists(path):
        pytest.skip(f"no {path} here")
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        read_state_dict(path if path.startswith("/") else tmp_path / path)


def test_cli_refuses_odd_weights_in_one_line_and_allows_them_on_request(tmp_path):
    from click.testing import CliRunner

    from phosphene.cli.app import main

    path = tmp_path / "nan.pth"
    lite = phosphene.load_model("efficientnet_lite0", device="cpu")
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in lite.net.state_dict().items()}, path)
    runner = CliRunner()
    result = runner.invoke(main, ["layers", "--weights", str(path)])
    assert result.exit_code == 2 and "cannot be a trained network's" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["layers", "--weights", str(path), "--allow-odd-weights"])
    assert result.exit_code == 0 and "_blocks.8 " in result.output
    result = runner.invoke(main, ["layers", "--weights", "/dev/zero"])
    assert result.exit_code == 2 and "not a regular file" in result.output
