"""lucid's InceptionV1 (GoogLeNet as in TensorFlow's ``inception5h``) in plain PyTorch.

Module names are those of lucent's ``lucent.modelzoo.inceptionv1`` (ProGamerGov's conversion,
MIT licence), so lucent's state dict ``inception5h.pth`` loads strictly and the layers feature
visualization papers name — ``mixed3a`` … ``mixed5b`` (concatenations), ``mixed4a_3x3_pre_relu_conv``,
``conv2d2``, ``softmax2_pre_activation_matmul`` — are addressed by the same names. Two changes from
lucent: ReLUs are plain ReLUs (lucent's redirected-ReLU gradient hack is not applied), and the
final average pool is adaptive, so the head runs at any input size (lucent's fixed 7x7 pool fails
below 224 px). ``forward`` returns the 1008 logits (``softmax2`` still computes lucent's softmax).

Input: lucid's range ``x * 255 - 117`` for RGB images x in [0, 1] (the `ImageModel` wrapper does it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# lucent's download location (torch.hub's cache keeps it as $TORCH_HOME/hub/checkpoints/inception5h.pth).
WEIGHTS_URL = "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"
NUM_CLASSES = 1008
INPUT_SIZE = 224
LUCID_OFFSET = 117.0  # lucid feeds x * 255 - 117

# name: (in, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce); a max pool precedes 4a and 5a.
MIXED: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "mixed3a": (192, 64, 96, 128, 16, 32, 32),
    "mixed3b": (256, 128, 128, 192, 32, 96, 64),
    "mixed4a": (480, 192, 96, 204, 16, 48, 64),
    "mixed4b": (508, 160, 112, 224, 24, 64, 64),
    "mixed4c": (512, 128, 128, 256, 24, 64, 64),
    "mixed4d": (512, 112, 144, 288, 32, 64, 64),
    "mixed4e": (528, 256, 160, 320, 32, 128, 128),
    "mixed5a": (832, 256, 160, 320, 48, 128, 128),
    "mixed5b": (832, 384, 192, 384, 48, 128, 128),
}
POOL_BEFORE = {"mixed4a": "maxpool4", "mixed5a": "maxpool10"}


class MaxPool2dLayer(nn.Module):
    """3x3 max pool after TF "same" padding with -inf (stride 2 pads right/bottom, stride 1 all sides)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (0, 1, 0, 1) if self.stride == 2 else (1, 1, 1, 1)
        return F.max_pool2d(F.pad(x, pad, value=float("-inf")), 3, stride=self.stride)


class CatLayer(nn.Module):
    """Concatenation of the branches along channels (lucent's ``CatLayer``: the ``mixed*`` layers)."""

    def forward(self, tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat(tensors, 1)


class SoftMaxLayer(nn.Module):
    """Softmax over classes (lucent's ``softmax2``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=1)


def _conv(model: nn.Module, name: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
    setattr(model, f"{name}_pre_relu_conv", nn.Conv2d(c_in, c_out, kernel, stride=stride))
    setattr(model, name, nn.ReLU())


class InceptionV1(nn.Module):
    """lucid's InceptionV1 with lucent's module names; (N, 3, H, W) in lucid's range -> (N, 1008)."""

    reg_layer = "mixed4c"  # the middle of mixed3a..mixed5b: accentuation's default regularization layer

    def __init__(self):
        super().__init__()
        _conv(self, "conv2d0", 3, 64, 7, stride=2)
        self.maxpool0 = MaxPool2dLayer(2)
        _conv(self, "conv2d1", 64, 64, 1)
        _conv(self, "conv2d2", 64, 192, 3)
        self.maxpool1 = MaxPool2dLayer(2)
        for name, (c_in, c1, c3b, c3, c5b, c5, cp) in MIXED.items():
            if name in POOL_BEFORE:
                setattr(self, POOL_BEFORE[name], MaxPool2dLayer(2))
            setattr(self, f"{name}_pool", MaxPool2dLayer(1))
            _conv(self, f"{name}_1x1", c_in, c1, 1)
            _conv(self, f"{name}_3x3_bottleneck", c_in, c3b, 1)
            _conv(self, f"{name}_5x5_bottleneck", c_in, c5b, 1)
            _conv(self, f"{name}_pool_reduce", c_in, cp, 1)
            _conv(self, f"{name}_3x3", c3b, c3, 3)
            _conv(self, f"{name}_5x5", c5b, c5, 5)
            setattr(self, name, CatLayer())
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.softmax2_pre_activation_matmul = nn.Linear(1024, NUM_CLASSES)
        self.softmax2 = SoftMaxLayer()

    def _conv_relu(self, name: str, x: torch.Tensor, pad: int = 0) -> torch.Tensor:
        if pad:
            x = F.pad(x, (pad, pad, pad, pad))
        return getattr(self, name)(getattr(self, f"{name}_pre_relu_conv")(x))

    def _mixed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        branch1 = self._conv_relu(f"{name}_1x1", x)
        branch3 = self._conv_relu(f"{name}_3x3", self._conv_relu(f"{name}_3x3_bottleneck", x), pad=1)
        branch5 = self._conv_relu(f"{name}_5x5", self._conv_relu(f"{name}_5x5_bottleneck", x), pad=2)
        pooled = self._conv_relu(f"{name}_pool_reduce", getattr(self, f"{name}_pool")(x))
        return getattr(self, name)((branch1, branch3, branch5, pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool0(self._conv_relu("conv2d0", F.pad(x, (2, 3, 2, 3))))
        x = F.local_response_norm(x, size=9, alpha=9.99999974738e-05, beta=0.5, k=1)
        x = self._conv_relu("conv2d2", self._conv_relu("conv2d1", x), pad=1)
        x = self.maxpool1(F.local_response_norm(x, size=9, alpha=9.99999974738e-05, beta=0.5, k=1))
        for name in MIXED:
            if name in POOL_BEFORE:
                x = getattr(self, POOL_BEFORE[name])(x)
            x = self._mixed(name, x)
        logits = self.softmax2_pre_activation_matmul(self.avgpool0(x).flatten(1))
        self.softmax2(logits)  # lucent's output layer, kept addressable; phosphene reads logits
        return logits
