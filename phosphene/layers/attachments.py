"""Parts phosphene attaches to a model's layers (a dictionary's atom layer, `phosphene.dictionary.attach`).

Each layer module keeps what was attached to it in a registry (``module._phosphene_atoms``: name ->
record); `attachments` lists the records' descriptions over the whole model, by the layer they add
(``{"_blocks.8.kmeans16": {"name": ..., "layer": ..., "path": ..., "sha256": ...}}``), which a mining
run records so that later steps (a report) can attach the same thing again.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

REGISTRY = "_phosphene_atoms"


class Attachment(Protocol):
    """A registry record: says which layer it adds and how to find it again."""

    def describe(self) -> dict[str, Any]: ...


def registry(module: nn.Module, create: bool = False) -> dict[str, Attachment]:
    """The registry of ``module`` (a new empty dict, stored on the module when ``create``)."""
    return module.__dict__.setdefault(REGISTRY, {}) if create else module.__dict__.get(REGISTRY, {})


def attachments(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Descriptions of everything attached to ``model``'s layers, by the name of the layer it adds."""
    found = {}
    for module in model.modules():
        for record in registry(module).values():
            description = record.describe()
            found[description["unit_layer"]] = description
    return found
