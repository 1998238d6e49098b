"""Image parameterizations: ``param()`` returns (N, 3, H, W) images in [0, 1] from its tensors.

`core` holds the ones that start from noise (pixel, Fourier, MaCo), `seeded` those that start from
given images (feature accentuation's seeds), `combine` masks and concatenations of others, `alpha`
the transparent (RGBA) image and its penalty, and `registry` the name -> factory registries
(`PARAMETERIZATIONS`, `SEEDED_PARAMETERIZATIONS`).
"""

from .alpha import AlphaImage
from .blur import blur_param_, blurrable, gaussian_transfer
from .combine import ConcatImages, ConfinedImage
from .core import (
    COLOR_CORRELATION,
    COLOUR_GAIN,
    PARAMETERIZATIONS,
    FourierImage,
    MacoImage,
    PixelImage,
    _logit,
    colour_matrix,
    decorrelate,
    make_param,
    natural_spectrum,
    recorrelate,
    rfft2_freqs,
    spectrum_std,
)
from .seeded import SEEDED_PARAMETERIZATIONS, SeededPhaseImage, seed_logits, seeded_param

__all__ = [
    "AlphaImage", "COLOR_CORRELATION", "COLOUR_GAIN", "PARAMETERIZATIONS", "SEEDED_PARAMETERIZATIONS",
    "ConcatImages", "ConfinedImage", "FourierImage", "MacoImage", "PixelImage", "SeededPhaseImage",
    "_logit", "blur_param_", "blurrable", "colour_matrix", "decorrelate",
    "gaussian_transfer", "make_param", "natural_spectrum", "recorrelate", "rfft2_freqs", "seed_logits",
    "seeded_param", "spectrum_std",
]
