"""Attribution and activation atlases: layout, binning, icons, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from phosphene.attribution import Target, attribute
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.inhibition.atlas import (
    ICON_DECAY_POWER,
    attribution_vectors,
    bin_layout,
    build_atlas,
    cell_directions,
    compose_atlas,
    icon_diversity,
    normalize_layout,
    render_icons,
    select_images,
    whitening,
)

TARGET = Target("_blocks.9", 5)
LAYER = "_blocks.6"


def test_normalize_layout_maps_the_percentile_box_plus_margin_to_the_unit_square():
    xy = np.stack([np.linspace(0, 100, 101), np.linspace(-50, 50, 101)], axis=1)
    out = normalize_layout(xy, low=0, high=100, margin=0.1)
    assert np.allclose(out[0], [0.1 / 1.2, 0.1 / 1.2]) and np.allclose(out[-1], [1.1 / 1.2, 1.1 / 1.2])
    outlier = normalize_layout(np.vstack([xy, [[1e6, 1e6]]]))
    assert outlier.max() == 1.0 and outlier.min() >= 0.0


def test_bin_layout_keeps_cells_with_more_than_min_points():
    xy = np.array([[0.05, 0.95]] * 6 + [[0.95, 0.05]] * 3 + [[0.55, 0.55]] * 7)
    cells = bin_layout(xy, grid=10, min_points=5)
    assert [(c.row, c.col, len(c.members)) for c in cells] == [(0, 0, 6), (4, 5, 7)]
    assert set(cells[0].members) == set(range(6))


def test_whitening_decorrelates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3)) @ np.array([[3.0, 0, 0], [1, 1, 0], [0, 0, 0.2]])
    s = whitening(x, eps=0)
    w = x @ np.linalg.cholesky(s)
    assert np.allclose(w.T @ w / len(w), np.eye(3), atol=0.05)


def test_selection_takes_top_bottom_and_largest_norm_without_duplicates():
    f = np.array([5.0, -3, 0, 1, 9, -8])
    norms = np.array([0.0, 0, 10, 0, 0, 0])
    assert select_images(f, norms, 1).tolist() == [2, 4, 5]
    assert select_images(f, norms, 2).tolist() == [0, 1, 2, 4, 5]


def test_icon_frames_are_coloured_by_f_on_a_diverging_scale():
    icons = torch.full((2, 3, 8, 8), 0.5)
    cells = bin_layout(np.array([[0.1, 0.9]] * 2 + [[0.9, 0.1]] * 2), grid=2, min_points=1)
    picture = np.asarray(compose_atlas(icons, cells, 2, np.array([-1.0, 1.0]), border=2, captions=False,
                                       key=False))
    blue, red = picture[0, 0], picture[12 + 11, 12 + 11]  # frames of cells (0, 0) and (1, 1)
    assert blue[2] > blue[0] and red[0] > red[2]
    assert tuple(picture[0, -1]) == (255, 255, 255)  # empty cell


def test_atlas_picture_has_captions_and_a_colour_key():
    icons = torch.full((2, 3, 40, 40), 0.5)
    cells = bin_layout(np.array([[0.1, 0.9]] * 2 + [[0.9, 0.1]] * 3), grid=2, min_points=1)
    bare = compose_atlas(icons, cells, 2, np.array([-2.0, 2.0]), captions=False, key=False)
    full = np.asarray(compose_atlas(icons, cells, 2, np.array([-2.0, 2.0])))
    assert full.shape[0] > bare.size[1] + 30
    caption_row = full[46:58, :46]  # under icon (0, 0): dark caption text on white
    assert (caption_row.min(-1) < 100).any()
    key = full[-34 + 4:-34 + 12, 4:164].astype(int)  # the bar: blue on the left, red on the right
    assert key[4, 0, 2] > key[4, 0, 0] + 50 and key[4, -1, 0] > key[4, -1, 2] + 50
    grey = np.asarray(compose_atlas(icons, cells, 2, None))  # no target: grey frames, no key
    assert grey.shape[0] == bare.size[1] + 2 * 12 and tuple(grey[0, 0]) == (191, 191, 191)


def test_cell_directions_remove_what_all_cells_share():
    rng = np.random.default_rng(0)
    shared = np.zeros(8)
    shared[0] = 50.0
    vectors = shared + rng.normal(size=(600, 8))
    vectors[:200, 3] += 4.0
    members = [np.arange(0, 200), np.arange(200, 400), np.arange(400, 600)]
    plain = cell_directions(vectors, members, "mean")
    assert np.allclose(plain, np.stack([vectors[m].mean(0) for m in members]), atol=1e-5)
    for method in ("centred", "whitened"):
        specific = cell_directions(vectors, members, method)
        assert np.argmax(np.abs(specific[0])) == 3, method  # the cell's own feature, not channel 0
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(plain[0], plain[1]) > 0.99 and cos(*cell_directions(vectors, members, "centred")[:2]) < 0.5
    with pytest.raises(PhospheneError, match="unknown icon direction"):
        cell_directions(vectors, members, "median")


def test_icon_diversity_is_zero_for_equal_icons_and_grows_with_difference(model):
    same = torch.full((3, 3, 32, 32), 0.5)
    assert icon_diversity(model, same, LAYER) == pytest.approx(
        {"pixels": 0.0, "activation": 0.0, "activation_cosine": 0.0}, abs=1e-4)
    different = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    spread = icon_diversity(model, different, LAYER)
    assert spread["pixels"] > 0.2 and spread["activation"] > 0


def test_attribution_vectors_are_the_summed_attribution_signed_like_the_activation(model, sample_batch):
    images = sample_batch[0][:6, :, ::2, ::2].contiguous()
    post_relu = "_blocks.7._relu0"  # non-negative: the vector sums to sum(A) = E+ - E-
    f, vectors = attribution_vectors(model, images, TARGET, post_relu)
    reference = attribute(model, images, TARGET, [post_relu, LAYER], keep=True)
    assert np.allclose(f, reference.f.numpy(), atol=1e-4)
    assert np.allclose(vectors.sum(1), reference.layers[post_relu].total.numpy(), rtol=1e-4, atol=1e-3)
    _, signed = attribution_vectors(model, images, TARGET, LAYER)
    part = reference.layers[LAYER]
    assert np.allclose(signed, (part.attribution * part.activation.sign()).sum((2, 3)).numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def small_images(sample_batch):
    return sample_batch[0][::5, :, ::2, ::2].contiguous(), sample_batch[1][::5]  # 100 images, 112 px


@pytest.fixture(scope="module")
def atlas10(model, small_images):
    images, paths = small_images
    return build_atlas(model, images, paths, LAYER, TARGET, grid=10, per_group=30, min_points=1,
                       icon_size=32, steps=24, batch=32)


def test_a_10x10_attribution_atlas_renders_end_to_end(atlas10, tmp_path):
    result = atlas10
    assert 1 <= len(result.cells) <= 100 and result.icons.shape[1:] == (3, 32, 32)
    assert len(result.icon_f) == len(result.cells) and result.settings["selected"] <= 90
    assert all(len(c.members) > 1 for c in result.cells)
    record = result.save(tmp_path)
    width, height = Image.open(tmp_path / "atlas.png").size
    assert width >= 10 * 38 and height == 10 * (38 + 12) + 34  # captions under the icons, the key
    assert all(c["cell_f"] is not None for c in record["cells"])
    assert Image.open(tmp_path / "scatter.png").size[0] > 300
    html = (tmp_path / "index.html").read_text()
    assert html.count('class="cell icon"') == len(result.cells)
    members = sum(len(c["members"]) for c in record["cells"])
    assert members == sum(len(c.members) for c in result.cells)
    first = record["cells"][0]["members"][0]
    assert (tmp_path / first["thumb"]).is_file() and (tmp_path / record["cells"][0]["icon"]).is_file()


def test_icons_move_the_layer_toward_their_cell_direction(model, atlas10):
    from phosphene.layers.tap import LayerTap

    result = atlas10
    with LayerTap(model, [LAYER]) as tap, torch.no_grad():
        acts = tap(result.icons)[LAYER].sum((2, 3))
        noise = tap(torch.rand(len(result.icons), 3, 32, 32))[LAYER].sum((2, 3))
    directions = torch.tensor(cell_directions(result.vectors, [c.members for c in result.cells],
                                              result.settings["icon_direction"]))
    cos = torch.nn.functional.cosine_similarity(acts, directions, dim=1)
    cos_noise = torch.nn.functional.cosine_similarity(noise, directions, dim=1)
    assert (cos > cos_noise).float().mean() >= 0.8, (cos, cos_noise)


def test_activation_atlas_mode(model, small_images, tmp_path):
    images, paths = small_images
    result = build_atlas(model, images[:60], paths[:60], LAYER, TARGET, mode="activation", grid=6,
                         min_points=2, icon_size=32, steps=8)
    assert result.mode == "activation" and len(result.cells) >= 1
    result.save(tmp_path)
    assert json.loads((tmp_path / "atlas.json").read_text())["mode"] == "activation"


def test_atlas_cli_from_an_image_folder_and_its_errors(samples_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(samples_dir.iterdir())[:40]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_text("not an image")
    runner = CliRunner()
    out = tmp_path / "atlas"
    result = runner.invoke(main, ["atlas", "--images", str(folder), "--target", "_blocks.9:5",
                                  "--attr-layer", LAYER, "--grid", "5", "--per-group", "12",
                                  "--min-points", "1", "--icon-size", "24", "--steps", "4", "--size", "96",
                                  "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 unreadable skipped" in result.output and (out / "index.html").is_file()
    missing_target = runner.invoke(main, ["atlas", "--images", str(folder), "--attr-layer", LAYER,
                                          "--out", str(out)])
    assert missing_target.exit_code == 2 and "needs a target" in missing_target.output
    both = runner.invoke(main, ["atlas", str(folder), "--images", str(folder), "--attr-layer", LAYER,
                                "--out", str(out)])
    assert both.exit_code == 2



def _icon_distances(model, decay: float) -> tuple[float, float]:
    """(between directions, within a direction): mean RMS pixel distances of the icons of 4 channels
    of _blocks.4 rendered with seeds 0 and 1 (32 px, 24 steps)."""
    directions = np.eye(40, dtype=np.float32)[[0, 7, 13, 21]]  # _blocks.4 has 40 channels
    first, second = (render_icons(model, "_blocks.4", directions, 32, 24, cossim_pow=1.0, seed=seed,
                                  progress=False, decay_power=decay) for seed in (0, 1))
    rms = lambda a, b: float((a - b).pow(2).mean().sqrt())  # noqa: E731
    within = np.mean([rms(first[k], second[k]) for k in range(4)])
    between = np.mean([rms(icons[i], icons[j]) for icons in (first, second)
                       for i in range(4) for j in range(i)])
    return between, within


def test_icons_of_different_directions_differ_in_pixels_more_than_two_seeds_of_one(model, one_thread):
    between, within = _icon_distances(model, ICON_DECAY_POWER)
    assert between > 1.1 * within, (between, within)  # measured 0.366 vs 0.305
    lucid_between, _ = _icon_distances(model, 1.0)
    assert between > 1.8 * lucid_between, (between, lucid_between)  # measured 0.152 at 1/f


def test_icon_decay_out_of_range_is_one_clear_error(model, small_images):
    images, paths = small_images
    with pytest.raises(PhospheneError, match="icon_decay"):
        build_atlas(model, images, paths, LAYER, TARGET, icon_decay=0.0)
