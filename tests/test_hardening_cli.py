"""Every CLI number is validated at the boundary: bad values give one line and exit 2, never a
traceback (property tests with hypothesis), and environment failures (unwritable output) exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phosphene.cli.app import main
from phosphene.psychophysics.storage import ExperimentDB

OUT = "/nonexistent-phosphene-out"
NOPE = ["--model", "nope"]  # valid numbers then stop at the unknown model (exit 2), quickly

COMMANDS = {
    "render": (["render", *NOPE, "--layer", "x", "--channels", "0", "--out", OUT],
               ["--steps", "--lr", "--size", "--batch", "--seed", "--diversity"]),
    "accentuate": (["accentuate", *NOPE, "a.png", "--layer", "x", "--channel", "0", "--out", OUT],
                   ["--steps", "--crops", "--size", "--input-size", "--lr", "--lam", "--seed",
                    "--channel"]),
    "invert": (["invert", *NOPE, "--image", "a.png", "--target", "a:0", "--attr-layer", "b",
                "--out", OUT], ["--steps", "--lr", "--size", "--crops", "--cossim-pow", "--seed"]),
    "atlas": (["atlas", *NOPE, "--images", "d", "--attr-layer", "b", "--out", OUT],
              ["--grid", "--per-group", "--min-points", "--icon-size", "--steps", "--batch", "--size"]),
    "mine": (["mine", *NOPE, "--layers", "x", "--images", "d", "--out", OUT],
             ["--k", "--batch-size", "--workers", "--size", "--checkpoint-every", "--max-pixels",
              "--max-aspect"]),
    "tension": (["tension", *NOPE, "--images", "d", "--target", "a:0", "--attr-layer", "b",
                 "--out", OUT], ["--n", "--batch-size", "--workers", "--size"]),
    "classify": (["classify", "a.png", *NOPE], ["--top"]),
    "layers": (["layers", "nope"], ["--size"]),
    "trials": (["experiment", "trials", OUT], ["--participant", "--trials-per-condition", "--catch",
                                              "--seed"]),
    "stimuli": (["experiment", "stimuli", *NOPE, "--images", "d", "--out", OUT],
                ["--units-per-layer", "--naturals", "--visualizations", "--steps", "--viz-size",
                 "--image-size", "--diversity"]),
    "simulate": (["experiment", "simulate", OUT, "--out", OUT], ["--size", "--participants"]),
    "serve": (["experiment", "serve", OUT], ["--port", "--trials-per-condition"]),
}

values = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "", "0", "-1", "0x10", " 3", "1_000", "2**70"]),
    st.text(max_size=8),
)


def assert_clean(result) -> None:
    """Exit 0 or 2, and no exception other than the exit itself (so no traceback)."""
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_fuzzed_numeric_options_never_give_a_traceback(name):
    prefix, options = COMMANDS[name]
    runner = CliRunner()

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(options), values)
    def check(option, value):
        assert_clean(runner.invoke(main, [*prefix, f"{option}={value}"],
                                   env={"PHOSPHENE_ADMIN_TOKEN": "x" * 20}))

    check()


@pytest.mark.parametrize("args", [
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--steps", "-5"],
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--size", "0"],
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--lr", "nan"],
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--batch", "0"],
    ["mine", "--layers", "x", "--images", "d", "--out", OUT, "--workers", "-1"],
    ["mine", "--layers", "x", "--images", "d", "--out", OUT, "--max-pixels", "0"],
    ["classify", "a.png", "--top", "-1"],
    ["experiment", "stimuli", "--images", "d", "--out", OUT, "--units-per-layer", "0"],
    ["experiment", "stimuli", "--images", "d", "--out", OUT, "--naturals", "0"],
    ["experiment", "trials", OUT, "--participant", "-1"],
    ["experiment", "serve", OUT, "--port", "99999"],
])
def test_known_bad_inputs_are_usage_errors(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Invalid value" in result.output, result.output
    assert_clean(result)


@pytest.mark.parametrize("args", [
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--device", "cuda:99"],
    ["render", "--layer", "x", "--channels", "0", "--out", OUT, "--device", "toaster"],
    ["experiment", "simulate", OUT, "--out", OUT, "--device", "cuda:99"],
    ["report", "build", "run", "--layers", "x", "--out", OUT, "--device", "mps"],
])
def test_unavailable_device_is_one_line_exit_2(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert "device" in result.output
    assert_clean(result)


def test_unwritable_output_is_one_line_exit_2(tmp_path):
    db = ExperimentDB(tmp_path / "r.sqlite")
    assert db.counts() == {"sessions": 0, "responses": 0}
    result = CliRunner().invoke(main, ["experiment", "export", str(db.path), "--out",
                                       str(tmp_path / "missing" / "x.csv")])
    assert result.exit_code == 2 and result.output.startswith("error: No such file or directory")
    assert_clean(result)


def test_experiment_stimuli_skips_bad_files_and_names_them(samples_dir, tmp_path):
    import csv
    import shutil

    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(samples_dir.iterdir())[:12]:
        shutil.copy(path, folder / path.name)
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "zero.png").write_bytes(b"")
    out = tmp_path / "stimuli"
    result = CliRunner().invoke(main, [
        "experiment", "stimuli", "--images", str(folder), "--layers", "_blocks.1,_blocks.2,_blocks.3",
        "--units-per-layer", "3", "--naturals", "2", "--visualizations", "1", "--steps", "1",
        "--viz-size", "32", "--image-size", "32", "--device", "cpu", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped 2 files (1 empty file, 1 not an image)" in result.output
    with (out / "skipped.csv").open() as handle:
        rows = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert set(rows) == {"notes.jpg", "zero.png"} and rows["notes.jpg"].startswith("not an image")
    assert (out / "manifest.json").is_file()
