"""Shared fixtures: the real model is loaded once per session; ../shared data is found or skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import phosphene

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOSPHENE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "data" / "imagenet-samples"
CLASSES_TSV = SHARED / "data" / "imagenet-classes.tsv"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def model() -> phosphene.ImageModel:
    """EfficientNet-Lite0 with its ImageNet weights, on the CPU (shared by all tests)."""
    return phosphene.load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/data/imagenet-samples (500 images); tests using it skip only if it is absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} not found")
    return SAMPLES


@pytest.fixture(scope="session")
def sample_labels(samples_dir) -> dict[str, int]:
    """wnid -> ImageNet class index, from ../shared/data/imagenet-classes.tsv."""
    if not CLASSES_TSV.is_file():
        pytest.skip(f"{CLASSES_TSV} not found")
    rows = CLASSES_TSV.read_text().splitlines()[1:]
    return {row.split("\t")[1]: int(row.split("\t")[0]) for row in rows}


@pytest.fixture(scope="session")
def sample_batch(samples_dir) -> tuple[torch.Tensor, list[Path]]:
    """All sample images, 224 px centre crops, as one (500, 3, 224, 224) tensor, and their paths."""
    paths = phosphene.images.list_images(samples_dir)
    return torch.stack([phosphene.load_image(p, 224) for p in paths]), paths


@pytest.fixture(scope="session")
def sample_forward(model, sample_batch) -> dict[str, torch.Tensor]:
    """One pass over the 500 samples: logits (500, 1000) and `_blocks.8` channel means (500, 112)."""
    images, _ = sample_batch
    logits, means = [], []
    with phosphene.LayerTap(model, ["_blocks.8", "logits"]) as tap, torch.no_grad():
        for chunk in images.split(100):
            acts = tap(chunk)
            logits.append(acts["logits"])
            means.append(acts["_blocks.8"].mean((2, 3)))
    return {"logits": torch.cat(logits), "_blocks.8": torch.cat(means)}


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (faster for small models on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Any socket connection or name lookup raises; returns the list of attempts (for assertions)."""
    import socket

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access attempted in a test that forbids it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts
