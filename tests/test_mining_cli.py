"""`phosphene mine`: outputs, summary line, and one-line errors with exit code 2."""

from __future__ import annotations

import pyarrow.parquet as pq
from click.testing import CliRunner
from test_mining import sample_subset

from phosphene import mining
from phosphene.cli.app import main

ARGS = ["--layers", "_blocks.2", "--k", "3", "--size", "64", "--batch-size", "8", "--workers", "0",
        "--device", "cpu", "--quiet"]


def test_mine_writes_run_and_reports_skipped_files(samples_dir, tmp_path):
    folder = sample_subset(samples_dir, tmp_path / "images", 12, step=40)
    (folder / "zero.png").write_bytes(b"")
    result = CliRunner().invoke(main, ["mine", "--images", str(folder), "--out", str(tmp_path / "run")]
                                + ARGS)
    assert result.exit_code == 0, result.output
    assert "mined 12 of 13 images for _blocks.2 (k=3)" in result.output
    assert "skipped 1 files (1 empty file)" in result.output
    assert "_blocks.2                   24 units, contact sheet contact__blocks.2.png" in result.output
    assert (tmp_path / "run" / "contact__blocks.2.png").is_file()
    for name in ("manifest.json", "topk.parquet", "images.parquet", "skipped.csv"):
        assert (tmp_path / "run" / name).is_file()
    assert pq.read_table(tmp_path / "run" / "topk.parquet").num_rows == 24 * 6 * 3
    assert len(mining.open(tmp_path / "run").top("_blocks.2", 5)) == 3
    again = CliRunner().invoke(main, ["mine", "--images", str(folder), "--out", str(tmp_path / "run")]
                               + ARGS)
    assert again.exit_code == 0 and "mined 12 of 13" in again.output  # finished run: reopened


def test_mine_errors_are_one_line_with_exit_code_2(samples_dir, tmp_path):
    folder = sample_subset(samples_dir, tmp_path / "images", 4, step=100)
    runner = CliRunner()
    cases = [
        (["--images", str(folder), "--layers", "_blocks.99"], "unknown layer '_blocks.99'"),
        (["--images", str(tmp_path / "missing"), "--layers", "_blocks.2"], "image folder not found"),
        (["--images", str(tmp_path / "run"), "--layers", "_blocks.2"], "image folder not found"),
    ]
    for extra, message in cases:
        result = runner.invoke(main, ["mine", "--out", str(tmp_path / "run"), "--device", "cpu"] + extra)
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["mine", "--images", str(empty), "--layers", "_blocks.2", "--out",
                                  str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2 and "no images" in result.output
    ok = runner.invoke(main, ["mine", "--images", str(folder), "--out", str(tmp_path / "run")] + ARGS)
    assert ok.exit_code == 0, ok.output
    other = runner.invoke(main, ["mine", "--images", str(folder), "--out", str(tmp_path / "run")]
                          + ARGS[:3] + ["4"] + ARGS[4:])
    assert other.exit_code == 2 and "k differ" in other.output
    missing = runner.invoke(main, ["mine", "--out", str(tmp_path / "run2"), "--images", str(folder)])
    assert missing.exit_code == 2 and "--layers" in missing.output
