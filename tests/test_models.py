"""The model registry, the embedded EfficientNet-Lite0 and its loading errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import phosphene
from phosphene.errors import ModelLoadError
from phosphene.models import ImageModel, imagenet_class_names, list_models


def test_embedded_model_scores_at_least_85_percent_top1(sample_forward, sample_batch, sample_labels):
    _, paths = sample_batch
    truth = torch.tensor([sample_labels[p.name.split("_")[0]] for p in paths])
    accuracy = (sample_forward["logits"].argmax(1) == truth).float().mean().item()
    assert accuracy >= 0.85, accuracy


def test_load_model_returns_eval_model_taking_unit_range_images(model):
    assert isinstance(model, ImageModel) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    logits = model(torch.rand(2, 3, 224, 224))
    assert logits.shape == (2, 1000)
    assert model.input_size == 224 and len(model.class_names) == 1000


def test_preprocessing_is_tf_style_scaling(model):
    x = torch.tensor([0.0, 127 / 255, 1.0]).view(1, 3, 1, 1)
    assert torch.allclose(model.normalize(x).flatten(), torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-6)


def test_class_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ModelLoadError, match="efficientnet_lite0"):
        phosphene.load_model("efficientnet_lite")


def test_missing_and_unreadable_weights_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        phosphene.load_model("efficientnet_lite0", weights=tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read"):
        phosphene.load_model("efficientnet_lite0", weights=junk)


def test_weights_of_another_model_do_not_fit(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(ModelLoadError, match="do not fit"):
        phosphene.load_model("efficientnet_lite0", weights=path)


def test_weights_file_replaces_default_weights(tmp_path, model):
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["_fc.bias"] += 1.0
    path = tmp_path / "shifted.pth"
    torch.save(state, path)
    shifted = phosphene.load_model("efficientnet_lite0", weights=path)
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(shifted(x), model(x) + 1.0, atol=1e-4)


def test_any_module_can_be_wrapped_and_loaded_with_weights(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    path = tmp_path / "net.pth"
    torch.save(net.state_dict(), path)
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    loaded = phosphene.load_model(fresh, weights=path)
    assert isinstance(loaded, ImageModel) and phosphene.layer_names(loaded) == ["0", "1", "2", "3"]
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(x), net(x))


def test_list_models_names_the_default():
    assert "efficientnet_lite0" in list_models()


def test_torchvision_prefix_without_torchvision_is_a_clear_error():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="torchvision"):
            phosphene.load_model("torchvision:resnet18")
    else:  # installed: an unknown architecture is refused before anything is fetched
        with pytest.raises(ModelLoadError, match="no model 'not_a_model'"):
            phosphene.load_model("torchvision:not_a_model")


def test_timm_prefix_without_timm_is_a_clear_error():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match=r"pip install -e '\.\[timm\]' -c constraints/cpu\.txt"):
            phosphene.load_model("timm:resnet18")
    else:
        with pytest.raises(ModelLoadError, match="timm has no model 'not_a_model'"):
            phosphene.load_model("timm:not_a_model")


def test_list_models_names_inceptionv1_and_the_library_forms():
    names = list_models()
    assert "inceptionv1" in names and "efficientnet_lite2" in names
    for prefix in ("torchvision", "timm"):
        try:
            __import__(prefix)
        except ImportError:
            assert not any(n.startswith(prefix) for n in names)
        else:
            assert any(n.startswith(f"{prefix}:<arch>") for n in names)
