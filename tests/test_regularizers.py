"""Frequency penalization: pixel regularizers as objectives, blurring every N steps, the CLI options."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from phosphene import objectives as obj
from phosphene import regularizers as reg
from phosphene.cli import main
from phosphene.errors import PhospheneError
from phosphene.layers.names import INPUT
from phosphene.objectives import IMAGE, Acts
from phosphene.param import FourierImage, MacoImage, PixelImage, blur_param_, blurrable
from phosphene.param.blur import blur_logits
from phosphene.render import render


def checkerboard(side: int, cell: int, amplitude: float = 1.0) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    board = ((y // cell + x // cell) % 2).float() * amplitude
    return board.expand(1, 3, side, side).clone()


def test_tv_of_a_constant_image_is_zero():
    assert reg.tv_value(torch.full((2, 3, 16, 16), 0.3)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("side,cell,amplitude", [(8, 1, 1.0), (12, 3, 0.5), (16, 4, 0.8)])
def test_tv_of_a_checkerboard_is_its_closed_form(side, cell, amplitude):
    # per axis: (side / cell - 1) cell borders among side - 1 neighbour pairs, each a step of amplitude
    expected = 2 * amplitude * (side / cell - 1) / (side - 1)
    assert reg.tv_value(checkerboard(side, cell, amplitude)).item() == pytest.approx(expected)


def test_l1_and_l2_on_known_images():
    images = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 1.0), torch.zeros(3, 4, 4)])
    acts = Acts({IMAGE: images})
    assert reg.l1()(acts).tolist() == pytest.approx([0.0, 0.5, 0.5])
    assert reg.l2()(acts).tolist() == pytest.approx([0.0, 0.25, 0.25])
    assert reg.l1(constant=0.0)(acts).tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert reg.l2(constant=0.0)(acts).tolist() == pytest.approx([0.25, 1.0, 0.0])


def test_penalties_repeat_over_views_and_fall_back_to_the_model_input():
    images = checkerboard(8, 1)
    with_views = Acts({IMAGE: images, INPUT: torch.zeros(3, 3, 8, 8)}, copies=3)
    assert reg.total_variation()(with_views).tolist() == [2.0, 2.0, 2.0]
    assert reg.total_variation()(Acts({INPUT: images})).tolist() == [2.0]
    with pytest.raises(PhospheneError, match="read the images"):
        reg.total_variation()(Acts({"logits": torch.zeros(1, 5)}))


def test_penalties_combine_with_objectives_and_pass_gradients():
    pixels = torch.rand(2, 3, 8, 8, requires_grad=True)
    acts = Acts({IMAGE: pixels, INPUT: pixels, "layer": pixels})
    objective = obj.channel("layer", [0, 1]) - 0.5 * reg.total_variation() - reg.l1() + 2 * reg.l2()
    assert objective.layers == {"layer", INPUT}
    values = objective(acts)
    expected = (pixels[:, :1].mean((1, 2, 3)) * torch.tensor([1.0, 0.0])
                + pixels[:, 1:2].mean((1, 2, 3)) * torch.tensor([0.0, 1.0])
                - 0.5 * reg.tv_value(pixels) - (pixels - 0.5).abs().mean((1, 2, 3))
                + 2 * (pixels - 0.5).pow(2).mean((1, 2, 3)))
    assert torch.allclose(values, expected)
    values.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_stack_slices_the_images_per_image_and_the_layers_per_view():
    images = torch.stack([torch.zeros(3, 4, 4), checkerboard(4, 1)[0]])
    acts = Acts({"layer": torch.zeros(4, 1, 2, 2), IMAGE: images}, copies=2)
    stacked = obj.stack([reg.total_variation(), reg.total_variation()])
    assert stacked(acts).tolist() == [0.0, 0.0, 2.0, 2.0]


def test_high_frequency_share():
    assert reg.high_frequency_share(checkerboard(16, 1)).item() == pytest.approx(1.0)
    j = torch.arange(16.0)
    low, high = torch.cos(2 * torch.pi * 0.125 * j), torch.cos(2 * torch.pi * 0.375 * j)  # cycles/pixel
    waves = torch.stack([low.expand(3, 16, 16), high[:, None].expand(3, 16, 16)])
    assert reg.high_frequency_share(waves).tolist() == pytest.approx([0.0, 1.0], abs=1e-9)
    noise = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    share = reg.high_frequency_share(noise)  # white noise: the area outside the circle of radius 1/4
    assert share.mean().item() == pytest.approx(1 - torch.pi / 16, abs=0.03)
    assert (reg.high_frequency_share(blur_logits(noise, 1.0)) < 0.2 * share).all()


@pytest.mark.parametrize("make", [PixelImage, FourierImage])
def test_blur_param_blurs_the_logits_and_keeps_the_mean(make):
    param = make(2, 16, sd=0.5, generator=torch.Generator().manual_seed(1))
    before = param().detach()
    logits = torch.logit(before.double())
    blur_param_(param, 1.0)
    after = torch.logit(param().detach().double())
    assert torch.allclose(after, blur_logits(logits, 1.0), atol=1e-4)
    assert reg.high_frequency_share(after).max() < reg.high_frequency_share(logits).min()


def test_maco_cannot_be_blurred():
    maco = MacoImage(1, 16)
    assert not blurrable(maco) and blurrable(PixelImage(1, 8))
    with pytest.raises(PhospheneError, match="cannot blur"):
        blur_param_(maco, 0.5)


def test_render_with_penalties_and_blur_lowers_roughness(model):
    def run(**options):
        return render(model, obj.channel("_blocks.2", 3) - options.pop("tv", 0.0) * reg.total_variation(),
                      steps=8, size=32, param="pixel", lr=0.1, progress=False, **options)

    plain, tv, blurred = run(), run(tv=5.0), run(blur_every=2, blur_sigma=1.0)
    rough = [reg.tv_value(r.images).item() for r in (plain, tv, blurred)]
    assert rough[1] < rough[0] and rough[2] < rough[0]
    assert blurred.settings["blur_every"] == 2
    assert tv.settings["objective"].endswith("-1*(5*(tv))")
    with pytest.raises(PhospheneError, match="blur_every needs"):
        render(model, obj.channel("_blocks.4", 3), steps=1, size=32, param="maco", blur_every=1,
               progress=False)


def test_cli_regularizer_options(tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["render", "--layer", "_blocks.4", "--channels", "0-1", "--steps", "4",
                                       "--size", "32", "--tv", "0.5", "--l1", "0.1", "--l2", "0.2",
                                       "--blur-every", "2", "--blur-sigma", "0.7", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "render.json").read_text())["settings"]
    assert settings["blur_every"] == 2 and settings["blur_sigma"] == 0.7
    assert "0.5*(tv)" in settings["objective"] and "l1(0.5)" in settings["objective"]
    assert "0.2*(l2(0.5))" in settings["objective"]
    bad = CliRunner().invoke(main, ["render", "--layer", "_blocks.4", "--channels", "0", "--tv", "-1",
                                    "--out", str(out)])
    assert bad.exit_code == 2 and "must not be negative" in bad.output
    maco = CliRunner().invoke(main, ["render", "--layer", "_blocks.4", "--channels", "0", "--steps", "1",
                                     "--size", "32", "--param", "maco", "--blur-every", "1", "--out",
                                     str(out)])
    assert maco.exit_code == 2 and "blur_every needs" in maco.output
