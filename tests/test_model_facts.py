"""The model's facts once: entry points wrap a bare module into an `ImageModel` and read its
device, input size, fixed side and channels from it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.errors import PhospheneError
from phosphene.models import ImageModel, as_image_model, model_side


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))


def test_a_bare_module_is_wrapped_with_the_load_model_facts():
    net = _net().eval()
    wrapped = as_image_model(net)
    assert isinstance(wrapped, ImageModel) and wrapped.net is net and wrapped.name == "Sequential"
    assert (wrapped.device, wrapped.input_size, wrapped.fixed_side, wrapped.channels) == (
        torch.device("cpu"), 224, None, 3)
    assert not wrapped.training
    assert as_image_model(wrapped) is wrapped
    with pytest.raises(PhospheneError, match="expected a torch.nn.Module"):
        as_image_model("efficientnet_lite0")


def test_a_declared_fixed_side_is_the_only_side():
    model = ImageModel(_net(), input_size=32)
    model.fixed_size = 32
    assert model.fixed_side == 32 and model.side() == 32 and model_side(model, 32) == 32
    with pytest.raises(PhospheneError, match="only takes 32-pixel images"):
        model.side(48)


@pytest.mark.parametrize("training", [False, True])
def test_rendering_a_bare_module_leaves_its_mode_and_gradients_as_they_were(training):
    net = _net().train(training)
    result = phosphene.render(net, obj.channel("2", 1), steps=2, size=16, progress=False)
    assert net.training is training and all(m.training is training for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
    assert result.settings["model"] == "Sequential"


def test_a_bare_module_renders_as_its_wrapped_model():
    net = _net().eval()
    bare = phosphene.render(net, obj.channel("2", [0, 1]), steps=3, size=20, progress=False)
    loaded = phosphene.render(phosphene.load_model(net, device="cpu"), obj.channel("2", [0, 1]), steps=3,
                              size=20, progress=False)
    assert torch.equal(bare.images, loaded.images) and torch.equal(bare.history, loaded.history)
