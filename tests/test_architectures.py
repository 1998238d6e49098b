"""The model matrix beyond windows (issue 28): fixed-size models other than ViTs (LeViT,
EfficientFormer, MaxViT, Hugging Face ViT and CLIP), Hugging Face ``transformers`` models through
every verb, the default regularization layer before the target, completeness with its scale, and
what the CLI reports (render.json history, significant digits, neuron positions).

Tiny configs and random weights; nothing is downloaded.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation.reg_layer import default_reg_layer, reg_layer_problem
from phosphene.attribution import SUM_ZERO, attribute, completeness_scale
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.inhibition.norm_check import normalizations_between
from phosphene.layers.recording import execution_order, layer_rows
from phosphene.models.input_shape import fixed_input_size

pytest.importorskip("timm")
pytest.importorskip("transformers")
import tiny_models as tm  # noqa: E402 - after the skips

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zoo() -> tm.Zoo:
    return tm.Zoo()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from badcorpus import photo

    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        photo(72, 64, seed=i).save(folder / f"p{i}.png")
    return folder


# -- fixed input sizes ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, side", [("levit", 64), ("efficientformer", 224), ("maxvit", 32),
                                        ("swin", 32), ("hf_vit", 32), ("hf_clip", 32), ("mobilevit", None)])
def test_fixed_input_sizes_come_from_the_model_config(name, side, zoo):
    assert fixed_input_size(zoo[name]) == side


def test_dinov2_interpolates_so_it_takes_any_side():
    from transformers import Dinov2Config, Dinov2Model

    net = Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                   num_attention_heads=2, mlp_ratio=2))
    model = phosphene.load_model(net, device="cpu")
    assert fixed_input_size(model) is None
    result = phosphene.render(model, obj.channel("encoder.layer.0", [0, 1]), steps=1, size=40, progress=False)
    assert result.images.shape[-1] == 40 and torch.isfinite(result.final).all()


class _OnlyThirtyTwo(nn.Module):
    """Takes 32 px images only (its head is sized for them) and says nothing about it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(4 * 16 * 16, 3)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def test_an_undeclared_fixed_size_model_gets_a_one_line_hint():
    model = phosphene.load_model(_OnlyThirtyTwo(), device="cpu")
    with pytest.raises(PhospheneError) as error:
        phosphene.render(model, obj.class_logit(1), steps=1, size=32, progress=False)
    message = str(error.value)
    assert "\n" not in message and re.match(r"the model fails on \d+x\d+ images \(RuntimeError", message)
    assert "--transforms crops" in message
    result = phosphene.render(model, obj.class_logit(1), steps=1, size=32, transforms="crops", progress=False)
    assert torch.allclose(result.final, model(result.images)[:, 1], atol=1e-5)


# -- Hugging Face transformers ------------------------------------------------------------------------
def test_transformers_models_list_their_layers_views_and_class_names(zoo):
    rows = {r.name: r for r in layer_rows(zoo["hf_vit"], 32)}
    assert str(rows["vit.layers.1"].layout) == "NLC(4x4 patches, 1 prefix)"
    assert rows["vit.layers.1"].views == ("#cls",)
    assert "#heads" in rows["vit.layers.1.attention"].views and rows["classifier"].layout.kind == "NC"
    assert zoo["hf_vit"].class_names is None and zoo["hf_vit"].input_size == 32  # LABEL_0... are no names


def test_transformers_class_objectives_read_the_model_output(zoo):
    vit, clip = zoo["hf_vit"], zoo["hf_clip"]
    result = phosphene.render(vit, obj.class_logit([1, 3]), steps=2, progress=False)
    with torch.no_grad():
        assert torch.allclose(result.final, vit.net(result.images).logits[[0, 1], [1, 3]], atol=1e-5)
    result = phosphene.render(clip, obj.class_logit(2), steps=2, progress=False)  # pooler_output[:, 2]
    with torch.no_grad():
        assert torch.allclose(result.final, clip.net(result.images).pooler_output[:, 2], atol=1e-5)


def test_transformers_heads_and_class_token_are_computed_from_the_projection_input(zoo):
    vit = zoo["hf_vit"]
    x = torch.rand(2, 3, 32, 32)
    names = ["vit.layers.0.attention#heads", "vit.layers.0#cls"]
    with phosphene.LayerTap(vit, names) as tap, torch.no_grad():
        acts = tap(x)
    heads = tm.heads(tm.raw_io(vit, "vit.layers.0.attention.o_proj", x, pre=True), 2)
    assert torch.allclose(acts[names[0]], heads[:, 1:].transpose(1, 2).unflatten(2, (4, 4)), atol=1e-5)
    assert torch.allclose(acts[names[1]][:, :, 0, 0], tm.raw_io(vit, "vit.layers.0", x)[:, 0], atol=1e-6)


def test_transformers_attribution_is_complete_through_a_linear_layer(zoo):
    vit = zoo["hf_vit"]
    layer = "vit.layers.1.mlp.activation_fn"  # the input of fc2
    result = attribute(vit, torch.rand(3, 3, 32, 32), "vit.layers.1.mlp.fc2:3", [layer])
    bias = phosphene.resolve_layer(vit, "vit.layers.1.mlp.fc2").bias[3]
    assert torch.allclose(result.layers[layer].total, result.f - bias, atol=1e-5)


def test_transformers_layers_are_mined_per_image(zoo, image_dir, tmp_path):
    from phosphene import mining

    clip, layer = zoo["hf_clip"], "encoder.layers.1"
    run = mining.run_mining(clip, [layer], image_dir, tmp_path / "run", k=2, batch_size=3, num_workers=0,
                            progress=False)
    top = run.top(layer, 5, k=2)
    with torch.no_grad():
        by_hand = tm.raw_io(clip, layer, run.load(top))[:, 1:, 5].mean(1)  # the 16 patch tokens
    assert torch.allclose(torch.tensor([e.value for e in top]), by_hand, atol=1e-5)


# -- the default regularization layer ------------------------------------------------------------------
@pytest.mark.parametrize("name, target", [("swin", "layers.2"), ("levit", "stages.1.blocks.0"),
                                          ("maxvit", "stages.1"), ("hf_vit", "vit.layers.1"),
                                          ("efficientformer", "stages.3.blocks.1")])
def test_default_reg_layer_runs_strictly_before_the_target(name, target, zoo):
    model = zoo[name]
    chosen = default_reg_layer(model, [target])
    order = execution_order(model)
    assert order.index(chosen) < order.index(target) and not chosen.startswith("stem")
    assert not target.startswith(f"{chosen}.") and not chosen.startswith(f"{target}.")
    assert reg_layer_problem(model, chosen, [target]) is None
    assert "does not run before the target" in reg_layer_problem(model, target, [target])


def test_default_reg_layer_is_about_half_the_target_depth():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", depth=8)
    assert default_reg_layer(vit, ["blocks.6"]) == "blocks.3"  # of blocks.0-5
    assert default_reg_layer(vit, ["logits"]) == default_reg_layer(vit) == "blocks.4"


def test_accentuate_cli_says_which_reg_layer_it_chose(model, image_dir, tmp_path):
    args = ["accentuate", "--layer", "_blocks.10", "--channel", "3", "--steps", "1", "--crops", "1", "--size",
            "32", "--input-size", "32", "--quiet", "--out", str(tmp_path), str(image_dir / "p0.png")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "reg layer: _blocks.5 (a block before _blocks.10" in result.output
    result = CliRunner().invoke(main, [*args, "--reg-layer", "_blocks.12"])
    assert "warning: the regularization layer _blocks.12 does not run before the target" in result.output


# -- completeness ----------------------------------------------------------------------------------
def test_completeness_flags_a_sum_that_a_layernorm_makes_zero(zoo, image_dir):
    from phosphene.inhibition.tension import compute_tension

    swin = zoo["swin"]
    result = attribute(swin, torch.rand(3, 3, 32, 32), "layers.2:3", ["layers.1"])
    assert completeness_scale(result.layers["layers.1"].total, result.f) < SUM_ZERO  # ΣA ≡ 0 there
    table = compute_tension(swin, image_dir, "layers.2:3", ["layers.1"], batch_size=2, num_workers=0)
    rows = {(r["layer"], r["variant"]): r for r in table.completeness()}
    assert rows[("layers.1", "l1")]["sum_zero"] and rows[("layers.1", "l1")]["scale"] < SUM_ZERO
    assert "ΣA through layers.1 is about 0" in table.warnings["layers.1"]


def test_class_token_normalization_warning_lists_the_modules_between():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", depth=3, img_size=32, patch_size=8)
    assert normalizations_between(vit, "blocks.0#cls", "blocks.1#cls") == ["blocks.1.norm1", "blocks.1.norm2"]


# -- what the CLI says -------------------------------------------------------------------------------
def test_render_json_and_the_summary_show_the_objective_rise(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", "--layer", "_blocks.1", "--channels", "0,1", "--steps", "3",
                                       "--size", "32", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    units = json.loads((out / "render.json").read_text())["units"]
    assert all(len(u["history"]) == 3 and u["first_step_objective"] == u["history"][0] for u in units)
    lines = [line.split() for line in result.output.splitlines() if line.strip().startswith("_blocks.1:")]
    for (label, first, arrow, final), unit in zip(lines, units):
        assert label == unit["label"] and arrow == "->"
        assert float(first) == pytest.approx(unit["first_step_objective"], rel=1e-3)  # 4 significant digits
        assert float(final) == pytest.approx(unit["final_objective"], rel=1e-3)


def test_neuron_labels_say_the_position_used(model):
    result = phosphene.render(model, obj.neuron("_blocks.1", [0, 1]), steps=1, size=32, progress=False)
    assert result.labels == ["_blocks.1:0@4,4", "_blocks.1:1@4,4"]  # the centre of its 8x8 map at 32 px
    assert obj.neuron("_blocks.1", 0, x=2, y=5).labels == ["_blocks.1:0@5,2"]


def test_cli_layers_marks_windows_heads_and_refused_layers():
    phosphene.models.register_model("tiny-swin-test")(lambda weights: tm.swin())
    result = CliRunner().invoke(main, ["layers", "tiny-swin-test"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "NLC(4 windows of 2x2, shift 1,1 -> 4x4)" in rows["layers.1.blocks.1.attn"]
    assert rows["layers.1.blocks.1.attn"].split()[-3:] == ["32", "units", "#heads"]
    refused = rows["layers.1.blocks.1.attn.softmax"]
    assert "not readable per image: its first dimension holds 4 windows" in refused
    assert "#heads" not in rows["layers.1.blocks.1.mlp"]
