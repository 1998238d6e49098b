"""Feature accentuation: image-seeded visualization, its masks, and the circuit check."""

from .accentuate import AccentuationResult, SharedCrops, accentuate, channel_distance, measure
from .circuits import CircuitOverlap, circuit_overlap
from .masks import attribution_mask, gaussian_blur, transparency_mask

__all__ = [
    "AccentuationResult", "CircuitOverlap", "SharedCrops", "accentuate", "attribution_mask",
    "channel_distance", "circuit_overlap", "gaussian_blur", "measure", "transparency_mask",
]
