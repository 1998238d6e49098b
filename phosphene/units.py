"""One way to name a unit: an `Objective`, or the string ``"layer:channel"`` (a channel's mean) /
``"layer:channel@y,x"`` (one position) / ``"layer:channel@cls"`` (the class token of a transformer
layer, the layer ``layer#cls``), lucent's ``"mixed4a:476"`` habit. Channels are features in every
layout (`phosphene.layouts`); positions are on the patch grid for token layers.

A `Unit` (defined in `phosphene.objectives`, re-exported here) is the parsed form;
``Unit.objective()`` is the matching `objectives.channel` / `objectives.neuron`, and objectives
made from a unit carry it (``objective.unit``, always a `Unit`), so every API that needs a single
unit (attribution, tension, inversion, atlas) accepts any of the three forms.
``preactivation`` says how attribution reads a unit of an activation module: its input.
"""

from __future__ import annotations

import re

from . import objectives as obj
from .errors import PhospheneError
from .objectives import CLS, Unit

__all__ = ["CLS", "Unit", "as_unit", "parse_unit", "unit"]

_UNIT = re.compile(r"^(?P<layer>.+):(?P<channel>\d+)(?:@(?:(?P<cls>cls)|(?P<y>\d+),(?P<x>\d+)))?$")


def parse_unit(text: str, position: str | tuple[int, int] = "mean", preactivation: bool = True) -> Unit:
    """``"_blocks.8._relu1:3"`` or ``"_blocks.8:3@2,5"`` -> `Unit` (``@y,x`` overrides ``position``);
    ``"blocks.6:3@cls"`` -> feature 3 of the class token (layer ``blocks.6#cls``)."""
    if text.strip().startswith("-"):
        raise PhospheneError(f"{text!r} is a negative objective (-LAYER:CHANNEL, to render with "
                             "phosphene.unit or `render --unit`), not a unit")
    match = _UNIT.match(text.strip())
    if not match:
        raise PhospheneError(f"a unit must look like LAYER:CHANNEL, LAYER:CHANNEL@Y,X or "
                             f"LAYER:CHANNEL@cls (e.g. _blocks.8:3), got {text!r}")
    layer = match["layer"]
    if match["cls"]:
        layer, position = layer + CLS, "mean"
    elif match["y"] is not None:
        position = (int(match["y"]), int(match["x"]))
    return Unit(layer, int(match["channel"]), position, preactivation)


def as_unit(spec: Unit | obj.Objective | str, position: str | tuple[int, int] = "mean",
            preactivation: bool = True) -> Unit:
    """The `Unit` named by a unit string, a `Unit`, or an objective made from one."""
    if isinstance(spec, Unit):
        return spec
    if isinstance(spec, str):
        return parse_unit(spec, position, preactivation)
    found = getattr(spec, "unit", None)
    if isinstance(found, Unit):
        return found
    raise PhospheneError(f"{spec!r} is not a single unit; give 'layer:channel' or an objective made "
                         "with phosphene.unit(...) / objectives.channel / objectives.neuron")


def unit(spec: Unit | obj.Objective | str, position: str | tuple[int, int] = "mean",
         preactivation: bool = True) -> obj.Objective:
    """The objective of a unit string (``"layer:channel"``, ``"layer:channel@y,x"``) or `Unit`;
    a leading ``-`` (``"-layer:channel"``) negates it (minimize the unit: a negative visualization)."""
    if isinstance(spec, obj.Objective):
        return spec
    if isinstance(spec, str) and spec.strip().startswith("-"):
        positive = unit(spec.strip()[1:], position, preactivation)
        negative = -positive
        negative.labels = [f"-{positive.label(0)}"]
        return negative
    return as_unit(spec, position, preactivation).objective()
