"""README's pictures are made by the commands beside them, and their captions name the same things.

scripts/make_readme_images.py runs, for each picture, the README commands listed in its `FIGURES`;
this test checks the other half: each of those commands is printed in README in a section that shows
the picture, every picture README shows has an entry, and each caption (the alt text) names only
layers, units, channels and classes that its commands use.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from phosphene.models import imagenet_class_names

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
IMAGE = re.compile(r'<img src="docs/images/([\w.-]+)"[^>]*?alt="([^"]*)"'
                   r'|!\[([^\]]*)\]\(docs/images/([\w.-]+)\)')


def _script():
    path = REPO / "scripts" / "make_readme_images.py"
    spec = importlib.util.spec_from_file_location("make_readme_images", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
FIGURES = {figure.name: figure for figure in SCRIPT.FIGURES}


def _sections() -> list[str]:
    return re.split(r"\n(?=## )", README)


def _pictures() -> list[tuple[str, str, str]]:
    """(picture, caption, section text) for every picture README shows."""
    found = []
    for section in _sections():
        for match in IMAGE.finditer(section):
            name = match.group(1) or match.group(4)
            caption = match.group(2) if match.group(1) else match.group(3)
            found.append((name, caption, section))
    return found


def test_every_readme_picture_has_commands_that_make_it():
    shown = {name for name, _, _ in _pictures()}
    assert shown and shown <= set(FIGURES), shown - set(FIGURES)
    assert all((REPO / "docs" / "images" / name).is_file() for name in shown)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_the_commands_are_printed_in_a_section_that_shows_the_picture(name):
    sections = [SCRIPT.normalized(section) for picture, _, section in _pictures() if picture == name]
    assert sections, f"{name} is not shown in README"
    for command in FIGURES[name].commands:
        assert any(SCRIPT.normalized(command) in section for section in sections), (
            f"{command!r} (makes {name}) is not printed beside the picture")


def _named(caption: str) -> dict[str, set[str]]:
    layers = set(re.findall(r"(?<![\w.])(_blocks\.\d+(?:\._relu\d)?)(?![\w.])", caption))
    units = set(re.findall(r"_blocks\.\d+(?:\._relu\d)?:(\d+)", caption))
    units |= set(re.findall(r"\bunit (\d+)\b", caption))
    channels = set(re.findall(r"\bchannels (\d+-\d+)\b", caption))
    classes = set(re.findall(r"\bclass (\d+)\b", caption))
    return {"layers": layers, "units": units, "channels": channels, "classes": classes}


@pytest.mark.parametrize("name, caption", sorted({(n, c) for n, c, _ in _pictures()}))
def test_captions_name_the_layer_unit_and_class_of_their_command(name, caption):
    command = " ".join(SCRIPT.normalized(c) for c in FIGURES[name].commands)
    named = _named(caption)
    assert any(named.values()) or "phosphene" in caption, f"{name}: caption names nothing: {caption!r}"
    for layer in named["layers"]:
        assert re.search(rf"(?<![\w.]){re.escape(layer)}(?![\w])", command), (name, layer, command)
    for unit in named["units"]:
        assert re.search(rf"(:{unit}\b|--units (\d+-)?\d*\b)", command), (name, unit, command)
        ranges = re.findall(r"--units (\d+)-(\d+)", command)
        if not re.search(rf":{unit}\b", command):
            assert any(int(a) <= int(unit) <= int(b) for a, b in ranges), (name, unit, command)
    for channels in named["channels"]:
        assert f"--channels {channels}" in command, (name, channels, command)
    names = imagenet_class_names()
    for index in named["classes"]:
        assert f"--class {index}" in command, (name, index, command)
        said = re.search(rf"class {index} \(([^)]+)\)", caption)
        if said:
            assert said.group(1).lower() in names[int(index)].lower(), (said.group(1), names[int(index)])


def test_the_check_catches_a_caption_that_disagrees_with_its_command():
    wrong = _named("the most tense images of _blocks.8._relu1:3 through _blocks.6")
    command = SCRIPT.normalized(FIGURES["mti.jpg"].commands[0])
    assert f":{next(iter(wrong['units']))} " not in command + " "
    assert not all(layer in command for layer in wrong["layers"])
