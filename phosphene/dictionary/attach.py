"""Atoms as units everywhere: a dictionary attached to a model becomes a layer of it.

`attach` adds to the dictionary's layer ``L`` a child module ``L.NAME`` (e.g. ``_blocks.8.kmeans16``)
that projects L's output on the atoms, in L's own layout (a bias-free 1x1 convolution for NCHW, a
bias-free linear map over the last dimension for NHWC and token layouts), and makes L's forward call
it. Its channel k at a position is ``<a, atoms[k]>``: atom k as a unit. Every tool that takes a layer
and a channel then takes an atom: ``"_blocks.8.kmeans16:3"`` renders, mines, accentuates and
attributes atom 3 (its layout is detected like any layer's). L also gets an empty forward hook, which
keeps `fold_batchnorm` from folding it (folding would change L's output under the atoms).
`detach` (or leaving `attached`) restores the model exactly. The wrapped forward is an object
(`AtomForward`), so a model with atom layers survives `copy.deepcopy` and pickling: Ray workers get
the atoms with the model. `attached_dictionaries` lists what a model carries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import PhospheneError
from ..layers.attachments import registry
from ..layers.batch_check import first_tensor
from ..layers.names import resolve_layer
from ..layers.recording import forget_records
from ..layers.tap import LayerTap
from ..models.wrapper import as_image_model
from .atoms import Dictionary, load_dictionary
from .sampling import check_layer

PROBE_SIDE = 64  # the side of the pass that learns the layer's layout


class AtomConv(nn.Conv2d):
    """Atom activations of an NCHW layer: a bias-free 1x1 convolution with the atoms as filters."""

    def __init__(self, atoms: torch.Tensor):
        super().__init__(atoms.shape[1], atoms.shape[0], 1, bias=False)
        self.weight = nn.Parameter(atoms[:, :, None, None].clone(), requires_grad=False)


class AtomLinear(nn.Linear):
    """Atom activations of a channels-last layer (NHWC, tokens, (B, C)): a bias-free linear map."""

    def __init__(self, atoms: torch.Tensor):
        super().__init__(atoms.shape[1], atoms.shape[0], bias=False)
        self.weight = nn.Parameter(atoms.clone(), requires_grad=False)


class AtomConv1d(nn.Conv1d):
    """Atom activations of an NCL layer."""

    def __init__(self, atoms: torch.Tensor):
        super().__init__(atoms.shape[1], atoms.shape[0], 1, bias=False)
        self.weight = nn.Parameter(atoms[:, :, None].clone(), requires_grad=False)


def _source_view(model: nn.Module, layer: str) -> tuple[int, str]:
    """(channels, layout kind) of ``layer`` from one pass: at a small side first (the layout kind does
    not depend on it), at the model's own side if the model refuses the small one."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    sides = [model.fixed_side] if model.fixed_side else [min(PROBE_SIDE, model.input_size), model.input_size]
    for attempt, side in enumerate(sides):
        try:
            with LayerTap(model, [layer], truncate=True) as tap, torch.inference_mode():
                acts = tap(torch.full((1, 3, side, side), 0.5, device=device))
                layout = tap.layouts.get(layer)
            return acts[layer].shape[1], "NCHW" if layout is None else layout.kind
        except Exception:
            if attempt == len(sides) - 1:
                raise
    raise AssertionError("unreachable")


def _projection(model: nn.Module, layer: str, atoms: torch.Tensor) -> nn.Module:
    """The atom module for ``layer``'s layout."""
    channels, kind = _source_view(model, layer)
    if channels != atoms.shape[1]:
        raise PhospheneError(f"the dictionary has {atoms.shape[1]}-channel atoms, {layer} has "
                             f"{channels} channels")
    module = {"NCHW": AtomConv, "NCL": AtomConv1d}.get(kind, AtomLinear)(atoms.float())
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.float32
    return module.to(device, dtype).eval()


class AtomForward:
    """The forward of a layer with an atom layer: the layer's own forward (or the one it had before),
    then the atom child ``name`` on its output. An object, not a closure, so that `copy.deepcopy` (the
    BatchNorm folding of a Ray worker) and pickling carry it over to the copy's own modules."""

    def __init__(self, module: nn.Module, name: str, previous=None):
        self.module, self.name, self.previous = module, name, previous

    def __call__(self, *args, **kwargs):
        call = self.previous if self.previous is not None else type(self.module).forward.__get__(self.module)
        output = call(*args, **kwargs)
        raw, _ = first_tensor(output)
        if raw is not None:
            self.module._modules[self.name](raw)
        return output


@dataclass
class Attached:
    """What `attach` changed on the layer's module: the hook, the forward it replaced, the dictionary."""

    handle: RemovableHandle
    previous: object
    dictionary: Dictionary

    def describe(self) -> dict[str, Any]:
        """What a mining run records: the atom layer, the dictionary's name, layer, file and SHA-256."""
        d = self.dictionary
        return {"unit_layer": d.unit_layer, "name": d.name, "layer": d.layer, "atoms": len(d),
                "path": None if d.path is None else str(Path(d.path).resolve()), "sha256": d.sha256}


def attach(model: nn.Module, dictionary: Dictionary | str) -> str:
    """Make the atoms of ``dictionary`` (or a dictionary file) the layer ``LAYER.NAME`` of ``model``;
    returns that name. The dictionary must have been learned on this model and layer."""
    if not isinstance(dictionary, Dictionary):
        dictionary = load_dictionary(dictionary)
    image_model = as_image_model(model)
    dictionary.check_model(getattr(image_model, "name", "model"))
    check_layer(image_model, dictionary.layer)
    source = resolve_layer(image_model, dictionary.layer)
    if dictionary.name in source._modules:
        raise PhospheneError(f"{dictionary.layer} already has a part called {dictionary.name}; give the "
                             "dictionary another name (phosphene dictionary --name)")
    child = _projection(image_model, dictionary.layer, dictionary.atoms)
    previous = source.__dict__.get("forward")
    source.add_module(dictionary.name, child)
    source.forward = AtomForward(source, dictionary.name, previous)
    handle = source.register_forward_hook(_no_op)
    registry(source, create=True)[dictionary.name] = Attached(handle, previous, dictionary)
    forget_records(image_model)
    return dictionary.unit_layer


def _no_op(_module, _inputs, _output) -> None:
    return None


def detach(model: nn.Module, dictionary: Dictionary) -> None:
    """Undo `attach`: remove the atom layer, the hook and the forward wrapper (dictionaries attached
    to one layer are detached in the reverse order)."""
    source = resolve_layer(as_image_model(model), dictionary.layer)
    attached = registry(source)
    if dictionary.name not in attached:
        return
    record = attached.pop(dictionary.name)
    record.handle.remove()
    del source._modules[dictionary.name]
    if record.previous is None:
        source.__dict__.pop("forward", None)
    else:
        source.forward = record.previous
    forget_records(as_image_model(model))


def attached_dictionaries(model: nn.Module) -> dict[str, Dictionary]:
    """The dictionaries attached to ``model``, by their atom layer (``{"_blocks.8.kmeans16": d}``)."""
    found = {}
    for module in as_image_model(model).modules():
        for record in registry(module).values():
            found[record.dictionary.unit_layer] = record.dictionary
    return found


@contextlib.contextmanager
def attached(model: nn.Module, dictionaries: Iterable[Dictionary | str]) -> Iterator[list[str]]:
    """`attach` for the duration of a ``with`` block; yields the atom layer names."""
    loaded = [d if isinstance(d, Dictionary) else load_dictionary(d) for d in dictionaries]
    done: list[Dictionary] = []
    try:
        names = []
        for dictionary in loaded:
            names.append(attach(model, dictionary))
            done.append(dictionary)
        yield names
    finally:
        for dictionary in reversed(done):
            detach(model, dictionary)
