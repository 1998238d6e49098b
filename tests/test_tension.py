"""Tension analysis: score, completeness, selections, the written report and `phosphene tension`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_mining import sample_subset

from phosphene import mining
from phosphene.attribution import Target, attribute
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.inhibition.categories import (
    CATEGORIES,
    CategoryThresholds,
    categorize,
    category_counts,
    category_examples,
    map_overlap,
)
from phosphene.inhibition.tension import compute_tension, correlations, tension_report, tension_score
from phosphene.inhibition.tension_plots import scale_colour, threshold_map
from phosphene.mining.dataset import Preprocessing, decode_image

TARGET = Target("_blocks.8._relu1", 3)
LAYERS = ["_blocks.7", "_blocks.4", "input"]
SIZE = 96


@pytest.fixture(scope="module")
def folder(samples_dir, tmp_path_factory):
    folder = sample_subset(samples_dir, tmp_path_factory.mktemp("tension") / "images", 32, step=15)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder


@pytest.fixture(scope="module")
def small_folder(samples_dir, tmp_path_factory):
    return sample_subset(samples_dir, tmp_path_factory.mktemp("tension") / "small", 8, step=61)


@pytest.fixture(scope="module")
def small_run(model, small_folder, tmp_path_factory):
    return mining.run_mining(model, ["_blocks.2"], small_folder, tmp_path_factory.mktemp("run") / "run",
                             k=2, batch_size=8, num_workers=0, size=48, progress=False)


@pytest.fixture(scope="module")
def report(model, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return tension_report(model, folder, TARGET, LAYERS, out, n=4, batch_size=16, num_workers=2,
                          size=SIZE, progress=False)


def test_tension_score_is_the_smaller_of_the_mean_normalized_e_plus_and_e_minus():
    e_plus = np.array([1.0, 4.0, 1.0, 2.0])    # mean 2
    e_minus = np.array([8.0, 1.0, 2.0, 5.0])   # mean 4
    np.testing.assert_allclose(tension_score(e_plus, e_minus), [0.5, 0.25, 0.5, 1.0])


def test_correlations_match_pearson_and_ranked_spearman():
    x = np.array([1.0, 2.0, 2.0, 5.0, 9.0])
    y = np.array([2.0, 1.0, 4.0, 8.0, 100.0])
    pearson, spearman = correlations(x, y)
    assert pearson == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks_x, ranks_y = np.array([0, 1.5, 1.5, 3, 4]), np.array([1, 0, 2, 3, 4.0])
    assert spearman == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert np.isnan(correlations(np.ones(4), np.arange(4.0))[0])


def test_table_holds_every_readable_image_with_the_attribution_of_that_image(model, folder, report):
    table = report.table
    assert len(table.f) == 32 and "broken.png" not in table.paths
    prep = Preprocessing(SIZE)
    picks = [0, 17, 31]
    images = torch.stack([torch.from_numpy(decode_image(folder / table.paths[i], prep)).float() / 255
                          for i in picks])
    direct = attribute(model, images, TARGET, ["_blocks.4"])
    np.testing.assert_allclose(table.f[picks], direct.f.double().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table.values["_blocks.4"]["e_minus"][picks],
                               direct.layers["_blocks.4"].e_minus.double().numpy(), rtol=1e-4, atol=1e-5)


def test_selections_are_the_extremes_of_f_and_of_tension(report):
    table, chosen = report.table, report.selections
    assert set(table.f[chosen["mei"]]) == set(np.sort(table.f)[-4:])
    assert set(table.f[chosen["mii"]]) == set(np.sort(table.f)[:4])
    tension = table.tension("_blocks.7")
    assert tension[chosen["mti"]].min() >= np.sort(tension)[-4]


def test_completeness_is_reported_per_layer_and_variant(report, capsys):
    rows = report.table.completeness()
    assert [(r["layer"], r["variant"]) for r in rows] == [(la, v) for la in LAYERS for v in ("l1", "l2")]
    for row in rows:
        assert -1 <= row["pearson"] <= 1 and -1 <= row["spearman"] <= 1 and row["n"] == 32
        assert row["scale"] > 0.01 and not row["sum_zero"]  # Lite0 has no LayerNorm: ΣA is not about 0
    csv = (report.out / "completeness.csv").read_text().splitlines()
    assert csv[0] == "layer,variant,pearson,spearman,scale,n" and len(csv) == 1 + 2 * len(LAYERS)
    with capsys.disabled():  # the figures the README and docs report
        print("\ncompleteness (32 images, 96 px):",
              ", ".join(f"{r['layer']}/{r['variant']} r={r['pearson']:.3f} scale={r['scale']:.3g}"
                        for r in rows))


def test_report_writes_plots_and_tables(report):
    for name in report.files:
        assert (report.out / name).is_file(), name
    for name in ("scatter.png", "completeness.png", "mei.png", "mii.png", "mti.png"):
        with Image.open(report.out / name) as image:
            assert image.width > 300 and image.height > 200
    table = pq.read_table(report.out / "tension.parquet")
    assert table.num_rows == 32
    assert {"index", "path", "f", "_blocks.7/e_plus", "input/e_minus_l2", "_blocks.4/tension"} <= set(
        table.column_names)
    summary = json.loads((report.out / "tension.json").read_text())
    assert summary["target"] == "_blocks.8._relu1:3" and len(summary["selections"]["mti"]) == 4
    assert "min(E+/mean(E+), E-/mean(E-))" in summary["tension_score"]


def test_colour_scale_corners_and_map_threshold():
    colour, alpha = scale_colour(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(colour[0], [1, 0, 0], atol=1e-6)      # excitation only: red
    np.testing.assert_allclose(colour[1], [0, 0, 1], atol=1e-6)      # inhibition only: blue
    np.testing.assert_allclose(colour[2], [1, 0, 1], atol=1e-6)      # both: magenta
    np.testing.assert_allclose(alpha, [1, 1, 1, 0])
    phi = torch.arange(100.0).view(1, 10, 10)
    mapped = threshold_map(phi)
    assert mapped[0, 4, 9] == 0 and mapped[0, 9, 9] == 1 and 0 < mapped[0, 7, 0] < 1


def test_tension_on_a_mining_run_uses_its_images_and_preprocessing(model, small_run):
    table = compute_tension(model, small_run.root, TARGET, ["_blocks.7"], num_workers=0)
    assert len(table.f) == 8 and table.preprocessing.size == 48
    assert table.paths == [p.name for p in small_run.image_paths()]


def test_cli_tension_writes_outputs_and_rejects_bad_input(small_folder, small_run, tmp_path):
    folder = small_folder
    runner = CliRunner()
    args = ["--target", "_blocks.8._relu1:3", "--attr-layer", "_blocks.7", "--n", "3", "--size", "64",
            "--device", "cpu", "--quiet", "--workers", "0"]
    result = runner.invoke(main, ["tension", str(small_run.root), "--out", str(tmp_path / "t")] + args)
    assert result.exit_code == 0, result.output
    assert "_blocks.8._relu1:3: 8 images" in result.output and "completeness _blocks.7" in result.output
    assert {p.name for p in (tmp_path / "t").iterdir()} >= {"scatter.png", "completeness.csv", "mei.png",
                                                            "mii.png", "mti.png", "tension.parquet"}
    bad = [
        (["--images", str(folder), "--target", "_blocks.8", "--attr-layer", "_blocks.7"], "LAYER:CHANNEL"),
        (["--images", str(folder), "--target", "_blocks.4:0", "--attr-layer", "_blocks.7"],
         "does not come before"),
        (["--target", "_blocks.4:0", "--attr-layer", "_blocks.2"], "either a mining RUN"),
        (["--images", str(tmp_path / "none"), "--target", "_blocks.4:0", "--attr-layer", "_blocks.2"],
         "not a mining run or image folder"),
    ]
    for extra, message in bad:
        out = runner.invoke(main, ["tension", "--out", str(tmp_path / "x"), "--device", "cpu", "--quiet",
                                   "--size", "64", "--workers", "0"] + extra)
        assert out.exit_code == 2 and message in out.output, out.output
        assert len(out.output.strip().splitlines()) == 1


def test_compute_tension_rejects_a_run_of_another_model(model, small_run, tmp_path):
    shutil.copytree(small_run.root, tmp_path / "run")
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    (tmp_path / "run" / "manifest.json").write_text(manifest.replace('"efficientnet_lite0"', '"other_net"'))
    with pytest.raises(PhospheneError, match="mined with other_net"):
        compute_tension(model, tmp_path / "run", TARGET, ["_blocks.7"], num_workers=0)


# Tension categories (inhibition paper Fig. 4): definitions on known values, and in the output.

def test_overlap_is_one_for_the_same_map_zero_for_disjoint_or_empty_maps():
    a = torch.zeros(1, 4, 4)
    a[0, 0, 0], a[0, 1, 1] = 2.0, 1.0
    b = torch.zeros(1, 4, 4)
    b[0, 3, 3] = 5.0
    both = map_overlap(torch.cat([a, a, a]), torch.cat([a * 3, b, torch.zeros(1, 4, 4)]))
    np.testing.assert_allclose(both.numpy(), [1.0, 0.0, 0.0], atol=1e-6)
    half = torch.zeros(1, 2, 1)
    half[0, 0, 0] = 1.0
    np.testing.assert_allclose(map_overlap(half, torch.ones(1, 2, 1)).numpy(), [0.5], atol=1e-6)


def test_each_category_from_known_values():
    # means: E+ 1.0 and E- 1.0 over these six images
    e_plus = np.array([2.4, 0.1, 0.2, 1.5, 1.5, 0.3])
    e_minus = np.array([0.2, 2.5, 0.1, 1.4, 1.6, 0.2])
    overlap = np.array([0.9, 0.9, 0.9, 0.1, 0.8, 0.5])
    got = categorize(e_plus, e_minus, overlap)
    assert list(got) == ["mei", "mii", "none", "spatial", "channel", "none"]
    stricter = categorize(e_plus, e_minus, overlap, CategoryThresholds(low=0.1, tense=2.0, overlap=0.5))
    assert list(stricter) == ["mei", "mii", "mei", "mei", "mii", "mei"]
    counts = category_counts(got)
    assert list(counts) == list(CATEGORIES) and counts["none"] == 2 and sum(counts.values()) == 6
    examples = category_examples(got, e_plus, e_minus, 1)
    assert examples["none"].tolist() == [2] and examples["mei"].tolist() == [0]


def test_bad_thresholds_and_shapes_are_one_line_errors():
    with pytest.raises(PhospheneError, match="0 <= overlap <= 1"):
        CategoryThresholds(overlap=1.5)
    with pytest.raises(PhospheneError, match="one value per image"):
        categorize(np.ones(3), np.ones(3), np.ones(2))


def test_tension_report_stores_categories_counts_and_pictures(report):
    table = pq.read_table(report.out / "tension.parquet")
    categories = table.column("_blocks.7/category").to_pylist()
    overlap = np.array(table.column("_blocks.7/overlap").to_pylist())
    assert len(categories) == 32 and set(categories) <= set(CATEGORIES)
    assert ((overlap >= 0) & (overlap <= 1 + 1e-9)).all()
    summary = json.loads((report.out / "tension.json").read_text())["categories"]
    assert summary["layer"] == "_blocks.7" and sum(summary["counts"].values()) == 32
    assert summary["counts"] == {c: categories.count(c) for c in CATEGORIES}
    assert summary["thresholds"] == {"low": 0.5, "tense": 1.0, "overlap": 0.5}
    for name in ("categories.png", "categories_examples.png"):
        with Image.open(report.out / name) as image:
            assert image.width > 400 and image.height > 300


def test_cli_prints_counts_and_takes_the_thresholds(small_folder, tmp_path):
    args = ["tension", "--images", str(small_folder), "--target", "_blocks.8._relu1:3", "--attr-layer",
            "_blocks.7", "--n", "2", "--size", "48", "--workers", "0", "--quiet", "--category-tense", "0.1",
            "--category-low", "0", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "categories (_blocks.7)" in x)
    counts = json.loads((tmp_path / "tension.json").read_text())["categories"]["counts"]
    assert counts["none"] == 0 and sum(counts.values()) == 8
    assert all(f"{k} {v}" in line for k, v in counts.items())
    bad = CliRunner().invoke(main, [*args[:-2], "--category-overlap", "2", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2
