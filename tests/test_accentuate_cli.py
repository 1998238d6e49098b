"""``phosphene accentuate``: outputs for several images in one batch, and its errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from phosphene.cli.app import main

FAST = ["--steps", "2", "--crops", "2", "--size", "48", "--input-size", "48", "--reg-layer", "_blocks.4",
        "--quiet"]


def test_accentuate_writes_images_figure_and_json_and_skips_unreadable(samples_dir, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    images = [str(samples_dir / "n01514859_hen.JPEG"), str(bad), str(samples_dir / "n01440764_tench.JPEG")]
    result = CliRunner().invoke(main, ["accentuate", "--image", images[0], images[1], images[2],
                                       "--class", "309", "--lam-sweep", "0,1", *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 images x 2 lambdas" in result.output and "(1 skipped)" in result.output
    assert "broken.jpg" in result.output
    record = json.loads((out / "accentuate.json").read_text())
    assert len(record["accentuations"]) == 4
    assert record["settings"]["skipped"] == [images[1]]
    assert {r["lam"] for r in record["accentuations"]} == {0.0, 1.0}
    assert (out / "figure.png").is_file() and (out / "n01514859_hen_lam1.png").is_file()


def test_accentuate_a_channel(samples_dir, tmp_path):
    result = CliRunner().invoke(main, ["accentuate", str(samples_dir / "n01514859_hen.JPEG"),
                                       "--layer", "_blocks.6", "--channel", "5", *FAST,
                                       "--style", "phosphene", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "accentuate.json").read_text())
    assert record["accentuations"][0]["label"] == "_blocks.6:5"
    assert record["settings"]["style"] == "phosphene"


def test_accentuate_errors_are_one_line_with_exit_code_2(samples_dir, tmp_path):
    runner = CliRunner()
    hen = str(samples_dir / "n01514859_hen.JPEG")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    cases = [
        (["accentuate", str(bad), "--class", "1"], "none of the 1 images"),
        (["accentuate", "--class", "1"], "at least one image"),
        (["accentuate", hen], "--layer and --channel, or --class"),
        (["accentuate", hen, "--class", "1", "--reg-layer", "_blocks.99"], "unknown layer"),
        (["accentuate", hen, "--layer", "_blockz.6", "--channel", "1"], "unknown layer"),
        (["accentuate", hen, "--class", "1", "--lam-sweep", "0,x"], "lambda list"),
        (["accentuate", hen, "--class", "1", "--style", "lucid"], "Invalid value for '--style'"),
        (["accentuate", hen, "--class", "5000", *FAST], "out of range"),
    ]
    for args, message in cases:
        result = runner.invoke(main, [*args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_paper_columns_add_the_heat_map_and_the_visualization(samples_dir, tmp_path):
    from PIL import Image

    hen = str(samples_dir / "n01514859_hen.JPEG")
    plain = CliRunner().invoke(main, ["accentuate", hen, "--class", "8", *FAST, "--out", str(tmp_path / "a")])
    paper = CliRunner().invoke(main, ["accentuate", hen, "--class", "8", *FAST, "--paper-columns",
                                      "--out", str(tmp_path / "b")])
    assert plain.exit_code == 0 and paper.exit_code == 0, paper.output
    narrow, wide = (Image.open(tmp_path / d / "figure.png").size[0] for d in ("a", "b"))
    assert wide - narrow >= 2 * 48  # two more 48-px columns
    assert json.loads((tmp_path / "b" / "accentuate.json").read_text())["settings"]["paper_columns"]
    swept = CliRunner().invoke(main, ["accentuate", hen, "--class", "8", *FAST[:-3], "--reg-layer",
                                      "input,_blocks.4", "--paper-columns", "--out", str(tmp_path / "c")])
    assert swept.exit_code == 2 and "--paper-columns takes one --reg-layer" in swept.output
