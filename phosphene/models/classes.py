"""Class names shipped with phosphene (ImageNet's 1000, in index order)."""

from __future__ import annotations

from importlib import resources


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (shipped with the package)."""
    text = resources.files("phosphene.data").joinpath("imagenet_classes.txt").read_text()
    return text.splitlines()
