"""`Dictionary`: learned feature directions of one layer, and their file (safetensors).

The file holds the tensors ``atoms`` (K, C; unit-norm directions: the units), ``components`` (K, C;
the method's own dictionary, e.g. NMF's rows with their scale), ``mean`` (C,), ``energy`` (K,) and
``state.*``, what the method needs to encode (an SAE's weights: `overcomplete_methods`), and in its
metadata the method, its settings, the layer and model, the image list's hash and
counts, and the fit metrics (JSON). Loading checks all of it: a file that is not a dictionary, or
is damaged, is a one-line `PhospheneError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import objectives as obj
from ..errors import PhospheneError, UnitOutOfRangeError, install_hint
from ..io.images import atomic_write_bytes
from . import methods

FORMAT = "phosphene-dictionary/1"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Dictionary:
    """K directions in the C-channel space of ``layer`` of ``model``, learned by ``method``.

    ``atoms[k]`` is atom k's unit-norm direction: as a unit, atom k's activation at a position is
    ``<a, atoms[k]>`` (a the layer's C-vector there), and `objective` is `objectives.direction`.
    `encode` gives the method's own codes (see `phosphene.dictionary.methods`). ``name`` (e.g.
    ``kmeans16``) names the atom layer ``LAYER.NAME`` once attached to a model
    (`phosphene.dictionary.attach`)."""

    atoms: torch.Tensor
    components: torch.Tensor
    mean: torch.Tensor
    energy: torch.Tensor
    method: str
    layer: str
    model: str
    name: str
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None  # the file it was loaded from or saved to (not stored in the file)
    sha256: str | None = None  # that file's SHA-256

    def __len__(self) -> int:
        return self.atoms.shape[0]

    @property
    def channels(self) -> int:
        return self.atoms.shape[1]

    @property
    def unit_layer(self) -> str:
        """The layer name of the atoms in a model the dictionary is attached to."""
        return f"{self.layer}.{self.name}"

    def unit(self, k: int) -> str:
        """Atom ``k`` as a unit string (``"_blocks.8.kmeans16:3"``; needs the dictionary attached)."""
        self._check_atoms([k])
        return f"{self.unit_layer}:{k}"

    def _check_atoms(self, atoms: Sequence[int]) -> None:
        bad = [a for a in atoms if not 0 <= a < len(self)]
        if bad:
            raise UnitOutOfRangeError(f"atom {bad[0]} out of range: the dictionary has {len(self)} "
                                      f"(0-{len(self) - 1})")

    def objective(self, k: int | Sequence[int] | range, cossim_pow: float = 0.0) -> obj.Objective:
        """`objectives.direction` of atom ``k`` in the layer (a sequence: one atom per image)."""
        atoms = [k] if isinstance(k, int) else list(k)
        self._check_atoms(atoms)
        vectors = self.atoms[atoms] if len(atoms) > 1 else self.atoms[atoms[0]]
        objective = obj.direction(self.layer, vectors, cossim_pow)
        objective.name = f"atoms({self.unit_layer}, {obj._short(atoms)})"
        objective.labels = [f"{self.unit_layer}:{a}" for a in atoms]
        return objective

    def projections(self, acts: torch.Tensor) -> torch.Tensor:
        """Atom activations ``<a, atoms[k]>``: (N, C) -> (N, K), (B, C, H, W) -> (B, K, H, W)."""
        atoms = self.atoms.to(acts.device, acts.dtype)
        if acts.dim() == 2:
            return acts @ atoms.T
        return torch.einsum("bc...,kc->bk...", acts, atoms)

    def encode(self, acts: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The method's codes: (N, C) -> (N, K), or (B, C, H, W) -> (B, K, H, W)."""
        acts = torch.as_tensor(acts)
        spatial = acts.dim() == 4
        flat = acts.movedim(1, -1).reshape(-1, acts.shape[1]) if spatial else acts
        codes = torch.from_numpy(methods.encode(self.method, self.fitted(),
                                                flat.detach().float().cpu().numpy(),
                                                methods.FitOptions.from_settings(self.settings)))
        if spatial:
            b, _, *rest = acts.shape
            codes = codes.reshape(b, *rest, -1).movedim(-1, 1)
        return codes

    def fitted(self) -> methods.Fitted:
        """The method's learned tensors as `methods.Fitted` (numpy views)."""
        return methods.Fitted(self.components.numpy(), self.mean.numpy(),
                              {key: value.numpy() for key, value in self.state.items()})

    def top_units(self, k: int, count: int = 5) -> list[tuple[int, float]]:
        """The ``count`` channels with the largest weights in atom ``k``: [(channel, weight)]."""
        self._check_atoms([k])
        weights = self.atoms[k]
        order = weights.abs().argsort(descending=True)[:count]
        return [(int(c), float(weights[c])) for c in order]

    def unit_atoms(self, channel: int, count: int = 3) -> list[tuple[int, float]]:
        """The ``count`` atoms that weigh channel ``channel`` most: [(atom, weight)], by |weight|."""
        if not 0 <= channel < self.channels:
            raise UnitOutOfRangeError(f"channel {channel} out of range: {self.layer} has {self.channels}")
        weights = self.atoms[:, channel]
        order = weights.abs().argsort(descending=True)[:count]
        return [(int(a), float(weights[a])) for a in order]

    def by_energy(self) -> list[int]:
        """Atoms ordered by their share of the activation energy, largest first."""
        return torch.argsort(self.energy, descending=True).tolist()

    def check_model(self, model_name: str, channels: int | None = None) -> None:
        """`PhospheneError` unless the dictionary was learned on ``model_name`` (with ``channels``)."""
        if model_name != self.model:
            raise PhospheneError(f"the dictionary {self.name} was learned on model {self.model}, not "
                                 f"{model_name}")
        if channels is not None and channels != self.channels:
            raise PhospheneError(f"the dictionary {self.name} has {self.channels}-channel atoms, "
                                 f"{self.layer} has {channels} channels")

    def summary(self) -> str:
        """One line: method, size, layer, R², sparsity, dead atoms."""
        m = self.metrics
        return (f"{self.name}: {self.method} {len(self)} atoms of {self.layer} ({self.channels} channels), "
                f"R² held-out {m.get('r2_held_out', float('nan')):.3f}, sparsity "
                f"{m.get('sparsity', float('nan')):.2f} (L0 {m.get('l0', float('nan')):.1f}), "
                f"{m.get('dead_atoms', 0)} dead atoms, from {m.get('n_fit', 0) + m.get('n_held_out', 0)} "
                f"vectors of {self.images.get('n_used', '?')} images")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to ``path`` (safetensors, atomically)."""
        _require_safetensors()
        from safetensors.torch import save

        tensors = {"atoms": self.atoms, "components": self.components, "mean": self.mean,
                   "energy": self.energy} | {f"state.{key}": value for key, value in self.state.items()}
        meta = {"format": FORMAT, "method": self.method, "layer": self.layer, "model": self.model,
                "name": self.name, "settings": json.dumps(self.settings),
                "metrics": json.dumps(self.metrics), "images": json.dumps(self.images)}
        path = Path(path)
        data = save({k: v.contiguous().float() for k, v in tensors.items()}, meta)
        atomic_write_bytes(path, data)
        self.path, self.sha256 = path, hashlib.sha256(data).hexdigest()
        return path


def load_dictionary(path: str | os.PathLike) -> Dictionary:
    """Read a dictionary file; `PhospheneError` (one line) if it is missing, not one, or damaged."""
    _require_safetensors()
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise PhospheneError(f"dictionary file not found: {path}")
    try:
        data = path.read_bytes()
        tensors = load(data)
        meta = _metadata(data)
        if meta.get("format") != FORMAT:
            raise ValueError("no phosphene dictionary metadata")
        dictionary = Dictionary(
            tensors["atoms"], tensors["components"], tensors["mean"], tensors["energy"], meta["method"],
            meta["layer"], meta["model"], meta["name"], json.loads(meta["settings"]),
            json.loads(meta["metrics"]), json.loads(meta["images"]),
            {key[6:]: value for key, value in tensors.items() if key.startswith("state.")},
            path, hashlib.sha256(data).hexdigest())
        _check_consistent(dictionary)
    except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise PhospheneError(f"{path} is not a readable phosphene dictionary "
                             f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
                             ) from None
    return dictionary


def _require_safetensors() -> None:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        raise PhospheneError(f"dictionary files need safetensors: {install_hint('dictionary')}") from None


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header."""
    if len(data) < 8:
        raise ValueError("file too short")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("header longer than the file")
    return json.loads(data[8:8 + size]).get("__metadata__") or {}


def _check_consistent(d: Dictionary) -> None:
    k, c = d.atoms.shape if d.atoms.dim() == 2 else (0, 0)
    if (d.atoms.dim() != 2 or d.components.shape != (k, c) or d.mean.shape != (c,)
            or d.energy.shape != (k,) or k == 0):
        raise ValueError("tensor shapes do not match")
    if d.method not in methods.METHODS:
        raise ValueError(f"unknown method {d.method!r}")
    if d.method in methods.SAES and ("input_scale" not in d.state
                                     or not any(key.startswith("sae.") for key in d.state)):
        raise ValueError(f"the {d.method} SAE's weights are missing")
    if not NAME.match(d.name):
        raise ValueError(f"bad name {d.name!r}")
    if not all(torch.isfinite(t).all() for t in (d.atoms, d.components, d.mean, *d.state.values())):
        raise ValueError("non-finite values")
