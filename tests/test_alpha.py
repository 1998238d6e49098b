"""Transparent visualizations (`param.AlphaImage`, `alpha_penalty`, ``render --alpha``)."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from PIL import Image

import phosphene
from phosphene import objectives as obj
from phosphene.cli.app import main
from phosphene.objectives import Acts
from phosphene.param import AlphaImage
from phosphene.regularizers import alpha_penalty


def test_alpha_image_composites_over_random_backgrounds_while_optimizing_and_grey_after():
    image = AlphaImage(2, 16, generator=torch.Generator().manual_seed(0))
    first, second = image(), image()  # gradients on: a new random background each call
    assert first.shape == (2, 3, 16, 16) and not torch.allclose(first, second)
    rgba = image.rgba()
    rgb, alpha = rgba[:, :3], rgba[:, 3:]
    with torch.no_grad():
        over_grey = image()
    assert rgba.shape == (2, 4, 16, 16) and torch.allclose(over_grey, rgb * alpha + 0.5 * (1 - alpha))
    background = first - rgb * alpha  # the background's share: (1 - alpha) * bg with bg in [0, 1]
    assert bool((background >= -1e-6).all()) and bool((background <= (1 - alpha) + 1e-6).all())


def test_alpha_penalty_is_the_rms_opacity_and_its_gradient_reaches_the_opacity():
    image = AlphaImage(3, 8, generator=torch.Generator().manual_seed(1))
    image()
    values = alpha_penalty(image)(Acts({}, 1))
    expected = image.last_alpha.pow(2).flatten(1).mean(1).sqrt()
    assert torch.allclose(values, expected)
    values.sum().backward()
    assert image.opacity.spectrum.grad.abs().sum() > 0 and image.colour.spectrum.grad is None
    assert alpha_penalty(image)(Acts({}, 2)).shape == (6,)  # one value per view


def test_alpha_penalty_makes_the_render_more_transparent(model):
    """The opacity starts at 0.5 everywhere (sigmoid of a near-zero image); a heavy penalty lowers it."""
    image = AlphaImage(1, 32, generator=torch.Generator().manual_seed(0))
    start = float(image.rgba()[:, 3].mean().detach())
    objective = obj.neuron("_blocks.6", 3) - 50.0 * alpha_penalty(image)
    result = phosphene.render(model, objective, param=image, steps=8, size=32, lr=0.3, progress=False)
    assert result.rgba.shape == (1, 4, 32, 32) and abs(start - 0.5) < 0.01
    assert float(result.rgba[:, 3].mean()) < start - 0.1


def test_render_alpha_writes_rgba_pngs_and_rejects_other_params(tmp_path):
    args = ["render", "--layer", "_blocks.6", "--channels", "3", "--objective", "neuron", "--alpha", "2",
            "--size", "32", "--steps", "2", "--quiet"]
    done = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    (rgba,) = tmp_path.glob("*_rgba.png")
    assert Image.open(rgba).mode == "RGBA" and len(list(tmp_path.glob("unit_*.png"))) == 2
    bad = CliRunner().invoke(main, [*args, "--param", "pixel", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--alpha makes its own RGBA Fourier image" in bad.output
