"""Transforms: one warp per batch, independent draws, identity draw is identity."""

from __future__ import annotations

import torch

from phosphene.transforms import (
    Compose,
    Jitter,
    Noise,
    Pad,
    RandomCrop,
    Rotate,
    Scale,
    crop_transforms,
    make_transforms,
    standard_transforms,
)


def _images(n=3, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_identity_draw_is_identity():
    images = _images()
    compose = Compose([Jitter(0), Scale([1.0]), Rotate((0.0, 0.0))])
    out = compose.apply(images, compose.identity(3))
    assert torch.equal(out, images)


def test_zero_parameter_draws_through_grid_sample_reproduce_the_image():
    images = _images()
    compose = Compose([Jitter(0), Scale([1.0]), Rotate((0.0, 0.0))])
    maps = compose.sample(3, 32, torch.Generator().manual_seed(0))
    out = compose.apply(images.clone(), maps + 0.0)
    assert torch.allclose(out, images, atol=1e-5)


def test_canvas_sizes_follow_lucid():
    assert standard_transforms().out_size(224) == 224 + 24 - 8 - 4
    assert crop_transforms(size=96).out_size(300) == 96
    assert Compose([Pad(3), Jitter(2)])(_images()).shape[-1] == 32 + 6 - 2


def test_each_batch_element_gets_its_own_draw():
    maps = standard_transforms().sample(8, 64, torch.Generator().manual_seed(0))
    assert len({tuple(m.flatten().tolist()) for m in maps}) == 8


def test_draws_are_reproducible_from_a_seed():
    compose = standard_transforms()
    a = compose(_images(), torch.Generator().manual_seed(3))
    b = compose(_images(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_pure_translation_moves_pixels():
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 4, 4] = 1
    compose = Compose([Jitter(0)])
    maps = compose.identity(1)
    maps[0, 0, 2] = 1.0  # output x reads input x + 1
    out = compose.apply(images.expand(1, 3, 8, 8).contiguous(), maps)
    assert out[0, 0, 4, 3] == 1 and out[0, 0, 4, 4] == 0


def test_padding_fills_with_grey():
    out = Compose([Pad(4, fill=0.5)]).apply(torch.zeros(1, 3, 8, 8), torch.eye(3)[None])
    assert out.shape[-1] == 16
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.5))
    assert torch.allclose(out[0, :, 8, 8], torch.zeros(3))


def test_random_crops_stay_inside_the_image_and_resize():
    crop = Compose([RandomCrop((0.2, 0.5), 16)])
    maps = crop.sample(100, 64, torch.Generator().manual_seed(0))
    half_side = maps[:, 0, 0] * 16 / 2
    assert ((maps[:, 0, 2].abs() + half_side) <= 32 + 1e-4).all()
    assert crop(_images(2, 64), copies=4).shape == (8, 3, 16, 16)


def test_copies_are_adjacent_views_of_each_image():
    images = _images(2)
    views = Compose([Noise(0.0)])(images, copies=3)
    assert torch.equal(views[0], views[2]) and torch.equal(views[3], images[1])


def test_noise_changes_pixels_by_about_its_scale():
    views = Compose([Noise(0.05)])(torch.zeros(4, 3, 32, 32), torch.Generator().manual_seed(0))
    assert abs(views.std().item() - 0.05) < 0.005


def test_named_sets():
    assert make_transforms("none").transforms == []
    assert isinstance(make_transforms("crops", 96).transforms[0], RandomCrop)
