"""E⁺/E⁻ attribution on the real model: the identities of METHODS §3, pre-activation targets, batching."""

from __future__ import annotations

import pytest
import torch

from phosphene.attribution import Target, attribute, parse_target
from phosphene.errors import LayerNotFoundError, PhospheneError, UnitOutOfRangeError
from phosphene.io.images import list_images, load_image
from phosphene.layers.names import resolve_layer

SIZE = 96


@pytest.fixture(scope="module")
def images(samples_dir) -> torch.Tensor:
    return torch.stack([load_image(p, SIZE) for p in list_images(samples_dir)[::80][:6]])


def reference_attribution(model, images, target_layer, channel, layer, read_input=False):
    """f and A = a * df/da computed with plain hooks and a full forward (no phosphene code)."""
    store = {}
    target_module, layer_module = resolve_layer(model, target_layer), resolve_layer(model, layer)
    handles = [
        target_module.register_forward_hook(
            lambda m, i, o: store.__setitem__("t", i[0] if read_input else o)),
        layer_module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o)),
    ]
    try:
        with torch.enable_grad():
            model(images.clone().requires_grad_(True))
            f = store["t"][:, channel].mean(dim=(1, 2))
            (g,) = torch.autograd.grad(f.sum(), store["a"])
    finally:
        for handle in handles:
            handle.remove()
    return f.detach(), store["a"].detach() * g


def test_e_plus_minus_e_minus_equals_the_sum_of_a(model, images):
    result = attribute(model, images, "_blocks.8._relu1:3", ["_blocks.7", "_blocks.3", "input"])
    f_ref, a_ref = reference_attribution(model, images, "_blocks.8._relu1", 3, "_blocks.3", read_input=True)
    torch.testing.assert_close(result.f, f_ref, rtol=1e-5, atol=1e-5)
    b3 = result.layers["_blocks.3"]
    torch.testing.assert_close(b3.total, a_ref.sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b3.e_plus, a_ref.clamp(min=0).sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b3.e_minus, (-a_ref).clamp(min=0).sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    for layer in result.layers.values():
        scale = (layer.e_plus + layer.e_minus).max()
        assert ((layer.e_plus - layer.e_minus - layer.total).abs() <= 1e-5 * scale).all()
        assert (layer.e_plus >= 0).all() and (layer.e_minus >= 0).all()


def test_l2_variant_sums_per_position_channel_norms(model, images):
    result = attribute(model, images, "_blocks.8:0", ["_blocks.6"])
    _, a = reference_attribution(model, images, "_blocks.8", 0, "_blocks.6")
    layer = result.layers["_blocks.6"]
    torch.testing.assert_close(layer.e_plus_l2, a.clamp(min=0).norm(dim=1).sum(dim=(1, 2)), rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(layer.e_minus_l2, (-a).clamp(min=0).norm(dim=1).sum(dim=(1, 2)),
                               rtol=1e-4, atol=1e-5)
    channels = a.shape[1]
    assert (layer.e_plus_l2 <= layer.e_plus * (1 + 1e-5)).all()
    assert (layer.e_plus_l2 >= layer.e_plus / channels**0.5 * (1 - 1e-5)).all()


def test_attribution_through_a_bias_free_linear_map_is_complete(model, images):
    # _project_conv is a 1x1 convolution without bias: f = sum(w * a) exactly, so sum(A) = f.
    result = attribute(model, images, "_blocks.8._project_conv:5", ["_blocks.8._relu1"])
    torch.testing.assert_close(result.layers["_blocks.8._relu1"].total, result.f, rtol=1e-4, atol=1e-4)


def test_target_is_the_pre_activation_of_an_activation_layer(model, images):
    images = images[:4]
    pre = attribute(model, images, "_blocks.8._relu1:3", ["_blocks.7"]).f
    bn = attribute(model, images, "_blocks.8._bn1:3", ["_blocks.7"]).f
    post = attribute(model, images, Target("_blocks.8._relu1", 3, preactivation=False), ["_blocks.7"]).f
    torch.testing.assert_close(pre, bn)
    assert (pre < 0).any(), "pre-activation values must keep their sign"
    assert (post >= 0).all() and (post <= 6).all() and not torch.allclose(post, pre)


def test_centre_position_reads_the_middle_of_the_grid(model, images):
    result = attribute(model, images, Target("_blocks.8._bn1", 2, position="centre"), ["_blocks.5"])
    store = {}
    handle = resolve_layer(model, "_blocks.8._bn1").register_forward_hook(
        lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        model(images)
    handle.remove()
    h, w = store["a"].shape[-2:]
    torch.testing.assert_close(result.f, store["a"][:, 2, h // 2, w // 2], rtol=1e-5, atol=1e-5)


def test_maps_split_the_attribution_per_position(model, images):
    result = attribute(model, images[:4], "_blocks.8._relu1:3", ["_blocks.6"], maps=True)
    layer = result.layers["_blocks.6"]
    assert layer.phi_plus.shape == (4, *layer.phi_plus.shape[1:]) and layer.phi_plus.dim() == 3
    torch.testing.assert_close((layer.phi_plus - layer.phi_minus).sum(dim=(1, 2)), layer.total,
                               rtol=1e-4, atol=1e-5)


def test_batched_results_equal_one_image_at_a_time(model, images):
    batched = attribute(model, images[:4], "_blocks.8._relu1:3", ["_blocks.5"], batch_size=4)
    single = attribute(model, images[:4], "_blocks.8._relu1:3", ["_blocks.5"], batch_size=1)
    torch.testing.assert_close(batched.f, single.f, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.layers["_blocks.5"].e_minus, single.layers["_blocks.5"].e_minus,
                               rtol=1e-4, atol=1e-5)


def test_bad_targets_and_layers_are_clear_errors(model, images):
    with pytest.raises(PhospheneError, match="does not come before"):
        attribute(model, images[:2], "_blocks.4:0", ["_blocks.6"])
    with pytest.raises(UnitOutOfRangeError, match="40 channels"):
        attribute(model, images[:2], "_blocks.4:40", ["_blocks.2"])
    with pytest.raises(LayerNotFoundError):
        attribute(model, images[:2], "_blocks.4:0", ["_blocks.2x"])
    with pytest.raises(PhospheneError, match="LAYER:CHANNEL"):
        parse_target("_blocks.4")
    with pytest.raises(PhospheneError, match="target layer itself"):
        attribute(model, images[:2], "_blocks.4:0", ["_blocks.4"])
