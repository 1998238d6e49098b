"""lucid's InceptionV1 by name (random weights saved to a file stand in for lucent's inception5h.pth)."""

from __future__ import annotations

import pytest
import torch

import phosphene
from phosphene import objectives as obj
from phosphene.errors import ModelLoadError
from phosphene.models.inception_v1 import MIXED, InceptionV1

LUCID_LAYERS = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a",
                "mixed5b"]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lucent") / "inception5h.pth"
    torch.save(InceptionV1().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights_file):
    return phosphene.load_model("inceptionv1", weights=weights_file, device="cpu")


def test_lucid_layer_names_and_the_lucent_parameter_names(inception):
    names = phosphene.layer_names(inception)
    assert all(name in names for name in LUCID_LAYERS)
    assert list(MIXED) == LUCID_LAYERS
    keys = set(inception.net.state_dict())
    assert "mixed4a_3x3_pre_relu_conv.weight" in keys and "softmax2_pre_activation_matmul.bias" in keys
    assert "conv2d0_pre_relu_conv.weight" in keys and len(keys) == 2 * (3 + 6 * 9 + 1)


def test_mixed_layer_shapes_match_lucid_at_224(inception):
    shapes = {name: shape for name, _, shape in phosphene.layer_shapes(inception, 224)}
    assert shapes["mixed3a"] == (1, 256, 28, 28) and shapes["mixed3b"] == (1, 480, 28, 28)
    assert shapes["mixed4a"] == (1, 508, 14, 14) and shapes["mixed4e"] == (1, 832, 14, 14)
    assert shapes["mixed5b"] == (1, 1024, 7, 7)
    assert shapes["softmax2_pre_activation_matmul"] == (1, 1008)


def test_lucid_preprocessing_maps_unit_range_to_minus_117_plus_138(inception):
    x = torch.tensor([0.0, 1.0, 117 / 255]).view(1, 3, 1, 1)
    assert torch.allclose(inception.normalize(x).flatten(), torch.tensor([-117.0, 138.0, 0.0]), atol=1e-4)
    assert inception.input_size == 224 and inception.name == "inceptionv1"


def test_head_runs_below_224_and_output_is_the_logits(inception):
    with torch.no_grad():
        logits = inception(torch.rand(1, 3, 128, 128))
    assert logits.shape == (1, 1008) and not torch.allclose(logits.sum(1), torch.ones(1))


def test_mixed4a_renders_at_128_px(inception):
    result = phosphene.render(inception, obj.channel("mixed4a", [7]), steps=3, size=128, progress=False)
    assert result.images.shape == (1, 3, 128, 128)
    assert torch.isfinite(result.history).all()
    assert result.settings["stop_layer"] == "mixed4a"


def test_weights_are_found_where_lucent_keeps_them(weights_file, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "inception5h.pth").write_bytes(weights_file.read_bytes())
    model = phosphene.load_model("inceptionv1", offline=True)
    reference = torch.load(weights_file, weights_only=True)
    key = "mixed5b_5x5_pre_relu_conv.weight"
    assert torch.equal(model.net.state_dict()[key], reference[key])


def test_absent_weights_offline_name_the_place_and_the_command(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError) as info:
        phosphene.load_model("inceptionv1", offline=True)
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "inception5h.pth") in message
    assert "phosphene download inceptionv1" in message and "inception5h.pth" in message
    assert no_network == []


def test_cli_offline_flag_refuses_downloads_with_one_line_and_exit_2(tmp_path, monkeypatch, no_network):
    from click.testing import CliRunner

    from phosphene.cli.app import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("PHOSPHENE_OFFLINE", raising=False)
    for args in (["layers", "inceptionv1", "--offline"],
                 ["classify", "--model", "inceptionv1", "--offline", str(tmp_path / "x.jpg")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "phosphene download inceptionv1" in result.output
    assert no_network == []


def test_cli_download_fills_the_cache_through_torch_hub(weights_file, tmp_path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    from phosphene.cli.app import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        shutil.copy(weights_file, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    result = CliRunner().invoke(main, ["download", "inceptionv1"])
    assert result.exit_code == 0 and "inceptionv1: weights ready" in result.output
    assert fetched == ["https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"]
    assert (tmp_path / "hub" / "checkpoints" / "inception5h.pth").is_file()
