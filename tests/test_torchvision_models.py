"""``torchvision:<arch>`` with the real torchvision: weights enum, hub cache, aux heads, offline mode.

Random weights stand in for the real ones (saved where torch.hub keeps them, or passed as a file).
"""

from __future__ import annotations

import shutil

import pytest
import torch

import phosphene
from phosphene.errors import ModelLoadError
from phosphene.models.checkpoints import hub_checkpoint_path
from phosphene.models.torchvision_zoo import builder_kwargs

tv = pytest.importorskip("torchvision", reason="torchvision not installed (docs/install.md)")


def _normalized(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tv") / "resnet18-random.pth"
    torch.save(tv.models.resnet18().state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_enum_weights_load_from_the_filled_hub_cache_without_network(resnet18_file, torch_home, no_network):
    enum = tv.models.ResNet18_Weights.DEFAULT
    cached = hub_checkpoint_path(enum.url)
    assert cached.parent == torch_home / "hub" / "checkpoints"
    cached.parent.mkdir(parents=True)
    shutil.copy(resnet18_file, cached)
    model = phosphene.load_model("torchvision:resnet18", offline=True)
    reference = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(model.net.fc.weight, reference["fc.weight"])
    assert model.spec.input_size == 224 and model.spec.resize_size == 256
    assert model.spec.interpolation == "bilinear" and model.class_names == enum.meta["categories"]
    assert no_network == []


def test_absent_cache_offline_is_one_line_naming_the_file_and_command(torch_home, no_network):
    with pytest.raises(ModelLoadError) as info:
        phosphene.load_model("torchvision:resnet18", offline=True)
    message = str(info.value)
    assert "\n" not in message and "phosphene download torchvision:resnet18" in message
    assert str(hub_checkpoint_path(tv.models.ResNet18_Weights.DEFAULT.url)) in message
    assert no_network == []


def test_online_the_enum_checkpoint_is_fetched_by_torch_hub_into_its_cache(resnet18_file, torch_home,
                                                                          monkeypatch):
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, dst, hash_prefix))
        shutil.copy(resnet18_file, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.delenv("PHOSPHENE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    phosphene.load_model("torchvision:resnet18")
    phosphene.load_model("torchvision:resnet18")  # cached now: no second download
    url = tv.models.ResNet18_Weights.DEFAULT.url
    assert fetched == [(url, str(hub_checkpoint_path(url)), url.rsplit("-", 1)[1].split(".")[0])]


def test_googlenet_gets_transform_input_and_loads_checkpoints_without_aux_heads(tmp_path):
    torch.manual_seed(0)
    reference = tv.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save({"model": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = phosphene.load_model("torchvision:googlenet", weights=path)
    assert model.net.transform_input and model.net.aux1 is None and model.net.aux2 is None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference.eval()(_normalized(x)), atol=1e-5)


def test_googlenet_checkpoint_with_aux_heads_loads_too(tmp_path):
    with_aux = tv.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet-aux.pth"
    torch.save(with_aux.state_dict(), path)
    model = phosphene.load_model("torchvision:googlenet", weights=path)
    assert torch.equal(model.net.fc.weight, with_aux.fc.weight)


def test_inception_v3_with_a_weights_file_gets_299_px_and_its_preprocessing(tmp_path):
    net = tv.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception_v3.pth"
    torch.save(net.state_dict(), path)
    model = phosphene.load_model("torchvision:inception_v3", weights=path)
    assert model.input_size == 299 and model.spec.resize_size == 342
    assert model.net.transform_input and model.net.AuxLogits is None


def test_named_weights_and_their_preprocessing(resnet18_file):
    model = phosphene.load_model("torchvision:resnet18.IMAGENET1K_V1", weights=resnet18_file)
    assert model.name == "torchvision:resnet18.IMAGENET1K_V1"
    swag = tv.models.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1
    assert builder_kwargs("vit_b_16", swag)["image_size"] == 384
    with pytest.raises(ModelLoadError, match="no weights 'V9'.*IMAGENET1K_V1"):
        phosphene.load_model("torchvision:resnet18.V9", weights=resnet18_file)
    with pytest.raises(ModelLoadError, match="no model 'resnet19'.*resnet18"):
        phosphene.load_model("torchvision:resnet19")


def test_densenet_checkpoints_with_torchvision_legacy_key_names_load(tmp_path):
    net = tv.models.densenet121(weights=None)
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v
              for k, v in net.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet121.pth"
    torch.save(legacy, path)
    model = phosphene.load_model("torchvision:densenet121", weights=path)
    assert torch.equal(model.net.features.denseblock1.denselayer1.norm1.weight,
                       net.features.denseblock1.denselayer1.norm1.weight)
