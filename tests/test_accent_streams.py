"""Accentuation with one random stream per seed (``accentuate(..., streams=...)``): a seed's result
does not depend on which other seeds (of other units) share its batch, so a report may accentuate
many units' seeds in one call (`phosphene.report.accentuations`) and get each unit's pictures as if
it were accentuated alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import SharedCrops, accentuate
from phosphene.errors import PhospheneError

SIDE = 32
LAYER, REG = "body.4", "body.2"


@pytest.fixture(scope="module")
def tiny() -> phosphene.ImageModel:
    """A random 3-conv network (6 channels at ``body.4``), fast at 32 px."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU())
    net = nn.Sequential()
    net.add_module("body", body)
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    return phosphene.ImageModel(net.eval(), input_size=SIDE)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    smooth = torch.rand(6, 3, 8, 8, generator=gen)
    return nn.functional.interpolate(smooth, size=(SIDE, SIDE), mode="bilinear", align_corners=False)


def run(model, owners, seeds, streams, style="faccent"):
    return accentuate(model, obj.channel(LAYER, owners), seeds, reg_layer=REG, steps=6, crops=3,
                      crop_side=(0.3, 0.99), canvas=SIDE, input_size=SIDE, measure_crops=4, style=style,
                      progress=False, streams=streams)


@pytest.mark.parametrize("style", ["faccent", "phosphene"])
def test_batched_units_equal_each_unit_alone(tiny, images, style):
    owners = [0, 0, 3, 3, 5, 5]
    streams = [u * 1024 + j % 2 for j, u in enumerate(owners)]
    batched = run(tiny, owners, images, streams, style)
    for start in (0, 2, 4):
        part = slice(start, start + 2)
        alone = run(tiny, owners[part], images[part], streams[part], style)
        torch.testing.assert_close(batched.images[part], alone.images, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched.f_after[part], alone.f_after, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched.r_after[part], alone.r_after, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched.beta[part], alone.beta, atol=1e-5, rtol=1e-4)
    assert (batched.images - images).abs().amax() > 1e-3  # the images did change


def test_a_mixed_up_unit_is_seen(tiny, images):
    """The comparison above can fail: the same seeds and streams with the units swapped differ."""
    streams = [0, 1]
    right = run(tiny, [0, 3], images[:2], streams)
    swapped = run(tiny, [3, 0], images[:2], streams)
    assert (right.images - swapped.images).abs().amax() > 1e-3
    assert not torch.allclose(right.f_after, swapped.f_after, atol=1e-3)


def test_streams_make_each_seed_its_own_draws():
    crops = SharedCrops((0.2, 0.9), 16, noise=0.02, streams=[7, 8])
    alone = SharedCrops((0.2, 0.9), 16, noise=0.02, streams=[8])
    gen = torch.Generator().manual_seed(0)
    pair = crops.draw(2, 3, 32, gen, "cpu")
    one = alone.draw(1, 3, 32, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(pair.boxes[3:], one.boxes) and torch.equal(pair.noise[3:], one.noise)
    assert not torch.equal(pair.boxes[:3], pair.boxes[3:])


def test_one_stream_per_seed_is_required(tiny, images):
    with pytest.raises(PhospheneError, match="3 random streams for 2 seed images"):
        run(tiny, [0, 1], images[:2], [0, 1, 2])


def test_report_streams_follow_the_unit_and_seed_number():
    from phosphene.report.accentuations import STREAMS_PER_UNIT, streams_of

    assert streams_of([4, 4, 4, 9, 9]) == [4 * STREAMS_PER_UNIT, 4 * STREAMS_PER_UNIT + 1,
                                           4 * STREAMS_PER_UNIT + 2, 9 * STREAMS_PER_UNIT,
                                           9 * STREAMS_PER_UNIT + 1]
    assert streams_of([9, 9]) == streams_of([4, 4, 4, 9, 9])[3:]  # the same alone as with unit 4


def test_accent_batch_is_not_in_the_site_fingerprint():
    from phosphene.report.config import ReportSettings, fingerprint_of

    def of(**settings):
        return fingerprint_of(ReportSettings(**settings), {"model": "m"})

    assert of(accent_batch=3) == of()
    assert of(accent_steps=3) != of()
    with pytest.raises(PhospheneError, match="accent_batch"):
        ReportSettings(accent_batch=0).check()
