"""Feature accentuation: image-seeded visualization, its masks, and the circuit check."""

from .accentuate import AccentuationResult, accentuate
from .circuits import CircuitOverlap, circuit_overlap
from .crops import LatentDistance, SharedCrops, channel_distance, measure
from .masks import attribution_mask, gaussian_blur, transparency_mask

__all__ = [
    "AccentuationResult", "CircuitOverlap", "LatentDistance", "SharedCrops", "accentuate", "attribution_mask",
    "channel_distance", "circuit_overlap", "gaussian_blur", "measure", "transparency_mask",
]
