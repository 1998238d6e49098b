"""`learn_dictionary`: sample a layer's activations, fit a method, measure it, write the file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import OutputError, PhospheneError
from ..models.wrapper import as_image_model
from . import methods
from .atoms import NAME, Dictionary
from .registry import FitOptions
from .sampling import ActivationSample, sample_activations


@dataclass(frozen=True)
class DictionarySettings:
    """How a dictionary is learned: ``method`` (`methods.METHODS`), ``atoms`` (K), ``per_image``
    vectors at most per image, ``max_vectors`` in the sample (its memory bound), ``held_out`` share
    of the sample kept for the metrics, ``seed``, ``size`` (image side; default the model's or the
    mining run's), ``batch_size`` (images) and ``num_workers`` (decoding processes); the options of
    the iterative methods (``epochs``, ``top_k``, ``lr``, ``fit_batch``, ``sparsity_penalty``,
    ``max_iter``: `methods.FitOptions`)."""

    method: str = "kmeans"
    atoms: int = 16
    per_image: int = 64
    max_vectors: int = 100_000
    held_out: float = 0.1
    seed: int = 0
    size: int | None = None
    batch_size: int = 32
    num_workers: int = 2
    epochs: int = FitOptions.epochs
    top_k: int = FitOptions.top_k
    lr: float = FitOptions.lr
    fit_batch: int = FitOptions.fit_batch
    sparsity_penalty: float = FitOptions.sparsity_penalty
    max_iter: int = FitOptions.max_iter

    def fit_options(self) -> FitOptions:
        return FitOptions.from_settings(self.describe())

    def describe(self) -> dict:
        """The settings saved in the file: the sampling and the method's options."""
        sampling = {k: getattr(self, k) for k in ("method", "atoms", "per_image", "max_vectors", "held_out",
                                                  "seed", "size")}
        return sampling | {k: getattr(self, k) for k in FitOptions.__dataclass_fields__}


def split_sample(vectors: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) rows of ``vectors``, a random ``held_out`` share held out (none below 10 rows)."""
    if not 0 <= held_out < 1:
        raise PhospheneError("--held-out must be in [0, 1)")
    count = int(round(len(vectors) * held_out)) if len(vectors) >= 10 else 0
    order = np.random.default_rng(seed).permutation(len(vectors))
    return vectors[order[count:]], vectors[order[:count]]


def fit_dictionary(sample: ActivationSample, settings: DictionarySettings, layer: str, model_name: str,
                   name: str | None = None) -> Dictionary:
    """Fit ``settings.method`` on ``sample`` and measure it (see `methods.fit_metrics`)."""
    name = name or f"{settings.method}{settings.atoms}"
    if not NAME.match(name):
        raise PhospheneError(f"a dictionary name is a Python identifier (letters, digits, _), not {name!r}")
    fit_rows, held_rows = split_sample(sample.vectors, settings.held_out, settings.seed)
    methods.check_size(settings.method, settings.atoms, fit_rows)
    options = settings.fit_options()
    started = time.perf_counter()
    fitted = methods.fit(settings.method, fit_rows, settings.atoms, options)
    seconds = time.perf_counter() - started
    metrics, energy = methods.fit_metrics(settings.method, fitted, fit_rows, held_rows, options)
    metrics.update(fit_seconds=round(seconds, 3),
                   negative_energy_share=float(np.square(np.minimum(sample.vectors, 0)).sum()
                                               / max(np.square(sample.vectors).sum(), 1e-30)))
    images = {"source": sample.source, "image_list_sha256": sample.image_list_sha256,
              "n_images": sample.n_images, "n_used": sample.n_used, "n_skipped": sample.n_skipped,
              "n_vectors_offered": sample.n_offered}
    return Dictionary(torch.from_numpy(methods.unit_rows(fitted.components)),
                      torch.from_numpy(fitted.components), torch.from_numpy(fitted.mean),
                      torch.from_numpy(energy), settings.method, layer, model_name, name,
                      settings.describe(), metrics, images,
                      {key: torch.from_numpy(value) for key, value in fitted.state.items()})


def default_path(out: str | os.PathLike, layer: str, name: str) -> Path:
    """``OUT/dictionary_<layer>_<name>.safetensors``."""
    return Path(out) / f"dictionary_{layer.replace('/', '_')}_{name}.safetensors"


def learn_dictionary(model: nn.Module, layer: str, source: str | os.PathLike, out: str | os.PathLike,
                     settings: DictionarySettings | None = None, *, name: str | None = None,
                     progress: bool | None = None) -> tuple[Dictionary, Path]:
    """Learn a dictionary of ``layer`` from the images of ``source`` (an image folder or a mining run)
    and write it into the folder ``out``; returns it and its path."""
    settings = settings or DictionarySettings()
    model = as_image_model(model)
    methods.get(settings.method)
    if settings.atoms < 1:
        raise PhospheneError("--atoms must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    sample = sample_activations(model, layer, source, per_image=settings.per_image,
                                max_vectors=settings.max_vectors, size=settings.size,
                                batch_size=settings.batch_size, num_workers=settings.num_workers,
                                seed=settings.seed, progress=progress)
    dictionary = fit_dictionary(sample, settings, layer, model.name, name)
    out.mkdir(parents=True, exist_ok=True)
    return dictionary, dictionary.save(default_path(out, layer, dictionary.name))
