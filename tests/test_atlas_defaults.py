"""Atlas grid and cell threshold from the number of images; the README's atlas on the sample images."""

from __future__ import annotations

import pytest

from phosphene.inhibition.atlas import build_atlas
from phosphene.inhibition.atlas_defaults import auto_grid, auto_min_points, sparse_hint


@pytest.mark.parametrize("n, grid, min_points", [(4, 3, 1), (100, 5, 1), (300, 9, 1), (1600, 20, 4),
                                                 (100_000, 20, 5)])
def test_defaults_scale_with_the_number_of_images(n, grid, min_points):
    assert auto_grid(n) == grid and auto_min_points(n) == min_points


def test_hint_only_when_few_cells_survive():
    assert sparse_hint(300, 9, 1, 40) is None
    hint = sparse_hint(300, 20, 5, 2)
    assert "only 2 of 20x20 cells hold more than 5" in hint
    assert "--grid 7" in hint and "--min-points 4" in hint


def test_readme_atlas_works_on_the_sample_images_with_the_defaults(model, sample_batch):
    """The README's `phosphene atlas --images ../shared/data/imagenet-samples ...` at a tiny size: with
    the fixed 20x20 / more-than-5 defaults no cell survived on these 500 images."""
    images, paths = sample_batch[0][:, :, ::4, ::4].contiguous(), sample_batch[1]  # 500 images, 56 px
    result = build_atlas(model, images, paths, "_blocks.7", "_blocks.8._relu1:337", icon_size=16, steps=2)
    n = result.settings["selected"]
    print(f"{n} laid out, grid {result.grid}, cells kept {len(result.cells)}")
    assert result.grid == auto_grid(n) and result.settings["min_points"] == auto_min_points(n)
    assert len(result.cells) >= 10 and result.settings["hint"] is None
