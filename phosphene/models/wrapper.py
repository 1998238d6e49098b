"""`ImageModel`: a network plus the preprocessing that turns [0,1] images into its input."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from PIL import Image
from torch import nn

from ..errors import ModelLoadError, PhospheneError
from .device import model_device
from .input_shape import first_conv_channels, fixed_input_size, to_channels
from .preprocess import ImageSpec
from .transformers_models import is_transformers_model, transformers_facts

OutputKey = str | int | None


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on (N, 3, H, W) images in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageModel(nn.Module):
    """Wraps a network so that every phosphene API can feed it images in [0, 1].

    Layers are named as in ``net.named_modules()`` (the wrapper adds no prefix), so the names a user
    knows from the original model work unchanged. ``forward`` takes (N, 3, H, W) in [0, 1] and returns
    the network's output (logits for classifiers); for networks that return a dict, a tuple or an
    object with attributes, ``output`` names the key, index or attribute holding the logits.
    ``spec`` (`ImageSpec`) is the model's evaluation preprocessing; `prepare_image` applies it.
    Images have ``channels`` channels: as many as ``mean`` has entries, or as the network's first
    convolution takes when ``mean`` and ``std`` are one value repeated (a grayscale network: 1).

    The model's facts every phosphene call reads: ``device`` (where its weights are), ``input_size``
    (its training side), ``fixed_side`` (the only side it accepts, or None), ``channels``. Every
    entry point takes any module and wraps it once (`as_image_model`).
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        input_size: int = 224,
        class_names: Sequence[str] | None = None,
        name: str = "model",
        resize_size: int | None = None,
        interpolation: str = "bicubic",
        output: OutputKey = None,
    ):
        super().__init__()
        mean, std = _fit_channels(net, tuple(mean), tuple(std))
        self.normalize = Normalize(mean, std)
        self.net = net
        self.spec = ImageSpec(input_size, resize_size, interpolation, tuple(mean), tuple(std))
        self.class_names = list(class_names) if class_names is not None else None
        self.name = name
        self.output = output
        self.fixed_size: int | None = None  # the only side the network takes, when detection misses it

    @property
    def channels(self) -> int:
        """Channels of the images the model takes (3 for RGB, 1 for grayscale)."""
        return len(self.spec.mean)

    @property
    def input_size(self) -> int:
        """The side of the square images the model was trained on (``spec.input_size``)."""
        return self.spec.input_size

    @property
    def device(self) -> torch.device:
        """The device of the model's weights (its first parameter or buffer; CPU without any)."""
        return model_device(self)

    @property
    def fixed_side(self) -> int | None:
        """The only image side the network accepts (vision transformers with a fixed patch grid,
        or ``fixed_size`` when declared), None when any reasonable side works (`fixed_input_size`)."""
        return fixed_input_size(self)

    def side(self, size: int | None = None) -> int:
        """The image side to feed the model: ``size``, else its input size; a fixed-input model's
        own side, where another ``size`` is a `PhospheneError`."""
        fixed = self.fixed_side
        if fixed is not None and size not in (None, fixed):
            raise PhospheneError(f"this model only takes {fixed}-pixel images; --size {size} cannot be used")
        return fixed or size or self.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3 and self.channels == 1:  # RGB images (files, mining) for a grayscale model
            x = to_channels(x, 1)
        return select_output(self.net(self.normalize(x)), self.output)

    def prepare_image(self, image: Image.Image | str | os.PathLike | torch.Tensor) -> torch.Tensor:
        """The model's (3, S, S) input in [0, 1] for a PIL image, an image file or a (3, H, W)
        tensor in [0, 1], preprocessed as the model's own evaluation transform (`ImageSpec.prepare`):
        ``model(model.prepare_image("cat.jpg")[None])`` classifies a photo the way its authors did."""
        return self.spec.prepare(image)

    def extra_repr(self) -> str:
        out = f", output={self.output!r}" if self.output is not None else ""
        return f"name={self.name!r}, input_size={self.input_size}{out}"


def _fit_channels(net: nn.Module, mean: tuple, std: tuple) -> tuple[tuple, tuple]:
    """``mean``/``std`` repeated to the network's input channels when they are one value repeated
    (the identity default on a grayscale network); as given otherwise (per-channel statistics say
    how many channels the images have)."""
    channels = first_conv_channels(net)
    if channels is None or channels == len(mean) or len(set(mean)) != 1 or len(set(std)) != 1:
        return mean, std
    return mean[:1] * channels, std[:1] * channels


def select_output(result: object, key: OutputKey) -> torch.Tensor:
    """``result[key]`` (dict or tuple) or ``result.key`` (model-output objects); ``result`` itself
    when ``key`` is None. A missing key is a `ModelLoadError` naming the keys there are."""
    if key is None:
        return result
    if isinstance(result, Mapping):
        if key in result:
            return result[key]
        raise ModelLoadError(f"model output has no key {key!r} (keys: {', '.join(map(str, result))})")
    if isinstance(key, int) and isinstance(result, (tuple, list)):
        if -len(result) <= key < len(result):
            return result[key]
        raise ModelLoadError(f"model output index {key} out of range ({len(result)} outputs)")
    if isinstance(key, str) and hasattr(result, key):
        return getattr(result, key)
    raise ModelLoadError(f"cannot select output {key!r} from a {type(result).__name__}")


def as_image_model(model: nn.Module) -> ImageModel:
    """``model`` itself when it is an `ImageModel`; a bare module wrapped as `load_model` wraps one
    (identity preprocessing, input size 224 or the one side it takes, its class name; a Hugging Face
    ``transformers`` model with its config's size, channels and class names), with its device, mode
    and gradients left as they are. Entry points call this once and read the facts (``device``,
    ``input_size``, ``fixed_side``, ``channels``) from the result."""
    if isinstance(model, ImageModel):
        return model
    if not isinstance(model, nn.Module):
        raise PhospheneError(f"expected a torch.nn.Module (or a model name for load_model), got "
                             f"{type(model).__name__}")
    if is_transformers_model(model):
        wrapped = ImageModel(model, **transformers_facts(model))
    else:  # a network taking one side only: that is its input size
        wrapped = ImageModel(model, name=type(model).__name__, input_size=fixed_input_size(model) or 224)
    wrapped.normalize.to(model_device(model))
    wrapped.training = wrapped.normalize.training = model.training  # `frozen` restores this mode
    return wrapped


def model_side(model: nn.Module, size: int | None = None) -> int:
    """`ImageModel.side` of ``model`` (wrapped when bare)."""
    return as_image_model(model).side(size)


def layer_root(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules()`` names the layers of ``model``."""
    return model.net if isinstance(model, ImageModel) else model
