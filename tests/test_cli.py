"""The command line: outputs and error exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from phosphene.cli.app import main


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_render_writes_one_png_per_unit_a_grid_and_json(runner, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(main, ["render", "--layer", "_blocks.8", "--channels", "0-3", "--steps", "3",
                                  "--size", "48", "--param", "fourier", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "render.json").read_text())
    assert [u["label"] for u in record["units"]] == [f"_blocks.8:{c}" for c in range(4)]
    for unit in record["units"]:
        assert Image.open(out / unit["file"]).size == (48, 48)
    assert Image.open(out / "grid.png").size[0] > 2 * 48
    assert record["settings"]["param"] == "fourier" and record["settings"]["steps"] == 3


def test_render_colour_gain_is_recorded_and_checked(runner, tmp_path):
    args = ["render", "--layer", "_blocks.2", "--channels", "0", "--steps", "1", "--size", "32", "--quiet"]
    result = runner.invoke(main, [*args, "--colour-gain", "1", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a" / "render.json").read_text())["settings"]["colour_gain"] == 1.0
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "render.json").read_text())["settings"]["colour_gain"] == 2.0
    result = runner.invoke(main, [*args, "--param", "maco", "--colour-gain", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--colour-gain applies to --param fourier or pixel" in result.output


def test_render_classes_with_several_images_per_class(runner, tmp_path):
    result = runner.invoke(main, ["render", "--classes", "1,9", "--batch", "2", "--diversity", "1",
                                  "--layer", "_blocks.12", "--steps", "2", "--size", "48", "--quiet",
                                  "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "render.json").read_text())["units"]) == 4


@pytest.mark.parametrize("args, message", [
    (["--layer", "_block.8", "--channels", "0"], "closest: _blocks.8"),
    (["--layer", "_blocks.8", "--channels", "110-113"], "channel 112 out of range"),
    (["--model", "resnet-nope", "--layer", "x", "--channels", "0"], "unknown model"),
    (["--layer", "_blocks.8"], "give --layer and --channels"),
    (["--layer", "_blocks.8", "--channels", "x-y"], "cannot read unit list"),
])
def test_render_errors_are_one_line_with_exit_code_2(runner, tmp_path, args, message):
    result = runner.invoke(main, ["render", *args, "--steps", "1", "--size", "32", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unreadable_weights_file_exits_2(runner, tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_text("garbage")
    result = runner.invoke(main, ["render", "--weights", str(bad), "--layer", "_blocks.1", "--channels",
                                  "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "cannot read weights file" in result.output


def test_layers_lists_names_shapes_layouts_and_units(runner):
    result = runner.invoke(main, ["layers", "efficientnet_lite0"])
    assert result.exit_code == 0
    line = next(row for row in result.output.splitlines() if row.startswith("_blocks.8 "))
    assert line.split()[2:] == ["1x112x14x14", "NCHW", "112", "units"]


def test_models_lists_the_default(runner):
    result = runner.invoke(main, ["models"])
    assert result.exit_code == 0 and "efficientnet_lite0" in result.output


def test_classify_prints_top5_and_reports_unreadable_images(runner, samples_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    tench = samples_dir / "n01440764_tench.JPEG"
    result = runner.invoke(main, ["classify", str(tench), str(broken)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    top = lines[lines.index(str(tench)) + 1]
    assert top.split()[1] == "0" and "tench" in top
    assert sum(1 for line in lines if line.startswith("  ")) == 5
    assert "broken.jpg: cannot read image" in result.output


def test_models_lists_the_families_and_how_to_name_them(runner):
    result = runner.invoke(main, ["models"])
    assert "torchvision:<arch>[.<WEIGHTS>]" in result.output and "timm:<arch>[.<tag>]" in result.output
    torchvision = pytest.importorskip("torchvision")
    line = next(row for row in result.output.splitlines() if "torchvision:<arch>" in row)
    count = len(torchvision.models.list_models(module=torchvision.models))
    assert f"{count} classifiers in torchvision" in line
    listed = runner.invoke(main, ["models", "torchvision", "resnet*"])
    assert listed.exit_code == 0 and "torchvision:resnet50" in listed.output.splitlines()


def test_python_dash_m_runs_the_same_command_line():
    """``python -m phosphene`` is the ``phosphene`` script (for a checkout without the entry point)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "phosphene", "presets"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "draft" in done.stdout
