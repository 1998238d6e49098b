"""The model matrix for layers whose first dimension is not the image batch (issue 28): timm Swin
(shifted windows, heads), MobileViT (patch offsets folded into the batch), MaxViT (windows and
strided grids), LeViT (tokens folded into the batch for a BatchNorm1d), next to ordinary token layers
of LeViT, EfficientFormer and Hugging Face models.

Each layer is either read as the (B, C, H, W) map the network itself merges it into (checked against
the libraries' own window_reverse / grid_reverse / MobileViT folding) or refused in one line, and no
image's objective depends on another image of the batch. Tiny configs, random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.attribution import attribute
from phosphene.errors import PhospheneError
from phosphene.layers.recording import execution_order, layer_rows
from phosphene.models.input_shape import fit_side, fixed_input_size

pytest.importorskip("timm")
pytest.importorskip("transformers")
import tiny_models as tm  # noqa: E402 - after the skips

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zoo() -> tm.Zoo:
    return tm.Zoo()


def tokens_map(layer: str, prefix: int, grid: tuple[int, int]) -> Callable:
    """Hand view of an ordinary token layer: drop the prefix tokens, the patch grid as (C, gh, gw)."""
    return lambda model, x: tm.raw_io(model, layer, x)[:, prefix:].transpose(1, 2).unflatten(2, grid)


@dataclass
class Case:
    model: str
    layer: str
    size: int
    hand: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (model, images) -> (B, C, H, W)


WINDOWED = {
    "swin_shifted": Case("swin", "layers.1.blocks.1.attn", 32,
                         lambda m, x: tm.swin_map(m, "layers.1.blocks.1", x)),
    "swin_heads": Case("swin", "layers.1.blocks.0.attn#heads", 32,
                       lambda m, x: tm.swin_map(m, "layers.1.blocks.0", x, of_heads=True)),
    "mobilevit": Case("mobilevit", "stages.3.1.transformer.0", 64,
                      lambda m, x: tm.mobilevit_map(m, "stages.3.1", "stages.3.1.transformer.0", x)),
    "mobilevit_norm": Case("mobilevit", "stages.2.1.norm", 64,
                           lambda m, x: tm.mobilevit_map(m, "stages.2.1", "stages.2.1.norm", x)),
    "maxvit_window": Case("maxvit", "stages.0.blocks.0.attn_block.attn", 32,
                          lambda m, x: tm.maxvit_map(m, "stages.0.blocks.0.attn_block", x)),
    "maxvit_grid": Case("maxvit", "stages.1.blocks.0.attn_grid.attn", 32,
                        lambda m, x: tm.maxvit_map(m, "stages.1.blocks.0.attn_grid", x)),
    # LeViT's BatchNorm1d sees its 16 tokens as rows: its LinearNorm reshapes them back
    "levit_bn": Case("levit", "stages.0.blocks.0.mlp.ln1.bn", 64,
                     tokens_map("stages.0.blocks.0.mlp.ln1", 0, (4, 4))),
}
ORDINARY = {
    "levit": Case("levit", "stages.1.blocks.0", 64, tokens_map("stages.1.blocks.0", 0, (2, 2))),
    "efficientformer": Case("efficientformer", "stages.3.blocks.1", 224,
                            tokens_map("stages.3.blocks.1", 0, (7, 7))),
    "hf_vit": Case("hf_vit", "vit.layers.1", 32, tokens_map("vit.layers.1", 1, (4, 4))),
    "hf_clip": Case("hf_clip", "encoder.layers.1", 32, tokens_map("encoder.layers.1", 1, (4, 4))),
}
ALL = {**WINDOWED, **ORDINARY}


def _images(case: Case, seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", WINDOWED.values(), ids=WINDOWED)
def test_windowed_layers_are_the_map_the_network_merges_them_into(case, zoo):
    model = zoo[case.model]
    x = _images(case)
    with phosphene.LayerTap(model, [case.layer]) as tap, torch.no_grad():
        view = tap(x)[case.layer]
    expected = case.hand(model, x)
    assert view.shape == expected.shape and torch.allclose(view, expected, atol=1e-5)
    row = next(r for r in layer_rows(model, case.size) if r.name == case.layer.split("#")[0])
    assert row.layout.partition is not None and row.shape[0] == row.layout.partition.rows > 1
    assert row.refused is None and (not case.layer.endswith("#heads") or "#heads" in row.views)


def _image_zero(model: nn.Module, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Objective values (channels 0 and 1 of images 0 and 1) and the gradient of image 0's value."""
    x = x.clone().requires_grad_(True)
    with phosphene.LayerTap(model, [layer]) as tap:
        values = obj.channel(layer, [0, 1])(obj.Acts(tap(x)))
    (grad,) = torch.autograd.grad(values[0], x)
    return values.detach(), grad


@pytest.mark.parametrize("case", ALL.values(), ids=ALL)
def test_each_image_objective_depends_only_on_that_image(case, zoo):
    model = zoo[case.model]
    x = _images(case)
    values, grad = _image_zero(model, case.layer, x)
    other = x.clone()
    other[1] = torch.rand(3, case.size, case.size, generator=torch.Generator().manual_seed(9))
    values_other, grad_other = _image_zero(model, case.layer, other)
    assert grad[1].abs().max() == 0 and grad[0].abs().max() > 0  # image 1 plays no part in image 0's value
    assert torch.allclose(values[0], values_other[0], atol=1e-6)
    assert torch.allclose(grad[0], grad_other[0], atol=1e-6)
    assert not torch.allclose(values[1], values_other[1])


@pytest.mark.parametrize("case", ALL.values(), ids=ALL)
def test_render_with_the_defaults_reads_each_image_from_its_own_rows(case, zoo):
    model = zoo[case.model]
    result = phosphene.render(model, obj.channel(case.layer, [0, 1]), steps=2, progress=False)
    assert result.images.shape[-1] == (fixed_input_size(model) or model.input_size)
    clean = fit_side(result.images, fixed_input_size(model))
    with torch.no_grad():
        by_hand = case.hand(model, clean)[[0, 1], [0, 1]].mean((1, 2))
    assert torch.allclose(result.final, by_hand, atol=1e-5)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from badcorpus import photo

    folder = tmp_path_factory.mktemp("photos")
    for i in range(5):
        photo(80, 72, seed=i).save(folder / f"p{i}.png")
    return folder


@pytest.mark.parametrize("key", ["swin_shifted", "mobilevit", "maxvit_grid"])
def test_mining_a_windowed_layer_ranks_images_by_their_own_rows(key, zoo, image_dir, tmp_path):
    from phosphene import mining

    case = WINDOWED[key]
    model = zoo[case.model]
    run = mining.run_mining(model, [case.layer], image_dir, tmp_path / "run", k=3, batch_size=2,
                            num_workers=0, size=case.size, progress=False)
    top = run.top(case.layer, 3, k=3)
    with torch.no_grad():
        by_hand = case.hand(model, run.load(top))[:, 3].mean((1, 2))
    assert torch.allclose(torch.tensor([e.value for e in top]), by_hand, atol=1e-5)


@pytest.mark.parametrize("key", ["swin_shifted", "mobilevit", "maxvit_window"])
def test_accentuating_a_windowed_unit_regularizes_before_it_and_measures_each_image(key, zoo):
    case = WINDOWED[key]
    model = zoo[case.model]
    result = phosphene.accentuate(model, obj.channel(case.layer, 3), _images(case), steps=2, crops=2,
                                  measure_crops=2, progress=False)
    order = execution_order(model)
    assert order.index(result.settings["reg_layer"]) < order.index(case.layer)
    with torch.no_grad():
        by_hand = case.hand(model, result.images)[:, 3].mean((1, 2))
    assert torch.allclose(result.f_after, by_hand, atol=1e-5)


def _attribution_by_hand(model, target: str, reduce: Callable, layer: str, x: torch.Tensor):
    """(f, ΣA per image) with plain hooks: A = a * df/da summed over each image's rows."""
    store = {}

    def keep(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    handles = [phosphene.resolve_layer(model, layer).register_forward_hook(keep),
               phosphene.resolve_layer(model, target).register_forward_hook(
                   lambda _m, _i, out: store.setdefault("t", out))]
    try:
        with torch.enable_grad():
            model(x.clone().requires_grad_(True))
            f = reduce(store["t"])
            f.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    a = store["a"]
    return f.detach(), (a * a.grad).reshape(x.shape[0], -1).sum(1)


ATTRIBUTED = {  # target channel 3, its reduction by hand, an attribution layer inside the windows
    "swin": ("swin", "layers.1.blocks.1.mlp.fc2", lambda t: t[..., 3].mean(1), "layers.1.blocks.1.attn", 32),
    "mobilevit": ("mobilevit", "stages.3.1.conv_proj", lambda t: t[:, 3].mean((1, 2)),
                  "stages.3.1.transformer.1", 64),
    "maxvit": ("maxvit", "stages.0.blocks.0.attn_block.mlp.fc2", lambda t: t[..., 3].mean((1, 2)),
               "stages.0.blocks.0.attn_block.attn", 32),
}


@pytest.mark.parametrize("key", ATTRIBUTED)
def test_attribution_through_windowed_layers_sums_each_image_rows(key, zoo):
    name, target, reduce, layer, size = ATTRIBUTED[key]
    model = zoo[name]
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    result = attribute(model, x, f"{target}:3", [layer], keep=True)
    f, total = _attribution_by_hand(model, target, reduce, layer, x)
    assert torch.allclose(result.f, f, atol=1e-5)
    assert torch.allclose(result.layers[layer].total, total, atol=1e-5, rtol=1e-4)
    assert result.layers[layer].attribution.shape[0] == 3  # one map per image


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_attention_weights_of_windows_are_refused_with_the_layers_near_them(zoo):
    swin = zoo["swin"]
    layer = "layers.0.blocks.0.attn.softmax"
    with pytest.raises(PhospheneError) as error:
        phosphene.render(swin, obj.channel(layer, 0), steps=1, progress=False)
    message = _one_line(error)
    assert message.startswith(f"{layer} cannot be read per image: its first dimension holds 16 windows")
    assert "layers near it that can: layers.0.blocks.0.attn" in message
    with pytest.raises(PhospheneError, match="cannot be read per image"):
        attribute(swin, torch.rand(2, 3, 32, 32), "layers.0.blocks.0.mlp.fc2:0", [layer])
    rows = {r.name: r for r in layer_rows(swin, 32)}
    assert rows[layer].refused and rows[layer].layout is None
    assert "#heads" in rows["layers.0.blocks.0.attn"].views


def test_torchvision_swin_heads_are_refused_in_one_line(zoo):
    model = zoo["tv_swin"]
    name = "features.1.0.attn#heads"
    with pytest.raises(PhospheneError) as error:
        phosphene.render(model, obj.channel(name, 0), steps=1, size=32, progress=False)
    assert "computes its heads inside its forward" in _one_line(error)
    rows = {r.name: r for r in layer_rows(model, 32)}
    assert "#heads" not in rows["features.1.0.attn"].views and rows["features.1.0.attn"].refused is None


class _Mixer(nn.Module):
    """Adds the batch mean: every image's output depends on the others."""

    def forward(self, x):
        return x + x.mean(0, keepdim=True)


class _FoldMajor(nn.Module):
    """Folds the two halves of each image into the batch half-major: (2B, C, H/2, W)."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.reshape(b, c, 2, h // 2, w).permute(2, 0, 1, 3, 4).reshape(2 * b, c, h // 2, w)


class _SeqFirst(nn.Module):
    """Tokens sequence-first, (L, B, C), as nn.MultiheadAttention without batch_first returns them."""

    def forward(self, x):
        return x.flatten(2).permute(2, 0, 1)


class _Pooled(nn.Module):
    """Sums the batch away: (1, C, H, W)."""

    def forward(self, x):
        return x.sum(0, keepdim=True)


@pytest.mark.parametrize("module, why", [(_Mixer(), "mixes the images"),
                                         (_FoldMajor(), "mixes the images"),
                                         (_SeqFirst(), "mixes the images"),
                                         (_Pooled(), "does not have the images as its first dimension")])
def test_layers_that_mix_or_misplace_images_are_refused_by_behaviour(module, why):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), module, nn.Flatten(), nn.LazyLinear(2))
    net(torch.rand(2, 3, 8, 8))  # the lazy layer takes whatever the odd module returns
    model = phosphene.load_model(net, device="cpu")
    with pytest.raises(PhospheneError) as error:
        phosphene.render(model, obj.channel("1", 0), steps=1, size=8, transforms="none", progress=False)
    message = _one_line(error)
    assert why in message and "layers near it that can: 0" in message
    phosphene.render(model, obj.channel("0", 0), steps=1, size=8, transforms="none", progress=False)
