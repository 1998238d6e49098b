"""phosphene: what the features of a vision model respond to, where, and what suppresses them."""

import sys

from . import _compat, objectives, param, transforms, units
from .accentuation import AccentuationResult, accentuate
from .errors import LayerNotFoundError, ModelLoadError, PhospheneError, UnitOutOfRangeError
from .hooks import LayerTap, layer_names, layer_shapes, resolve_layer
from .images import image_grid, load_image, save_image
from .layouts import Layout
from .models import ImageModel, imagenet_class_names, list_models, load_model
from .probe import layer_table, set_layouts
from .render import RenderConfig, Renderer, RenderResult, render
from .units import Unit, parse_unit, unit

__version__ = "0.1.0"

_compat.install()
# ``phosphene.accentuate`` is the function; the old module path still imports the module
sys.modules.setdefault("phosphene.accentuate", sys.modules["phosphene.accentuation.accentuate"])

__all__ = [
    "AccentuationResult", "accentuate",
    "ImageModel", "LayerNotFoundError", "LayerTap", "Layout", "ModelLoadError", "PhospheneError",
    "RenderConfig", "RenderResult", "Renderer", "Unit", "UnitOutOfRangeError", "image_grid",
    "imagenet_class_names", "layer_names", "layer_shapes", "layer_table", "list_models", "load_image",
    "load_model", "objectives", "param", "parse_unit", "render", "resolve_layer", "save_image",
    "set_layouts", "transforms", "unit", "units",
]
