"""Mining: top/bottom-k equal a brute-force sort, bad files are skipped with reasons, runs reopen."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from phosphene import mining
from phosphene.errors import LayerNotFoundError, PhospheneError, UnitOutOfRangeError
from phosphene.io.images import list_images
from phosphene.layers.tap import LayerTap
from phosphene.mining.dataset import Preprocessing, decode_image
from phosphene.mining.topk import unit_statistics

LAYERS = ["_blocks.4", "_blocks.4._bn1", "_blocks.4._relu1"]  # _relu1: many tied zeros
SIZE, BATCH, K = 128, 16, 5


def sample_subset(samples_dir: Path, folder: Path, count: int, step: int = 6) -> Path:
    """``count`` sample images (every ``step``-th, so many classes) linked into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in list_images(samples_dir)[::step][:count]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def subset(samples_dir, tmp_path_factory) -> Path:
    return sample_subset(samples_dir, tmp_path_factory.mktemp("subset"), 80)


@pytest.fixture(scope="module")
def mined(model, subset, tmp_path_factory) -> mining.MiningRun:
    out = tmp_path_factory.mktemp("run") / "run"
    return mining.run_mining(model, LAYERS, subset, out, k=K, batch_size=BATCH, num_workers=2,
                             size=SIZE, progress=False)


def brute_force_stats(model, folder: Path) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{layer: {stat: (values (N, C), flat positions (N, C) or None)}} over every image at once."""
    prep = Preprocessing(SIZE)
    images = torch.stack([torch.from_numpy(decode_image(p, prep)) for p in list_images(folder)])
    out: dict[str, dict[str, list]] = {name: {} for name in LAYERS}
    with LayerTap(model, LAYERS) as tap, torch.inference_mode():
        for start in range(0, len(images), BATCH):  # the run's batches: identical float results
            acts = tap(images[start:start + BATCH].float().div_(255))
            for name in LAYERS:
                for stat, (values, pos) in unit_statistics(acts[name]).items():
                    out[name].setdefault(stat, []).append((values, pos))
    return {name: {stat: (torch.cat([v for v, _ in chunks]).numpy(),
                          None if chunks[0][1] is None else torch.cat([p for _, p in chunks]).numpy())
                   for stat, chunks in stats.items()} for name, stats in out.items()}


def test_top_and_bottom_k_equal_brute_force_sort(model, subset, mined):
    """Including ties: post-ReLU minima are mostly 0, ranked by image index."""
    stats = brute_force_stats(model, subset)
    for name in LAYERS:
        width = mined.manifest["layer_shapes"][name][2]
        for stat, (values, pos) in stats[name].items():
            n, channels = values.shape
            for unit in range(0, channels, 7):
                index = np.arange(n)
                top = np.lexsort((index, -values[:, unit]))[:K]      # value desc, then index asc
                bottom = np.lexsort((index, values[:, unit]))[:K]
                for direction, expected in (("top", top), ("bottom", bottom)):
                    got = mined.examples(name, unit, direction, stat)
                    assert [e.index for e in got] == expected.tolist(), (name, stat, direction, unit)
                    # mining folds BatchNorm (fold=True), the brute force does not: equal to round-off
                    assert np.allclose([e.value for e in got], values[expected, unit], rtol=1e-5, atol=1e-5)
                    if pos is not None:
                        assert [(e.y, e.x) for e in got] == [divmod(int(p), width)
                                                             for p in pos[expected, unit]]
                    else:
                        assert all(e.y is None and e.x is None for e in got)


def test_rankings_are_sorted_by_value_then_image_index(mined):
    rows = mined.table().to_pylist()
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row["layer"], row["unit"], row["stat"], row["direction"]), []).append(row)
    assert len(groups) == sum(mined.manifest["layer_shapes"][n][0] for n in LAYERS) * 6
    for (_, _, _, direction), group in groups.items():
        group.sort(key=lambda row: row["rank"])
        assert [row["rank"] for row in group] == list(range(K))
        sign = -1 if direction == "top" else 1
        keys = [(sign * row["value"], row["image_index"]) for row in group]
        assert keys == sorted(keys)


def test_run_writes_parquet_manifest_and_paths(mined, subset):
    table = pq.read_table(mined.root / "topk.parquet")
    channels = {name: mined.manifest["layer_shapes"][name][0] for name in LAYERS}
    assert table.num_rows == sum(channels.values()) * 3 * 2 * K
    assert set(table.column("stat").to_pylist()) == {"mean", "max", "min"}
    manifest = mined.manifest
    assert manifest["status"] == "complete"
    assert manifest["config"]["n_images"] == 80 and manifest["summary"]["n_skipped"] == 0
    assert manifest["config"]["preprocessing"]["size"] == SIZE
    assert set(manifest["versions"]) >= {"phosphene", "torch", "pyarrow"}
    example = mined.top("_blocks.4", 0, k=2)[1]
    assert example.rank == 1 and example.path.parent == subset and example.path.is_file()
    images = mined.load(mined.top("_blocks.4", 0, k=3))
    assert images.shape == (3, 3, SIZE, SIZE) and 0 <= images.min() and images.max() <= 1


def test_open_rejects_bad_requests(mined, tmp_path):
    with pytest.raises(PhospheneError, match="not a mining run"):
        mining.open(tmp_path)
    run = mining.open(mined.root)
    with pytest.raises(LayerNotFoundError):
        run.top("_blocks.5", 0)
    with pytest.raises(UnitOutOfRangeError, match="40 units"):
        run.top("_blocks.4", 40)
    with pytest.raises(PhospheneError, match="kept 5"):
        run.top("_blocks.4", 0, k=6)
    with pytest.raises(PhospheneError, match="by must be"):
        run.top("_blocks.4", 0, by="median")


def test_rerun_with_other_settings_is_refused(model, mined, subset):
    with pytest.raises(PhospheneError, match="k differ"):
        mining.run_mining(model, LAYERS, subset, mined.root, k=K + 1, batch_size=BATCH, size=SIZE,
                          progress=False)


def test_rerun_after_a_kill_following_the_last_checkpoint_rewrites_identical_tables(model, mined,
                                                                                      subset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mined.root, run)
    (run / "topk.parquet").unlink()  # as if killed after the final checkpoint, before the tables
    manifest = (run / "manifest.json").read_text().replace('"status": "complete"', '"status": "running"')
    (run / "manifest.json").write_text(manifest)
    with pytest.raises(PhospheneError, match="not finished"):
        mining.open(run)
    again = mining.run_mining(model, LAYERS, subset, run, k=K, batch_size=BATCH, num_workers=0,
                              size=SIZE, progress=False)
    assert again.table().equals(mined.table())


def make_bad_corpus(samples_dir: Path, folder: Path) -> tuple[set[str], set[str]]:
    """Files that must be used and files that must be skipped, written into ``folder``."""
    folder.mkdir()
    sources = list_images(samples_dir)[:3]
    for path in sources:
        shutil.copy(path, folder / path.name)
    photo = Image.open(sources[0]).convert("RGB")
    data = sources[1].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    gradient = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(gradient).save(folder / "sixteen_bit.png")
    assert Image.open(folder / "sixteen_bit.png").mode.startswith("I")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    (folder / "sub").mkdir()
    photo.convert("L").save(folder / "sub" / "gray.jpg")
    palette = photo.resize((64, 64)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(folder / "palette_alpha.png", transparency=0)
    Image.new("RGB", (1500, 1000), (0, 90, 0)).save(folder / "huge.png")
    good = {p.name for p in sources} | {"cmyk.jpg", "sixteen_bit.png", "sub/gray.jpg", "palette_alpha.png",
                                        "truncated.jpg"}  # a cut JPEG is decoded as far as it goes
    bad = {"empty.jpg", "text.jpg", "one_pixel.png", "huge.png"}
    return good, bad


def test_bad_files_are_skipped_with_reasons_and_good_ones_used(model, samples_dir, tmp_path):
    good, bad = make_bad_corpus(samples_dir, tmp_path / "corpus")
    run = mining.run_mining(model, ["_blocks.2"], tmp_path / "corpus", tmp_path / "run", k=20,
                            batch_size=4, num_workers=2, size=64, max_pixels=1_000_000, progress=False)
    reasons = {path: reason for _, path, reason in run.skipped()}
    assert set(reasons) == bad
    assert reasons["empty.jpg"].startswith("empty file")
    assert reasons["text.jpg"].startswith("not an image")
    assert reasons["one_pixel.png"].startswith("too small")
    assert reasons["huge.png"].startswith("too large")
    used = {e.path.relative_to(tmp_path / "corpus").as_posix() for e in run.top("_blocks.2", 0)}
    assert used == good  # k=20 > number of good files: every used file is ranked, no bad one
    summary = run.manifest["summary"]
    assert (summary["n_used"], summary["n_skipped"]) == (len(good), len(bad))
    assert summary["skipped_by_reason"]["too large"] == 1


def test_converted_modes_decode_to_the_expected_pixels(samples_dir, tmp_path):
    make_bad_corpus(samples_dir, tmp_path / "corpus")
    prep = Preprocessing(32)
    sixteen = decode_image(tmp_path / "corpus" / "sixteen_bit.png", prep)
    assert sixteen.shape == (3, 32, 32) and (sixteen[0] == sixteen[2]).all()
    assert sixteen[:, 0].mean() < 80 and sixteen[:, -1].mean() > 175  # dark-to-bright ramp kept
    clear = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    assert (decode_image(tmp_path / "clear.png", prep) == 255).all()  # transparent -> white
    cmyk = decode_image(tmp_path / "corpus" / "cmyk.jpg", prep).astype(float)
    rgb = decode_image(list_images(samples_dir)[0], prep).astype(float)
    assert np.abs(cmyk - rgb).mean() < 12
