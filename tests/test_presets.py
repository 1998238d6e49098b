"""Quality presets: publication is every command's default, draft fills only what was not given."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

import phosphene
from phosphene.cli.app import main
from phosphene.presets import PRESETS, QUALITIES, preset, preset_table


def _command(name: str) -> click.Command:
    command: click.Command = main
    for part in name.split():
        command = command.commands[part]  # type: ignore[attr-defined]
    return command if name != "report" else main.commands["report"].commands["build"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_publication_is_the_default_and_every_preset_names_real_options(name):
    options = {p.name: p for p in _command(name).params}
    assert "quality" in options
    for quality in QUALITIES:
        assert set(PRESETS[name][quality]) <= set(options), (name, quality)
    for key, value in PRESETS[name]["publication"].items():
        assert options[key].default == value, (name, key)


def test_draft_is_cheaper_than_standard_cheaper_than_publication():
    for name, by_quality in PRESETS.items():
        for key in by_quality["draft"]:
            values = [by_quality[q][key] for q in QUALITIES]
            if None not in values:
                assert values[0] <= values[1] <= values[2], (name, key, values)


def test_python_api_and_bad_names():
    assert phosphene.preset("render", "draft") == {"steps": 48, "size": 128}
    assert "size" not in preset("render", "publication")  # None: the model's own input size
    with pytest.raises(phosphene.PhospheneError, match="choose one of draft, standard, publication"):
        preset("render", "quick")
    with pytest.raises(phosphene.PhospheneError, match="commands with presets"):
        preset("paint", "draft")
    assert preset_table().count("\n") == len(PRESETS) + 1


def test_draft_fills_what_was_not_given_and_explicit_options_win(tmp_path):
    args = ["render", "--layer", "_blocks.2", "--channels", "0", "--quality", "draft", "--steps", "2"]
    result = CliRunner().invoke(main, [*args, "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "render.json").read_text())["settings"]
    assert settings["size"] == 128 and settings["steps"] == 2


def test_an_unknown_quality_is_a_usage_error():
    result = CliRunner().invoke(main, ["render", "--layer", "_blocks.2", "--quality", "fast", "--out", "x"])
    assert result.exit_code == 2 and "fast" in result.output


def test_presets_verb_prints_the_table():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0 and result.output.startswith(preset_table())
