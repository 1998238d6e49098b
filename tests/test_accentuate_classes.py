"""``phosphene accentuate --class 1,9 / --top-logits N / --most-inhibited N / --crop-range MIN,MAX``."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

import phosphene
from phosphene.cli.accentuate_classes import ClassChoices, expand_rows, seed_classes
from phosphene.cli.app import main

FAST = ["--steps", "1", "--crops", "1", "--size", "48", "--input-size", "48", "--reg-layer", "_blocks.4",
        "--quiet"]


def test_seed_classes_are_each_images_top_and_bottom_logits(model):
    seeds = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    picked = seed_classes(model, seeds, None, ClassChoices(top=2, bottom=1))
    with torch.no_grad():
        logits = model(seeds)
    for row, classes in zip(logits, picked):
        order = row.argsort(descending=True).tolist()
        assert classes == [order[0], order[1], order[-1]]
    assert seed_classes(model, seeds, [4, 5], ClassChoices()) == [[4, 5], [4, 5]]
    batch, names, objective = expand_rows(seeds, ["a", "b"], [[1, 2], [3]])
    assert torch.equal(batch, seeds[[0, 0, 1]]) and names == ["a_c1", "a_c2", "b_c3"]
    assert objective.batch_size == 3 and objective.label(2) == "class 3"


def test_several_classes_per_seed_in_one_batch_and_crop_range(samples_dir, tmp_path):
    hen = str(samples_dir / "n01514859_hen.JPEG")
    result = CliRunner().invoke(main, ["accentuate", hen, "--class", "1,9", "--crop-range", "0.2,0.6",
                                       "--lam-sweep", "0,1", *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "accentuate.json").read_text())
    labels = [r["label"] for r in record["accentuations"]]
    assert labels == ["class 1", "class 1", "class 9", "class 9"]  # seed x class rows, then lambdas
    assert record["settings"]["crop_side"] == [0.2, 0.6]
    assert (tmp_path / "n01514859_hen_c9_lam1.png").is_file()


def test_top_logits_and_most_inhibited(model, samples_dir, tmp_path):
    hen = str(samples_dir / "n01514859_hen.JPEG")
    result = CliRunner().invoke(main, ["accentuate", hen, "--top-logits", "1", "--most-inhibited", "1",
                                       *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    seed = phosphene.models.preprocess.load_for(model, hen, 48)
    with torch.no_grad():
        logits = model(seed[None])[0]
    top, bottom = int(logits.argmax()), int(logits.argmin())
    assert f"n01514859_hen_c{top} " in result.output and f"n01514859_hen_c{bottom} " in result.output


def test_class_choice_errors(samples_dir, tmp_path):
    hen = str(samples_dir / "n01514859_hen.JPEG")
    runner = CliRunner()
    for args, message in ((["--class", "1", "--top-logits", "2"], "--layer and --channel, or --class"),
                          (["--class", "1", "--crop-range", "0.7,0.2"], "need 0 < MIN <= MAX <= 1"),
                          (["--class", "1", "--crop-range", "x"], "give MIN,MAX"),
                          (["--class", "1,x"], "cannot read unit list")):
        result = runner.invoke(main, ["accentuate", hen, *args, *FAST, "--out", str(tmp_path)])
        assert result.exit_code == 2 and message in result.output, result.output


def test_invert_takes_a_size():
    result = CliRunner().invoke(main, ["invert", "--help"])
    assert result.exit_code == 0 and "--size" in result.output


def test_reg_layer_sweep_in_one_call(samples_dir, tmp_path):
    hen = str(samples_dir / "n01514859_hen.JPEG")
    fast = [a for a in FAST if a not in ("--reg-layer", "_blocks.4")]
    result = CliRunner().invoke(main, ["accentuate", hen, "--class", "8", "--reg-layer", "input,_blocks.4",
                                       "--lam-sweep", "0,1", *fast, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "reg layer input" in result.output and "reg layer _blocks.4" in result.output
    assert (tmp_path / "sweep.png").is_file()
    for folder, reg_layer in (("reg_input", "input"), ("reg__blocks-4", "_blocks.4")):
        record = json.loads((tmp_path / folder / "accentuate.json").read_text())
        assert record["settings"]["reg_layer"] == reg_layer and len(record["accentuations"]) == 2
    bad = CliRunner().invoke(main, ["accentuate", hen, "--class", "8", "--reg-layer", "input,_blocks.99",
                                    *fast, "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown layer" in bad.output
