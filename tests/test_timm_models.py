"""``timm:<arch>[.<tag>]`` with the real timm: tagged names, the Hugging Face Hub cache, offline mode.

Random weights stand in for the real ones, written into a temporary Hub cache laid out as
huggingface_hub lays it out (refs/main -> snapshots/<commit>/<file>).
"""

from __future__ import annotations

import pytest
import torch

import phosphene
from phosphene.errors import ModelLoadError

timm = pytest.importorskip("timm", reason="timm not installed (docs/install.md)")
hub_constants = pytest.importorskip("huggingface_hub.constants")

VIT = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hub cache in place of ~/.cache/huggingface/hub; no offline variables set."""
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("PHOSPHENE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hub"


def _fill(cache, repo: str, filename: str, state: dict) -> None:
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    (folder / "snapshots" / COMMIT).mkdir(parents=True)
    target = folder / "snapshots" / COMMIT / filename
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file(state, str(target))
    else:
        torch.save(state, target)


def test_tagged_vit_loads_from_the_hub_cache_without_network(hf_cache, no_network):
    pytest.importorskip("safetensors")
    torch.manual_seed(0)
    state = timm.create_model(VIT, pretrained=False).state_dict()
    _fill(hf_cache, f"timm/{VIT}", "model.safetensors", state)
    model = phosphene.load_model(f"timm:{VIT}", offline=True)
    assert torch.equal(model.net.head.weight, state["head.weight"])
    assert model.name == f"timm:{VIT}" and model.spec.input_size == 224
    assert model.spec.resize_size == 248 and model.spec.interpolation == "bicubic"  # crop_pct 0.9
    assert model.spec.mean == (0.5, 0.5, 0.5) and len(model.class_names) == 1000
    assert no_network == []


def test_pytorch_bin_in_the_cache_is_used_when_there_is_no_safetensors(hf_cache, no_network):
    state = timm.create_model("resnet18.tv_in1k", pretrained=False).state_dict()
    _fill(hf_cache, "timm/resnet18.tv_in1k", "pytorch_model.bin", state)
    model = phosphene.load_model("timm:resnet18.tv_in1k")  # online, but the cache answers
    assert torch.equal(model.net.fc.bias, state["fc.bias"])
    assert no_network == []


def test_offline_without_cache_names_the_cache_and_makes_no_network_call(hf_cache, no_network):
    with pytest.raises(ModelLoadError) as info:
        phosphene.load_model(f"timm:{VIT}", offline=True)
    message = str(info.value)
    assert "\n" not in message and f"phosphene download timm:{VIT}" in message
    assert str(hf_cache / f"models--timm--{VIT}") in message
    assert no_network == []


def test_hf_hub_offline_in_the_environment_is_honoured(hf_cache, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline mode forbids downloading"):
        phosphene.load_model("timm:resnet18")
    assert no_network == []


def test_weights_file_checkpoint_and_the_config_preprocessing(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    model = phosphene.load_model("timm:resnet18", weights=path)
    assert torch.equal(model.net.fc.weight, net.fc.weight)
    assert model.spec.resize_size == 235 and model.spec.interpolation == "bicubic"  # crop_pct 0.95
    x = torch.rand(1, 3, 32, 32)
    assert model(x).shape == (1, 1000)


def test_unknown_tags_and_names_list_what_exists():
    with pytest.raises(ModelLoadError, match="no weights 'nosuch' for resnet18 .*a1_in1k"):
        phosphene.load_model("timm:resnet18.nosuch")
    with pytest.raises(ModelLoadError, match="no model 'resnet181'"):
        phosphene.load_model("timm:resnet181")
