"""Layouts on real torchvision / timm architectures (tiny, random weights) and the real Lite0.

Every path reads activations through `LayerTap`, whose canonical (B, C, H, W) view has C = features
in every layout; these tests check that view against the raw outputs and run each family through
render (channel / neuron / direction), attribution, mining and the atlas vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.attribution import attribute
from phosphene.errors import PhospheneError, UnitOutOfRangeError
from phosphene.inhibition.atlas import activation_vectors
from phosphene.inhibition.tension import compute_tension
from phosphene.layers.layouts import Layout, token_layout

tv_models = pytest.importorskip("torchvision.models")
timm = pytest.importorskip("timm")

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Case:
    """A model family: the layer under test, its layout and feature count, the input side."""

    fixture: str
    layer: str
    layout: Layout
    features: int
    size: int


CASES = {
    "tv_vit": Case("tv_vit", "encoder.layers.encoder_layer_0", Layout("NLC", 1, (4, 4)), 16, 32),
    "tv_vit_mlp": Case("tv_vit", "encoder.layers.encoder_layer_1.mlp.1", Layout("NLC", 1, (4, 4)), 32, 32),
    "timm_vit": Case("timm_vit", "blocks.0", Layout("NLC", 1, (4, 4)), 16, 32),
    "timm_vit_mlp": Case("timm_vit", "blocks.1.mlp.act", Layout("NLC", 1, (4, 4)), 64, 32),
    "tv_convnext": Case("tv_convnext", "features.1.0.block.4", Layout("NHWC"), 32, 32),
    "timm_convnext": Case("timm_convnext", "stages.0.blocks.0.mlp.act", Layout("NHWC"), 32, 32),
    "googlenet": Case("googlenet", "inception3b", Layout("NCHW"), 480, 64),
    "lite0": Case("model", "_blocks.8", Layout("NCHW"), 112, 64),
}


def _wrap(net: nn.Module, size: int) -> phosphene.ImageModel:
    torch.manual_seed(0)
    return phosphene.ImageModel(net.eval(), input_size=size)


@pytest.fixture(scope="module")
def tv_vit():
    torch.manual_seed(0)
    return _wrap(tv_models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                             hidden_dim=16, mlp_dim=32), 32)


@pytest.fixture(scope="module")
def timm_vit():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return _wrap(VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                                   num_classes=10), 32)


@pytest.fixture(scope="module")
def tv_convnext():
    from torchvision.models.convnext import CNBlockConfig

    torch.manual_seed(0)
    return _wrap(tv_models.ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)],
                                    num_classes=10), 32)


@pytest.fixture(scope="module")
def timm_convnext():
    from timm.models.convnext import ConvNeXt

    torch.manual_seed(0)
    return _wrap(ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), conv_mlp=False, num_classes=10), 32)


@pytest.fixture(scope="module")
def googlenet():
    torch.manual_seed(0)
    return _wrap(tv_models.googlenet(weights=None, aux_logits=False, init_weights=False), 64)


def _raw_output(model, layer, x):
    """The layer's own output, captured by a hook outside phosphene."""
    seen = {}
    module = phosphene.resolve_layer(model, layer)
    handle = module.register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    out = seen["out"]
    return out[0] if isinstance(out, tuple) else out


def _manual_canonical(raw, layout):
    if layout.kind == "NHWC":
        return raw.permute(0, 3, 1, 2)
    if layout.kind == "NLC":
        gh, gw = layout.grid
        return raw[:, layout.prefix:].reshape(raw.shape[0], gh, gw, -1).permute(0, 3, 1, 2)
    return raw


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_canonical_view_is_the_detected_layout_with_features_as_channels(case, request):
    model = request.getfixturevalue(case.fixture)
    x = torch.rand(2, 3, case.size, case.size)
    with phosphene.LayerTap(model, [case.layer]) as tap, torch.no_grad():
        act = tap(x)[case.layer]
        assert tap.layouts[case.layer] == case.layout
    assert act.shape[:2] == (2, case.features)
    expected = _manual_canonical(_raw_output(model, case.layer, x), case.layout)
    assert torch.allclose(act, expected, atol=1e-6)
    table = {name: (shape, layout) for name, _, shape, layout in phosphene.layer_table(model, case.size)}
    shape, layout = table[case.layer]
    assert layout == case.layout and layout.canonical_shape(shape)[1] == case.features


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_channel_neuron_and_direction_render_features(case, request):
    model = request.getfixturevalue(case.fixture)
    last = case.features - 1
    objective = obj.stack([obj.channel(case.layer, [0, last]), obj.neuron(case.layer, 1, x=0, y=1),
                           obj.direction(case.layer, torch.ones(case.features))])
    result = phosphene.render(model, objective, steps=2, size=case.size, transforms="none",
                              progress=False)
    assert result.images.shape == (4, 3, case.size, case.size)
    assert torch.isfinite(result.final).all()
    with pytest.raises(UnitOutOfRangeError, match=f"has {case.features} "):
        phosphene.render(model, obj.channel(case.layer, case.features), steps=1, size=case.size,
                         transforms="none", progress=False)


# target (a Linear layer), attribution layer (its input), the Linear module: f - bias = ΣA exactly
LINEAR = {
    "tv_vit": ("encoder.layers.encoder_layer_0.mlp.3", "encoder.layers.encoder_layer_0.mlp.1"),
    "timm_vit": ("blocks.0.mlp.fc2", "blocks.0.mlp.act"),
    "tv_convnext": ("features.1.0.block.5", "features.1.0.block.4"),
    "timm_convnext": ("stages.0.blocks.0.mlp.fc2", "stages.0.blocks.0.mlp.act"),
}


@pytest.mark.parametrize("fixture", LINEAR)
def test_attribution_reads_features_and_is_complete_through_a_linear_layer(fixture, request):
    model = request.getfixturevalue(fixture)
    target, layer = LINEAR[fixture]
    unit = 3
    result = attribute(model, torch.rand(3, 3, 32, 32), f"{target}:{unit}", [layer], keep=True)
    part = result.layers[layer]
    bias = phosphene.resolve_layer(model, target).bias[unit].item()
    assert torch.allclose(part.total, result.f - bias, atol=1e-4)
    assert torch.allclose(part.e_plus - part.e_minus, part.total, atol=1e-5)
    assert (part.e_plus > 0).all() and (part.e_minus > 0).all()
    assert part.attribution.shape[1] == phosphene.resolve_layer(model, target).in_features


def test_preactivation_target_on_tokens_reads_the_activation_input(timm_vit):
    x = torch.rand(2, 3, 32, 32)
    result = attribute(timm_vit, x, "blocks.1.mlp.act:5@1,2", ["blocks.0"])
    fc1 = _raw_output(timm_vit, "blocks.1.mlp.fc1", x)  # the GELU's input: 1 class token + 4x4
    assert torch.allclose(result.f, fc1[:, 1 + 1 * 4 + 2, 5], atol=1e-5)


def test_lite0_attribution_keeps_its_completeness(model):
    result = attribute(model, torch.rand(2, 3, 64, 64), "_blocks.8:3", ["_blocks.6"])
    assert result.layers["_blocks.6"].total.shape == (2,) and torch.isfinite(result.f).all()


def test_class_token_units(tv_vit, timm_vit):
    x = torch.rand(2, 3, 32, 32)
    for model, layer in ((tv_vit, "encoder.layers.encoder_layer_1"), (timm_vit, "blocks.1")):
        unit = phosphene.parse_unit(f"{layer}:3@cls")
        assert unit.layer == f"{layer}#cls" and str(unit) == f"{layer}:3@cls"
        with phosphene.LayerTap(model, [unit.layer]) as tap, torch.no_grad():
            value = unit.objective()(obj.Acts(tap(x)))
        assert torch.allclose(value, _raw_output(model, layer, x)[:, 0, 3], atol=1e-6)
        phosphene.render(model, unit.objective(), steps=2, size=32, transforms="none", progress=False)
    result = attribute(tv_vit, x, "encoder.layers.encoder_layer_1.mlp.3:2@cls",
                       ["encoder.layers.encoder_layer_1.mlp.1#cls", "encoder.layers.encoder_layer_1.mlp.1"])
    assert result.layers["encoder.layers.encoder_layer_1.mlp.1"].total.abs().max() == 0  # other tokens
    with pytest.raises(PhospheneError, match="no class token"):
        with phosphene.LayerTap(tv_vit, ["conv_proj#cls"]) as tap:
            tap(x)


def _heads_by_hand(attn, x):
    """Per-head output norms (B, L, heads) of a timm Attention for its input x (B, L, E)."""
    b, length, e = x.shape
    qkv = attn.qkv(x).reshape(b, length, 3, attn.num_heads, e // attn.num_heads).permute(2, 0, 3, 1, 4)
    weights = (qkv[0] @ qkv[1].transpose(-2, -1) * attn.scale).softmax(-1)
    return (weights @ qkv[2]).norm(dim=-1).transpose(1, 2)


def test_attention_heads_are_units(timm_vit, tv_vit):
    x = torch.rand(2, 3, 32, 32)
    attn = phosphene.resolve_layer(timm_vit, "blocks.1.attn")
    seen = {}
    handle = attn.register_forward_pre_hook(lambda _m, inputs: seen.setdefault("x", inputs[0]))
    with phosphene.LayerTap(timm_vit, ["blocks.1.attn#heads"]) as tap, torch.no_grad():
        heads = tap(x)["blocks.1.attn#heads"]
    handle.remove()
    expected = _heads_by_hand(attn, seen["x"])[:, 1:].transpose(1, 2).reshape(2, 2, 4, 4)
    assert heads.shape == (2, 2, 4, 4) and torch.allclose(heads, expected, atol=1e-5)
    result = attribute(timm_vit, x, "blocks.1.attn#heads:1@0,3", ["blocks.0"])  # a head's neuron
    assert torch.allclose(result.f, heads[:, 1, 0, 3], atol=1e-5)
    assert result.layers["blocks.0"].e_plus.shape == (2,)

    from phosphene.layers.heads import mha_head_outputs

    mha = phosphene.resolve_layer(tv_vit, "encoder.layers.encoder_layer_0.self_attention")
    tokens = torch.randn(2, 17, 16)
    with torch.no_grad():
        recomputed = nn.functional.linear(mha_head_outputs(mha, tokens, tokens, tokens),
                                          mha.out_proj.weight, mha.out_proj.bias)
        assert torch.allclose(recomputed, mha(tokens, tokens, tokens, need_weights=False)[0], atol=1e-5)
    name = "encoder.layers.encoder_layer_0.self_attention#heads"
    result = phosphene.render(tv_vit, obj.channel(name, [0, 1]), steps=2, size=32, transforms="none",
                              progress=False)
    assert torch.isfinite(result.final).all()
    with pytest.raises(PhospheneError, match="not an attention module"):
        phosphene.LayerTap(tv_vit, ["encoder.layers.encoder_layer_0.ln_1#heads"])


def test_layout_override_and_its_errors(tv_convnext):
    layer = "features.1.0.block.4"
    x = torch.rand(1, 3, 32, 32)
    with phosphene.LayerTap(tv_convnext, [layer], layouts={layer: "NCHW"}) as tap, torch.no_grad():
        assert tap(x)[layer].shape == (1, 8, 8, 32)  # taken as it comes
    with pytest.raises(PhospheneError, match="does not fit"):
        with phosphene.LayerTap(tv_convnext, [layer], layouts={layer: "NC"}) as tap:
            tap(x)
    with pytest.raises(PhospheneError, match="unknown layout"):
        phosphene.LayerTap(tv_convnext, [layer], layouts={layer: "HWC"})


def test_token_layouts_without_a_declared_prefix():
    assert token_layout(197, (224, 224), None) == Layout("NLC", 1, (14, 14))
    assert token_layout(200, (224, 224), None) == Layout("NLC", 4, (14, 14))  # registers
    assert token_layout(196, (224, 224), 1) == Layout("NLC", 0, (14, 14))
    assert token_layout(98, (112, 224), 0) == Layout("NLC", 0, (7, 14))
    assert token_layout(141, (225, 160), 1) == Layout("NLC", 1, (14, 10))  # within one patch


class _Head(nn.Module):
    def forward(self, x):
        raise RuntimeError("head: input too small")


def test_first_call_stops_at_the_deepest_read_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), _Head())
    model = phosphene.load_model(net)
    result = phosphene.render(model, obj.channel("1", [0, 1]), steps=2, size=16, transforms="none",
                              progress=False)
    assert result.images.shape == (2, 3, 16, 16)
    with pytest.raises(PhospheneError, match=r"fails on 16x16 images \(RuntimeError: head: input too small"):
        with phosphene.LayerTap(model, ["logits"]) as tap:
            tap(torch.rand(1, 3, 16, 16))


def test_mining_and_atlas_vectors_count_features(tv_vit, samples_dir, tmp_path):
    from phosphene import mining

    root = tmp_path / "images"
    root.mkdir()
    for path in sorted(samples_dir.iterdir())[:6]:
        (root / path.name).symlink_to(path)
    layer = "encoder.layers.encoder_layer_1"
    run = mining.run_mining(tv_vit, [layer], root, tmp_path / "run", k=2, batch_size=3, num_workers=0,
                            size=32, progress=False)
    assert run.manifest["layer_shapes"][layer] == [16, 4, 4]
    assert set(run.table().column("unit").to_pylist()) == set(range(16))
    vectors = activation_vectors(tv_vit, torch.rand(4, 3, 32, 32), layer)
    assert vectors.shape == (4, 16)
    table = compute_tension(tv_vit, root, "encoder.layers.encoder_layer_1.mlp.1:31",
                            ["encoder.layers.encoder_layer_0"], batch_size=3, num_workers=0, size=32)
    assert len(table.index) == 6


@pytest.mark.parametrize("fixture, unit, reg_layer", [
    ("timm_vit", "blocks.1:3", "blocks.0"),
    ("tv_convnext", "features.1.0.block.4:31", "features.0")])
def test_accentuate_token_and_nhwc_layers(fixture, unit, reg_layer, request):
    model = request.getfixturevalue(fixture)
    result = phosphene.accentuate(model, unit, torch.rand(2, 3, 32, 32), reg_layer=reg_layer, steps=2,
                                  crops=2, measure_crops=2, input_size=32, progress=False)
    assert result.images.shape == (2, 3, 32, 32) and torch.isfinite(result.images).all()


def test_cli_layers_shows_layouts_and_takes_overrides():
    from click.testing import CliRunner

    from phosphene.cli.app import main

    runner = CliRunner()
    result = runner.invoke(main, ["layers", "efficientnet_lite0", "--size", "64",
                                  "--layout", "_blocks.8=NHWC"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert rows["_blocks.8"][3:] == ["NHWC", "4", "units"]
    assert rows["_blocks.6"][3:] == ["NCHW", "80", "units"] and rows["_fc"][3:] == ["NC", "1000", "units"]
    bad = runner.invoke(main, ["layers", "efficientnet_lite0", "--layout", "_blocks.8"])
    assert bad.exit_code == 2 and "NAME=LAYOUT" in bad.output


def test_cli_render_takes_layout_overrides(tmp_path):
    from click.testing import CliRunner

    from phosphene.cli.app import main

    args = ["render", "--layer", "_blocks.1", "--channels", "0", "--steps", "1", "--size", "32",
            "--quiet", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--layout", "_blocks.1=NC"])
    assert result.exit_code == 2 and "layout NC does not fit _blocks.1" in result.output
    assert CliRunner().invoke(main, [*args, "--layout", "_blocks.1=NCHW"]).exit_code == 0


def test_recorded_pass_leaves_training_statistics_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),
                        nn.BatchNorm2d(4))
    model = phosphene.load_model(net).train()
    with phosphene.LayerTap(model, ["2"]) as tap:
        tap(torch.rand(2, 3, 16, 16))
    assert net[1].num_batches_tracked == 1 and net[4].num_batches_tracked == 0  # truncated at once
    assert net.training and net[1].training
