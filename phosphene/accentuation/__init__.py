"""Feature accentuation: image-seeded visualization, its masks, and the circuit check."""

from ..transforms import gaussian_blur
from .accentuate import AccentuationResult, accentuate
from .circuits import CircuitOverlap, circuit_overlap
from .config import AccentuationConfig
from .crops import LatentDistance, SharedCrops, channel_distance, measure
from .masks import attribution_mask, transparency_mask
from .reg_layer import default_reg_layer

__all__ = [
    "AccentuationConfig", "AccentuationResult", "CircuitOverlap", "LatentDistance", "SharedCrops",
    "accentuate", "attribution_mask", "channel_distance", "circuit_overlap", "default_reg_layer",
    "gaussian_blur", "measure", "transparency_mask",
]
