"""Layers whose output the network changes in place later are read as they were produced.

torchvision and timm networks use ``ReLU(inplace=True)`` after a BatchNorm and ``out += identity``
in residual blocks; a hook that kept the BatchNorm's output tensor would see the later, rectified
values. Every model here has a twin with the same weights and no in-place operations: reads,
gradients and attribution must agree between the two.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from phosphene.attribution import Attributor
from phosphene.layers.recording import recorded_pass
from phosphene.layers.tap import LayerTap


class Residual(nn.Module):
    """conv -> bn -> ReLU, conv -> bn, ``out += x`` (in place), ReLU: torchvision's BasicBlock."""

    def __init__(self, channels: int, inplace: bool):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_relu = nn.ReLU(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.inplace:
            out += x
        else:
            out = out + x
        return self.out_relu(out)


def network(inplace: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(inplace=inplace),
                          Residual(8, inplace), nn.Conv2d(8, 4, 3, stride=2))
    for module in model.modules():  # BatchNorm statistics that move values across zero
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture()
def twins() -> tuple[nn.Module, nn.Module]:
    plain = network(inplace=False)
    inplace = network(inplace=True)
    inplace.load_state_dict(plain.state_dict())
    return plain, inplace


LAYERS = ["1", "2", "3.bn1", "3.bn2", "3", "4"]


def test_recording_names_the_outputs_changed_in_place(twins):
    plain, inplace = twins
    x = torch.rand(2, 3, 20, 20)
    assert recorded_pass(plain, x, cache=False).modified == set()
    modified = recorded_pass(inplace, x, cache=False).modified
    assert {"1", "3.bn1", "3.bn2"} <= modified  # rectified, rectified, += identity
    assert "4" not in modified and "3.conv1" not in modified


def test_tap_reads_the_values_a_layer_produced(twins):
    plain, inplace = twins
    x = torch.rand(3, 3, 20, 20)
    with LayerTap(plain, LAYERS) as tap_plain, LayerTap(inplace, LAYERS) as tap_inplace, torch.no_grad():
        want, got = tap_plain(x), tap_inplace(x)
    assert float(want["1"].min()) < 0 and float(want["3.bn2"].min()) < 0  # so the check can fail
    for name in LAYERS:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6, msg=name)


def test_gradients_through_copied_layers_are_the_layers(twins):
    plain, inplace = twins
    x = torch.rand(2, 3, 20, 20)
    grads = []
    for model in (plain, inplace):
        image = x.clone().requires_grad_(True)
        with LayerTap(model, ["1", "3.bn2", "4"]) as tap:
            acts = tap(image)
            out = acts["4"].square().sum()
            grads.append(torch.autograd.grad(out, [acts["1"], acts["3.bn2"], image]))
    for want, got in zip(*grads):
        assert float(want.abs().max()) > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_attribution_to_an_inplace_activation_reads_its_input(twins):
    plain, inplace = twins
    x = torch.rand(4, 3, 20, 20)
    with LayerTap(plain, ["3.bn1"]) as tap, torch.no_grad():  # 3.relu's input
        channel = int(tap(x)["3.bn1"].mean(dim=(2, 3)).max(dim=0).values.argmin())
    results = []
    for model in (plain, inplace):
        with Attributor(model, f"3.relu:{channel}", ["1"]) as attributor:
            results.append(attributor(x))
    want, got = results
    assert float(want.f.min()) < 0  # the pre-activation: rectified values would all be >= 0
    torch.testing.assert_close(got.f, want.f, rtol=1e-5, atol=1e-6)
    for key in ("e_plus", "e_minus", "total"):
        torch.testing.assert_close(getattr(got.layers["1"], key), getattr(want.layers["1"], key),
                                   rtol=1e-4, atol=1e-5)


def test_the_model_is_unchanged_and_still_inplace(twins):
    _, inplace = twins
    before = copy.deepcopy(inplace.state_dict())
    x = torch.rand(2, 3, 20, 20)
    with LayerTap(inplace, ["1", "4"]) as tap:
        tap(x)
    assert inplace[2].inplace and inplace[3].relu.inplace
    for key, value in inplace.state_dict().items():
        assert torch.equal(value, before[key])
    assert not inplace[1]._forward_hooks and not inplace[3].relu._forward_pre_hooks


def test_reads_under_inference_mode_are_the_layers_too(twins):
    plain, inplace = twins
    x = torch.rand(2, 3, 24, 24)
    with torch.inference_mode():
        with LayerTap(plain, LAYERS) as tap_plain, LayerTap(inplace, LAYERS) as tap_inplace:
            want, got = tap_plain(x), tap_inplace(x)
    for name in LAYERS:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6, msg=name)
