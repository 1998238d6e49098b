"""LayerTap: truncated forward passes give the activations of a full forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import phosphene
from phosphene.errors import LayerNotFoundError
from phosphene.layers.recording import layer_shapes
from phosphene.layers.tap import LayerTap


@pytest.mark.parametrize("layers", [["_relu0"], ["_blocks.3._bn1"], ["_blocks.8"],
                                    ["_blocks.2", "_blocks.11._depthwise_conv"], ["_conv_head"]])
def test_truncated_and_full_forward_give_identical_activations(model, layers):
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with LayerTap(model, layers, truncate=False) as full, LayerTap(model, layers) as cut:
        reference = full(x)
        cut(x)  # the first call learns where to stop
        truncated = cut(x)
        assert cut.stop_layer == max(layers, key=lambda n: phosphene.layer_names(model).index(n))
    for name in layers:
        assert torch.equal(truncated[name], reference[name])


def test_truncated_forward_skips_the_later_layers(model):
    ran = []
    handle = model.net._conv_head.register_forward_hook(lambda *_: ran.append(True))
    try:
        with LayerTap(model, ["_blocks.4"]) as tap:
            tap(torch.rand(1, 3, 64, 64))
            ran.clear()
            tap(torch.rand(1, 3, 64, 64))
    finally:
        handle.remove()
    assert ran == []


def test_gradients_flow_through_a_truncated_forward(model):
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    with LayerTap(model, ["_blocks.5"]) as tap:
        tap(x.detach())
        tap(x)["_blocks.5"].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_logits_and_input_are_special_layers(model):
    x = torch.rand(1, 3, 64, 64)
    with LayerTap(model, ["logits", "input", "_blocks.1"]) as tap:
        acts = tap(x)
    assert acts["logits"].shape == (1, 1000) and acts["input"] is x and not tap.truncate


def test_a_reused_module_keeps_its_last_output_before_the_stop():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 2, 1))
    model = phosphene.load_model(net)
    x = torch.randn(1, 3, 8, 8)
    with LayerTap(model, ["1"]) as tap:
        first = tap(x)["1"]
        second = tap(x)["1"]
    expected = relu(net[2](relu(net[0](x))))
    assert torch.equal(first, expected) and torch.equal(second, expected)


def test_unknown_layer_lists_close_names(model):
    with pytest.raises(LayerNotFoundError) as info:
        LayerTap(model, ["_block.8"])
    assert "_blocks.8" in str(info.value) and "_blocks.8" in info.value.close


def test_layer_shapes_cover_every_module(model):
    shapes = dict((name, shape) for name, _, shape in layer_shapes(model, 224))
    assert shapes["_blocks.8"] == (1, 112, 14, 14)
    assert shapes["_fc"] == (1, 1000)
    assert shapes["_blocks"] is None  # a container that never runs itself
