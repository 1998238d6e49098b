"""Captions of pictures: class names for class objectives, and the line that explains grid numbers."""

from __future__ import annotations

import re
from collections.abc import Sequence

GRID_NOTE = "number under each image: the objective on the final image, un-transformed"
_CLASS = re.compile(r"^class (\d+)$")


def name_classes(labels: Sequence[str], class_names: Sequence[str] | None) -> list[str]:
    """Labels ``"class k"`` become ``"k <name>"`` (e.g. ``"1 goldfish"``) when ``class_names`` has k."""
    out = []
    for label in labels:
        match = _CLASS.match(label)
        k = int(match.group(1)) if match else -1
        out.append(f"{k} {class_names[k]}" if class_names and 0 <= k < len(class_names) else label)
    return out
