"""Every phosphene module the report uses, imported in one place (a later move of a module is one
edit here)."""

from __future__ import annotations

from .. import mining
from .. import objectives as obj
from ..accentuation.accentuate import AccentuationResult, accentuate
from ..accentuation.masks import transparency_mask
from ..attribution import Target, keep_preactivation, uses_preactivation
from ..dictionary import (
    Dictionary,
    attach,
    attached_dictionaries,
    detach,
    load_dictionary,
    unit_atoms_from_activations,
)
from ..errors import LayerNotFoundError, PhospheneError, UnitOutOfRangeError
from ..inhibition.atlas import build_atlas
from ..inhibition.tension import correlations, tension_score
from ..inhibition.tension_plots import overlay, scale_legend, smooth_maps
from ..io.display import Rich, Section, Tile, View
from ..io.images import atomic_write_bytes, to_uint8
from ..io.progress import progress_bar, stage_line
from ..layers.model_state import frozen
from ..layers.names import layer_names, resolve_layer
from ..layers.tap import LayerTap
from ..mining.dataset import Preprocessing, decode_image
from ..mining.source import load_source
from ..models.wrapper import as_image_model
from ..render import render

__all__ = [
    "AccentuationResult", "Dictionary", "LayerNotFoundError", "LayerTap", "PhospheneError",
    "Preprocessing", "Rich", "Section", "Target", "Tile", "UnitOutOfRangeError", "View", "accentuate",
    "as_image_model", "atomic_write_bytes", "attach", "attached_dictionaries", "build_atlas",
    "correlations", "decode_image", "detach", "frozen", "keep_preactivation", "layer_names",
    "load_dictionary", "load_source", "mining", "obj", "overlay", "progress_bar", "render",
    "resolve_layer", "scale_legend", "smooth_maps", "stage_line", "tension_score", "to_uint8",
    "transparency_mask", "unit_atoms_from_activations", "uses_preactivation",
]
