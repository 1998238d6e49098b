"""Models beyond Lite0's plumbing (issue 10): fixed-input transformers, grayscale models, dict outputs,
the per-model accentuation regularization layer, device errors and the LayerNorm warning.

Every model here is tiny and random; nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import default_reg_layer
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.models import ImageModel
from phosphene.models.input_shape import fixed_input_size, input_channels
from phosphene.transforms import Resize, ending_at, standard_transforms


class Gray(nn.Module):
    """A 1-channel CNN: four conv blocks and a 5-class head."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Conv2d(1 if i == 0 else 8, 8, 3, padding=1),
                                                    nn.BatchNorm2d(8), nn.ReLU()) for i in range(4)])
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.blocks(x).mean((2, 3)))


class DictNet(nn.Module):
    """Returns {"main": logits, "aux": more}: no key is obviously the logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc, self.aux = nn.Linear(8, 5), nn.Linear(8, 2)

    def forward(self, x):
        h = self.conv(x).relu().mean((2, 3))
        return {"main": self.fc(h), "aux": self.aux(h)}


@pytest.fixture(scope="module")
def gray() -> ImageModel:
    torch.manual_seed(0)
    return phosphene.load_model(Gray().eval(), device="cpu")


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    """Four small RGB photos-to-be (random colour blocks) in a folder."""
    folder = tmp_path_factory.mktemp("rgb")
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


# -- fixed-input models -----------------------------------------------------------------------------
def test_transform_chain_ends_at_the_fixed_side():
    chain = ending_at(standard_transforms(), 224, 224)
    assert isinstance(chain.geometric[-1], Resize) and chain.out_size(224) == 224
    views = chain(torch.rand(2, 3, 224, 224), torch.Generator().manual_seed(0))
    assert views.shape == (2, 3, 224, 224)
    assert ending_at(standard_transforms(), 224, None).out_size(224) == 236  # CNNs: lucid's canvas


def test_fixed_side_is_detected_for_torchvision_and_timm_vits_and_not_for_cnns(gray):
    tv = pytest.importorskip("torchvision")
    timm = pytest.importorskip("timm")
    vit = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                      hidden_dim=16, mlp_dim=16, num_classes=5)
    assert fixed_input_size(vit) == 32 and fixed_input_size(phosphene.load_model(vit)) == 32
    small = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, num_classes=5)
    assert fixed_input_size(small) == 32
    dynamic = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, dynamic_img_size=True)
    assert fixed_input_size(dynamic) is None
    assert fixed_input_size(gray) is None and fixed_input_size(tv.models.resnet18()) is None


def test_torchvision_vit_renders_at_its_size_from_the_api():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vit = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=16, mlp_dim=16, num_classes=5)
    model = ImageModel(vit, input_size=32)
    result = phosphene.render(model, obj.class_logit(1), steps=2, progress=False)
    assert result.images.shape == (1, 3, 32, 32) and torch.isfinite(result.final).all()
    small = phosphene.render(model, obj.class_logit(1), steps=2, size=24, progress=False)
    assert small.images.shape == (1, 3, 24, 24)  # the views are resized to 32 for the model


def test_timm_vit_renders_through_the_cli_with_a_weights_file(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    weights = tmp_path / "vit.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), weights)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "render", "--model", "timm:vit_tiny_patch16_224", "--weights", str(weights), "--device", "cpu",
        "--layer", "patch_embed.proj", "--channels", "0-1", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("unit_*.png"))
    assert len(pngs) == 2 and all(Image.open(p).size == (224, 224) for p in pngs)


def test_fixed_input_model_refuses_another_crop_size():
    tv = pytest.importorskip("torchvision")
    vit = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                      hidden_dim=16, mlp_dim=16, num_classes=5)
    with pytest.raises(PhospheneError, match="only takes 32-pixel images"):
        phosphene.accentuate(ImageModel(vit, input_size=32), obj.class_logit(0), torch.rand(1, 3, 32, 32),
                             "conv_proj", steps=1, crops=1, input_size=24)


def test_fixed_input_model_mines_at_its_side_and_refuses_another(seed_dir, tmp_path):
    tv = pytest.importorskip("torchvision")
    from phosphene.mining import run_mining

    torch.manual_seed(0)
    vit = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                      hidden_dim=16, mlp_dim=16, num_classes=5)
    model = ImageModel(vit, input_size=32)
    run = run_mining(model, ["conv_proj"], seed_dir, tmp_path / "run", k=2, batch_size=2, num_workers=0,
                     progress=False)
    assert len(run.top("conv_proj", 0, k=2)) == 2
    with pytest.raises(PhospheneError, match="only takes 32-pixel images"):
        run_mining(model, ["conv_proj"], seed_dir, tmp_path / "other", size=48, num_workers=0)
    seeds = torch.rand(1, 3, 40, 40)  # a canvas other than the model's side: the crops end at 32
    result = phosphene.accentuate(model, obj.class_logit(0), seeds, steps=1, crops=2, progress=False)
    assert result.images.shape == (1, 3, 40, 40) and result.settings["input_size"] == 32


# -- grayscale models ----------------------------------------------------------------------------------
def test_grayscale_model_is_detected(gray):
    assert input_channels(gray) == 1 and gray.channels == 1
    assert gray.normalize.mean.shape == (1, 1, 1, 1)


@pytest.mark.parametrize("param", ["fourier", "pixel", "maco"])
def test_grayscale_model_renders_one_channel_images(gray, param, tmp_path):
    result = phosphene.render(gray, obj.channel("blocks.2", [0, 1]), param=param, steps=2, size=32,
                              progress=False)
    assert result.images.shape == (2, 1, 32, 32) and torch.isfinite(result.final).all()
    result.save(tmp_path)
    assert Image.open(next(tmp_path.glob("unit_000_*.png"))).mode == "L"
    assert Image.open(tmp_path / "grid.png").mode == "RGB"


def test_grayscale_model_accentuates_rgb_seeds(gray, seed_dir):
    seeds = torch.stack([phosphene.load_image(p, 32) for p in sorted(seed_dir.glob("*.png"))[:2]])
    result = phosphene.accentuate(gray, obj.channel("blocks.2", 1), seeds, steps=2, crops=2, progress=False)
    assert result.images.shape == (2, 1, 32, 32) and result.settings["reg_layer"] == "blocks.1"  # before it
    assert torch.isfinite(result.f_after).all()
    result.figure()


def test_grayscale_model_mines_and_attributes_rgb_files(gray, seed_dir, tmp_path):
    from phosphene.attribution import attribute
    from phosphene.mining import run_mining

    run = run_mining(gray, ["blocks.1"], seed_dir, tmp_path / "run", k=2, batch_size=2, size=32,
                     num_workers=0, progress=False)
    assert len(run.top("blocks.1", 3, k=2)) == 2
    images = torch.rand(2, 3, 32, 32)
    result = attribute(gray, images, "blocks.2:1", ["blocks.1"])
    assert np.isfinite(np.asarray(result.layers["blocks.1"].e_plus)).all()


# -- outputs and class logits -----------------------------------------------------------------------
def test_class_logit_on_a_dict_output_needs_and_takes_a_key():
    torch.manual_seed(0)
    net = DictNet()
    with pytest.raises(PhospheneError, match="keys: 'main', 'aux'"):
        phosphene.render(net, obj.class_logit(3), steps=1, size=16, progress=False)
    keyed = phosphene.render(net, obj.class_logit(3), steps=1, size=16, progress=False, output_key="main")
    wrapped = phosphene.render(phosphene.load_model(net, output="main"), obj.class_logit(3), steps=1,
                               size=16, progress=False)
    assert torch.allclose(keyed.final, wrapped.final)
    with torch.no_grad():
        expected = net(keyed.images)["main"][:, 3]
    assert torch.allclose(keyed.final, expected, atol=1e-5)


def test_class_logit_finds_a_logits_key_by_itself():
    class Named(DictNet):
        def forward(self, x):
            return {"logits": super().forward(x)["main"], "features": x}

    result = phosphene.render(Named(), obj.class_prob(2), steps=1, size=16, progress=False)
    assert 0 < float(result.final) < 1


# -- accentuation's default regularization layer ---------------------------------------------------
def test_default_reg_layer_is_a_middle_block(model, gray):
    tv = pytest.importorskip("torchvision")
    timm = pytest.importorskip("timm")
    assert default_reg_layer(model) == "_blocks.8"  # Lite0 keeps faccent's layer
    assert default_reg_layer(gray) == "blocks.2"
    assert default_reg_layer(timm.create_model("vit_tiny_patch16_224", depth=8)) == "blocks.4"
    assert default_reg_layer(tv.models.resnet50()) == "layer3.1"  # the 9th of 16 bottlenecks
    assert default_reg_layer(tv.models.googlenet(init_weights=False, aux_logits=False)) == "inception4b"
    assert default_reg_layer(phosphene.models.InceptionV1()) == "mixed4c"


def test_accentuate_cli_uses_the_default_reg_layer_on_another_model(tmp_path, seed_dir):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    weights = tmp_path / "resnet.pth"
    torch.save(tv.models.resnet18(num_classes=1000).state_dict(), weights)
    out = tmp_path / "acc"
    result = CliRunner().invoke(main, [
        "accentuate", "--model", "torchvision:resnet18", "--weights", str(weights), "--device", "cpu",
        "--class", "1", "--steps", "1", "--crops", "1", "--size", "64", "--input-size", "64", "--quiet",
        "--out", str(out), str(seed_dir / "img0.png")])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "accentuate.json").read_text())["settings"]["reg_layer"] == "layer3"


# -- device errors ---------------------------------------------------------------------------------
VERBS_WITH_DEVICE = [["render"], ["accentuate"], ["mine"], ["classify"], ["tension"], ["atlas"],
                     ["invert"], ["report"], ["experiment", "score"], ["experiment", "simulate"],
                     ["experiment", "stimuli"]]


@pytest.mark.parametrize("verb", VERBS_WITH_DEVICE, ids=lambda v: "-".join(v))
@pytest.mark.parametrize("device", ["toaster", "cuda:99", "mps"] if not torch.cuda.is_available()
                         else ["toaster", "cuda:99"])
def test_bad_device_is_one_line_and_exit_2_on_every_verb(verb, device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    result = CliRunner().invoke(main, [*verb, "--device", device])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "device" in lines[0], result.output


# -- LayerNorm on the attribution path --------------------------------------------------------------
@pytest.fixture(scope="module")
def convnext() -> ImageModel:
    tv = pytest.importorskip("torchvision")
    from torchvision.models.convnext import CNBlockConfig

    torch.manual_seed(0)
    net = tv.models.ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=5)
    return phosphene.load_model(net.eval(), device="cpu")


def test_normalization_between_layers_is_found_in_forward_order(convnext, model):
    from phosphene.inhibition.norm_check import normalizations_between

    # features: 0 stem (conv, LayerNorm2d), 1 stage, 2 downsample (LayerNorm2d, conv), 3 stage
    assert normalizations_between(convnext, "features.1", "features.3") == [
        "features.2.0", "features.3.0.block.2"]
    assert normalizations_between(convnext, "features.3.0.block.2", "features.3.0.block.5") == []
    assert normalizations_between(convnext, "input", "features.0.0") == []
    assert normalizations_between(model, "_blocks.4", "_blocks.8") == []  # BatchNorm is not one


def test_tension_warns_about_layernorm_and_still_reports_completeness(convnext, seed_dir, tmp_path):
    from phosphene.inhibition.tension import tension_report

    report = tension_report(convnext, seed_dir, "features.3:1", ["features.1", "features.3.0.block.2"],
                            tmp_path, n=2, num_workers=0, size=32, progress=False)
    summary = json.loads((tmp_path / "tension.json").read_text())
    assert "features.2.0" in summary["warnings"]["features.1"]
    # the LayerNorm's own output: no normalization on the path, but the block's branch is scaled by
    # ConvNeXt's initial layer scale (1e-6), so ΣA there is about 0 and says so
    assert "normalization" not in summary["warnings"]["features.3.0.block.2"]
    assert "is about 0" in summary["warnings"]["features.3.0.block.2"]
    rows = {(r["layer"], r["variant"]): r for r in summary["completeness"]}
    assert rows[("features.1", "l1")]["warning"] and np.isfinite(rows[("features.1", "l1")]["pearson"])
    assert len(report.table.completeness()) == 4 and (tmp_path / "completeness.png").is_file()
