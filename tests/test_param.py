"""Parameterizations: range, shapes, colour decorrelation, spectra."""

from __future__ import annotations

import pytest
import torch

from phosphene.errors import PhospheneError
from phosphene.param import (
    COLOR_CORRELATION,
    COLOUR_GAIN,
    FourierImage,
    MacoImage,
    PixelImage,
    colour_matrix,
    decorrelate,
    make_param,
    natural_spectrum,
    recorrelate,
    rfft2_freqs,
    spectrum_std,
)
from phosphene.param.seeded import seeded_param


@pytest.mark.parametrize("name", ["fourier", "pixel", "maco"])
def test_images_are_in_unit_range_with_the_right_shape(name):
    images = make_param(name, 3, 40, generator=torch.Generator().manual_seed(0))()
    assert images.shape == (3, 3, 40, 40)
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("name", ["fourier", "pixel", "maco"])
def test_every_image_depends_only_on_its_own_parameters(name):
    param = make_param(name, 2, 16, generator=torch.Generator().manual_seed(0))
    param()[0].sum().backward()
    grad = next(param.parameters()).grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_colour_decorrelation_round_trips():
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(decorrelate(recorrelate(x)), x, atol=1e-5)
    assert torch.allclose(recorrelate(decorrelate(x)), x, atol=1e-5)
    assert torch.isclose(COLOR_CORRELATION.norm(dim=0).max(), torch.tensor(1.0))


def test_colour_gain_scales_only_the_colour_opponent_components_and_round_trips():
    assert torch.equal(colour_matrix(1.0), COLOR_CORRELATION)
    gained = colour_matrix(2.0)
    assert torch.equal(gained[:, 0], COLOR_CORRELATION[:, 0])
    assert torch.allclose(gained[:, 1:], 2 * COLOR_CORRELATION[:, 1:])
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(decorrelate(recorrelate(x, 2.0), 2.0), x, atol=1e-5)
    grey = torch.zeros(1, 3, 4, 4)
    grey[:, 0] = 1.0  # luminance only: the gain changes nothing
    assert torch.allclose(recorrelate(grey, 2.0), recorrelate(grey))


@pytest.mark.parametrize("kind", [FourierImage, PixelImage])
def test_noise_start_parameterizations_default_to_the_colour_gain(kind):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    default, lucid = kind(2, 16, generator=gen()), kind(2, 16, generator=gen(), colour_gain=1.0)
    assert default.colour_gain == COLOUR_GAIN == 2.0
    with torch.no_grad():
        for p in (default, lucid):
            next(p.parameters()).normal_(generator=torch.Generator().manual_seed(1))
        d, lu = default(), lucid()
    chroma = lambda im: (im - im.mean(1, keepdim=True)).abs().mean()  # noqa: E731
    assert chroma(d) > 1.5 * chroma(lu)  # more colour from the same parameters


@pytest.mark.parametrize("name", ["fourier", "pixel"])
def test_seeded_images_start_at_the_seed_whatever_the_colour_gain(name):
    seeds = torch.rand(2, 3, 16, 16) * 0.9 + 0.05
    assert torch.allclose(seeded_param(name, seeds)(), seeds, atol=1e-4)


def test_pixel_image_can_start_from_a_given_image():
    start = torch.rand(1, 3, 8, 8) * 0.9 + 0.05
    assert torch.allclose(PixelImage(1, 8, init=start)(), start, atol=1e-5)


def test_fourier_scale_is_one_over_frequency():
    param = FourierImage(1, 32)
    freqs = rfft2_freqs(32, 32)
    scale = param.scale[0, 0, :, :, 0]
    assert torch.allclose(scale[1:, 1:], 1 / freqs[1:, 1:])
    assert scale[0, 0] == 32  # the DC term is clamped at 1/size


def test_maco_keeps_the_natural_magnitude_and_optimizes_only_the_phase():
    param = MacoImage(2, 64, generator=torch.Generator().manual_seed(1))
    assert [n for n, _ in param.named_parameters()] == ["phase"]
    coeffs = torch.polar(param.magnitude.expand_as(param.phase), param.phase)
    spatial = torch.fft.irfft2(coeffs, s=(64, 64), norm="ortho")
    recovered = torch.fft.rfft2(spatial, norm="ortho").abs()
    # irfft2 keeps the magnitude except where the real-signal symmetry folds coefficients
    inner = (slice(None), slice(None), slice(1, 32), slice(1, 32))
    assert torch.allclose(recovered[inner], param.magnitude.expand_as(recovered)[inner], rtol=1e-3)


def test_natural_spectrum_is_low_pass_and_resamples():
    spectrum = natural_spectrum(224)
    assert spectrum.shape == (3, 224, 113)
    assert spectrum[0, 1, 1] > 10 * spectrum[0, 100, 100]
    assert natural_spectrum(96).shape == (3, 96, 49)


def test_unknown_parameterization_is_a_clear_error():
    with pytest.raises(PhospheneError, match="fourier"):
        make_param("wavelet", 1, 8)


def test_spectrum_std_is_the_pixel_std_the_spectrum_gives():
    """Parseval: a real image with the natural magnitude has this std (DC removed per channel)."""
    magnitude = natural_spectrum(224)
    phase = torch.fft.rfft2(torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(0))).angle()
    t = torch.fft.irfft2(torch.polar(magnitude, phase), s=(224, 224), norm="ortho")
    t = t - t.mean((1, 2), keepdim=True)
    assert t.pow(2).mean().sqrt() == pytest.approx(spectrum_std(magnitude), rel=0.02)
    assert 1.5 < spectrum_std(natural_spectrum(64)) < 2.2


def test_maco_has_natural_image_contrast_not_grey():
    """Issue 15: at std 1 the sigmoid gave ~0.14 pixel std (washed out); at the spectrum's scale the
    renders have the contrast of photos (ImageNet pixels: std ~0.25)."""
    gen = torch.Generator().manual_seed(0)
    image = MacoImage(4, 96, generator=gen)()
    grey = MacoImage(4, 96, generator=torch.Generator().manual_seed(0),
                     contrast=1 / spectrum_std(natural_spectrum(96)))()
    assert image.std((2, 3)).mean() > 0.16
    assert grey.std((2, 3)).mean() < 0.15
    assert image.min() >= 0 and image.max() <= 1
