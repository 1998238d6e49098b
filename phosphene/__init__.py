"""phosphene: what the features of a vision model respond to, where, and what suppresses them."""

from . import objectives, param, regularizers, transforms, units
from .accentuation import AccentuationConfig, AccentuationResult, accentuate
from .errors import LayerNotFoundError, ModelLoadError, PhospheneError, UnitOutOfRangeError
from .io.images import image_grid, load_image, save_image
from .layers.layouts import Layout
from .layers.names import layer_names, resolve_layer
from .layers.recording import layer_shapes, layer_table, set_layouts
from .layers.tap import LayerTap
from .models import ImageModel, imagenet_class_names, list_models, load_model
from .presets import preset
from .render import RenderConfig, Renderer, RenderResult, render
from .units import Unit, parse_unit, unit
from .version import __version__ as __version__

__all__ = [
    "AccentuationConfig", "AccentuationResult", "accentuate",
    "ImageModel", "LayerNotFoundError", "LayerTap", "Layout", "ModelLoadError", "PhospheneError",
    "RenderConfig", "RenderResult", "Renderer", "Unit", "UnitOutOfRangeError", "image_grid",
    "imagenet_class_names", "layer_names", "layer_shapes", "layer_table", "list_models", "load_image",
    "load_model", "objectives", "param", "parse_unit", "preset", "render", "resolve_layer", "save_image",
    "set_layouts", "transforms", "unit", "units",
    "regularizers",
]
