"""Captions: class names instead of "class k", and the note that explains the numbers in grids."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import phosphene
from phosphene import objectives as obj
from phosphene.io.captions import GRID_NOTE, name_classes


def test_class_labels_get_their_names():
    names = ["tench", "goldfish"]
    labels = name_classes(["class 1", "class 7", "_blocks.8:3"], names)
    assert labels == ["1 goldfish", "class 7", "_blocks.8:3"]
    assert name_classes(["class 1"], None) == ["class 1"]


def test_grid_note_adds_lines_under_the_tiles():
    tiles = torch.zeros(2, 3, 32, 32)
    plain = phosphene.image_grid(tiles, ["a", "b"])
    noted = phosphene.image_grid(tiles, ["a", "b"], note=GRID_NOTE)
    assert noted.size[0] == plain.size[0] and noted.size[1] >= plain.size[1] + 2 * 14
    bottom = np.asarray(noted)[plain.size[1]:]
    assert (bottom < 200).any()  # text was drawn


def test_class_renders_are_captioned_with_class_names(model, tmp_path):
    result = phosphene.render(model, obj.class_logit([1, 130]), steps=1, size=32, progress=False)
    assert result.labels == ["1 goldfish", "130 flamingo"]
    record = result.save(tmp_path)
    assert record["units"][0]["label"] == "1 goldfish" and Image.open(tmp_path / "grid.png").size[1] > 32
