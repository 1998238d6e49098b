"""Contact sheets of a mining run: a PNG per layer, a row per unit of its top-k images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_mining import sample_subset

from phosphene import mining
from phosphene.mining.contact_sheet import CAPTION, LABEL_WIDTH, contact_sheets, sheet_name


@pytest.fixture(scope="module")
def small_run(model, samples_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sheet")
    folder = sample_subset(samples_dir, tmp / "images", 10, step=50)
    return mining.run_mining(model, ["_blocks.2", "_blocks.4"], folder, tmp / "run", k=3, batch_size=5,
                             num_workers=0, size=64, progress=False)


def test_contact_sheet_has_a_row_per_unit_with_its_top_images(small_run):
    files = contact_sheets(small_run, k=3, max_units=5, thumb=32)
    assert set(files) == {"_blocks.2", "_blocks.4"}
    assert files["_blocks.2"] == small_run.root / sheet_name("_blocks.2")
    assert sheet_name("_blocks.2") == "contact__blocks.2.png"
    sheet = np.asarray(Image.open(files["_blocks.2"]).convert("RGB")).astype(float)
    pad, header, row_h = 2, 16, 32 + CAPTION + 2
    assert sheet.shape == (header + 5 * row_h + pad, LABEL_WIDTH + 3 * (32 + pad) + pad, 3)
    for unit in (0, 4):  # each thumbnail is that unit's top image, in rank order
        for rank, example in enumerate(small_run.top("_blocks.2", unit, k=3)):
            expected = small_run.load([example])[0].permute(1, 2, 0).numpy() * 255
            expected = np.asarray(Image.fromarray(expected.round().astype(np.uint8)).resize(
                (32, 32), Image.Resampling.BILINEAR))
            y, x = header + unit * row_h, LABEL_WIDTH + pad + rank * (32 + pad)
            tile = sheet[y:y + 32, x:x + 32]
            assert np.abs(tile - expected).mean() < 1, (unit, rank)


def test_contact_sheet_k_is_capped_by_the_run(small_run, tmp_path):
    files = contact_sheets(small_run, k=50, max_units=2, thumb=16, out=tmp_path)
    width = Image.open(files["_blocks.4"]).size[0]
    assert width == LABEL_WIDTH + 3 * (16 + 2) + 2 and files["_blocks.4"].parent == tmp_path
