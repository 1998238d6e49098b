"""Mining and decoding survive bad files, changed folders, full disks and concurrent runs."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from badcorpus import NON_UTF8_DIR, NON_UTF8_FILE, photo, write_bad_corpus, write_png16_rgba
from click.testing import CliRunner
from PIL import Image

from phosphene import mining
from phosphene.cli.app import main
from phosphene.errors import OutputError, PhospheneError
from phosphene.io.decoding import ImageDecodeError, read_rgb, scan_images
from phosphene.io.images import load_image
from phosphene.mining.lock import RunLockedError, run_lock

LAYER = "_blocks.2"


def mine(model, images: Path, out: Path, **kwargs) -> mining.MiningRun:
    options = dict(k=3, batch_size=4, num_workers=0, size=32, progress=False)
    return mining.run_mining(model, [LAYER], images, out, **{**options, **kwargs})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, set[str], set[str]]:
    folder = tmp_path_factory.mktemp("bad") / "corpus"
    good, bad = write_bad_corpus(folder)
    return folder, good, bad


def test_bad_corpus_is_mined_end_to_end(model, corpus, tmp_path):
    folder, good, bad = corpus
    run = mine(model, folder, tmp_path / "run", k=20, num_workers=1)
    skipped = {path: reason for _, path, reason in run.skipped()}
    shown_bad = {p.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for p in bad}
    assert set(skipped) == shown_bad
    assert skipped["bomb_wide.png"].startswith("extreme aspect ratio")
    used = {e.path.relative_to(folder).as_posix() for e in run.top(LAYER, 0)}
    assert used == good  # non-UTF-8 names come back exactly, so the images can be reopened
    assert run.load(run.top(LAYER, 0, k=3)).shape == (3, 3, 32, 32)
    table_paths = set(run.table().column("path").to_pylist())
    assert "caf\\xe9.jpg" in table_paths and f"{NON_UTF8_DIR[:-1]}\\xff/inside.png" in table_paths
    assert run.manifest["summary"]["n_used"] == len(good)


def test_exif_orientation_and_16_bit_decode_alike(corpus):
    folder, _, _ = corpus
    assert read_rgb(folder / "rotated.jpg").size == (64, 96)  # stored 96x64, viewed upright
    tensor = load_image(folder / "sixteen_bit.png")
    mined = np.asarray(read_rgb(folder / "sixteen_bit.png"), dtype=np.float32) / 255
    assert np.allclose(tensor.permute(1, 2, 0).numpy(), mined)  # one decoder for both paths
    assert tensor[:, 0, 0].max() < 0.01 and tensor[:, -1, -1].min() > 0.99


def test_bombs_without_the_aspect_limit_decode_only_their_centre(corpus):
    folder, _, _ = corpus
    for name in ("bomb_wide.png", "bomb_huge.png"):
        crop = read_rgb(folder / name, 32, max_aspect=float("inf"))
        assert crop.size == (32, 32) and crop.getextrema() == ((0, 0),) * 3


def test_unreadable_subfolder_is_reported(model, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    (folder / "locked").mkdir(parents=True)
    photo().save(folder / "a.png")
    photo(seed=2).save(folder / "locked" / "b.png")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert [p.name for p in scan_images(folder)[0]] == ["a.png"]
    run = mine(model, folder, tmp_path / "run")
    assert [(i, p) for i, p, _ in run.skipped()] == [(-1, "locked")]
    assert "unreadable folder" in run.skipped()[0][2]


def test_all_skipped_run_is_a_clear_error(model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not an image")
    (folder / "b.png").write_bytes(b"")
    with pytest.raises(PhospheneError, match="none of the 2 images could be used"):
        mine(model, folder, tmp_path / "run")
    with pytest.raises(PhospheneError, match="no examples"):
        mining.open(tmp_path / "run").top(LAYER, 0)
    result = CliRunner().invoke(main, ["mine", "--device", "cpu", "--layers", LAYER, "--images",
                                       str(folder), "--out", str(tmp_path / "run2"), "--quiet"])
    assert result.exit_code == 2 and "none of the 2 images" in result.output
    assert "Traceback" not in result.output


def test_changed_folder_says_what_changed(model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        photo(seed=i).save(folder / f"{i}.png")
    mine(model, folder, tmp_path / "run")
    photo(seed=9).save(folder / "new.png")
    (folder / "0.png").unlink()
    with pytest.raises(PhospheneError, match=r"1 added \(new.png\); 1 removed \(0.png\).*another --out"):
        mine(model, folder, tmp_path / "run")


def test_unwritable_out_is_one_error_and_checkpoint_survives(model, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        photo(seed=i).save(folder / f"{i:02d}.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        mine(model, folder, tmp_path / "file")
    with pytest.raises(OutputError, match="cannot write"):
        mine(model, folder, tmp_path / "file" / "run")
    real_replace, calls = os.replace, []

    def replace(src, dst):  # the disk fills up after the second checkpoint
        if Path(dst).name == "checkpoint.pt":
            calls.append(dst)
            if len(calls) > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="No space left on device.*checkpoint is intact"):
        mine(model, folder, tmp_path / "run", checkpoint_every=1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert mining.store.load_checkpoint(tmp_path / "run")["processed"] == 8
    resumed = mine(model, folder, tmp_path / "run")
    assert resumed.table().equals(mine(model, folder, tmp_path / "clean").table())
    mode = stat.S_IMODE((tmp_path / "run" / "manifest.json").stat().st_mode)
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_second_run_on_one_out_is_refused_and_stale_lock_taken_over(model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    photo().save(folder / "a.png")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("999999\n")  # left by a dead process: no flock held
    held, release = threading.Event(), threading.Event()

    def hold():
        with run_lock(out):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(30)
    try:
        with pytest.raises(RunLockedError, match=f"in use by another mining run \\(pid {os.getpid()}\\)"):
            mine(model, folder, out)
    finally:
        release.set()
        thread.join()
    assert mine(model, folder, out).manifest["summary"]["n_used"] == 1


def test_load_image_names_the_bad_file(tmp_path):
    bad = tmp_path / NON_UTF8_FILE
    bad.write_bytes(b"junk")
    with pytest.raises(PhospheneError, match=r"cannot read image .*caf\\xe9.jpg: not an image"):
        load_image(bad, 32)
    shutil.rmtree(tmp_path)


# -- the decoding budget (issue 27) ------------------------------------------------------------------
def test_a_png_over_the_pixel_budget_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    write_png16_rgba(tmp_path / "big.png", 600, 500)

    def no_decoding(self):
        raise AssertionError("decoded a file that its header already ruled out")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    for size in (None, 32):
        with pytest.raises(ImageDecodeError, match=r"too large \(600x500: over the decoding budget of 0.2"):
            read_rgb(tmp_path / "big.png", size, max_pixels=200_000)


def test_a_jpeg_over_the_pixel_budget_is_decoded_at_a_reduced_scale(tmp_path):
    photo(2000, 1500).save(tmp_path / "big.jpg", quality=90)
    assert read_rgb(tmp_path / "big.jpg", max_pixels=1_000_000).size == (1000, 750)
    assert read_rgb(tmp_path / "big.jpg", 64, max_pixels=1_000_000).size == (64, 64)
    with pytest.raises(ImageDecodeError, match="1/8 scale"):
        read_rgb(tmp_path / "big.jpg", max_pixels=40_000)  # 250x188 at 1/8 is still over


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_decoding_a_16_bit_rgba_png_costs_at_most_8_bytes_per_pixel(tmp_path):
    import subprocess
    import sys

    write_png16_rgba(tmp_path / "big.png", 2500, 2500)
    # a fresh process with the decoder alone (its packages stubbed, so torch stays out); its peak
    # memory from /proc (ru_maxrss would start at the forking parent's size)
    code = ("import re, sys, types\n"
            "for name, folder in (('phosphene', sys.argv[2]), ('phosphene.io', sys.argv[2] + '/io')):\n"
            "    sys.modules[name] = types.ModuleType(name); sys.modules[name].__path__ = [folder]\n"
            "from phosphene.io.decoding import read_rgb\n"
            "def peak(): return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
            "before = peak()\n"
            "crop = read_rgb(sys.argv[1], 224)\n"
            "print((peak() - before) * 1024, crop.size)")
    package = str(Path(mining.__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.png"), package],
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) <= 8 * 2500**2 + 8_000_000, f"{int(out[0]) / 2**20:.0f} MiB for 6.25 megapixels"


def test_reducing_before_converting_matches_converting_the_whole_image(tmp_path):
    y, x = np.mgrid[0:1200, 0:1500]
    rgba = np.stack([x * 255 // 1500, y * 255 // 1200, (x + y) % 256, (x * 7 + y) % 256], -1)
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(tmp_path / "alpha.png")
    full = Image.alpha_composite(Image.new("RGBA", (1500, 1200), (255, 255, 255, 255)),
                                 Image.open(tmp_path / "alpha.png")).convert("RGB")
    side = 1200 * 0.875
    box = ((1500 - side) / 2, (1200 - side) / 2, (1500 + side) / 2, (1200 + side) / 2)
    expected = np.asarray(full.resize((64, 64), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0),
                          dtype=int)
    assert np.abs(np.asarray(read_rgb(tmp_path / "alpha.png", 64), dtype=int) - expected).max() <= 2


def test_exif_orientation_is_applied_to_the_crop_as_to_the_whole_image(tmp_path):
    base = photo(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(tmp_path / "tagged.png", exif=exif.tobytes())
    base.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "upright.png")
    tagged = np.asarray(read_rgb(tmp_path / "tagged.png", 48), dtype=int)
    upright = np.asarray(read_rgb(tmp_path / "upright.png", 48), dtype=int)
    assert np.abs(tagged - upright).max() <= 1


def test_a_killed_writers_temporary_files_are_removed_when_the_run_resumes(model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        photo(seed=i).save(folder / f"{i}.png")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.k3x_9q2a").write_bytes(b"half a checkpoint")  # as a SIGKILL leaves it
    (out / ".topk.parquet.0a1b2c3d").write_bytes(b"")
    (out / ".notes").write_text("not ours")  # other hidden files stay
    mine(model, folder, out)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock", ".notes"]
