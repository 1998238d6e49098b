"""Feature accentuation: image-seeded visualization, its masks, and the circuit check."""

from ..transforms import gaussian_blur
from .accentuate import AccentuationResult, accentuate
from .circuits import CircuitOverlap, circuit_overlap
from .config import AccentuationConfig
from .crops import LatentDistance, SharedCrops, channel_distance, measure
from .figure_columns import add_figure_columns
from .masks import attribution_heatmap, attribution_mask, heat_picture, transparency_mask
from .reg_layer import default_reg_layer

__all__ = [
    "AccentuationConfig", "AccentuationResult", "CircuitOverlap", "LatentDistance", "SharedCrops",
    "accentuate", "add_figure_columns", "attribution_heatmap", "attribution_mask", "channel_distance",
    "circuit_overlap", "default_reg_layer", "gaussian_blur", "heat_picture", "measure", "transparency_mask",
]
