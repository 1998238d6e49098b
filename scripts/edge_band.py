"""Where does the red band along the bottom edge of tension maps come from? (docs/inhibition-edges.md)

Measures the φ⁺ / φ⁻ maps of a target through an attribution layer on sample images, per edge
(top/bottom row, left/right column of the layer's grid, relative to the interior mean), under:

- ``original``: the images as they are;
- ``flipped``: each image flipped upside down (a band that follows the picture's bottom would move to
  the top of the map; one that stays is positional);
- ``pad-top-left``: the model's stride-2 convolutions pad the extra pixel at the top/left instead of
  TF's bottom/right;
- ``pad-symmetric``: stride-2 convolutions pad k//2 on every side (PyTorch's convention, same sizes).

It also compares the layer-resolution map with the upsampled, blurred map that the figures draw.

    python scripts/edge_band.py ../shared/data/imagenet-samples --n 200 --target _blocks.8._relu1:3 \
        --layer _blocks.7
"""

from __future__ import annotations

import argparse
import contextlib
import math

import torch
import torch.nn.functional as F

import phosphene
from phosphene.attribution import attribute, parse_target
from phosphene.inhibition.tension_plots import smooth_maps, threshold_map
from phosphene.models.efficientnet_lite import Conv2dSame


@contextlib.contextmanager
def stride2_padding(mode: str):
    """Patch `Conv2dSame` so stride-2 convolutions pad ``top-left`` (extra pixel first) or
    ``symmetric`` (k//2 on each side); ``tf`` leaves TF's bottom/right padding."""
    original = Conv2dSame.forward

    def forward(self, x):
        kernel, stride = self.kernel_size[0], self.stride[0]
        if stride == 1 or mode == "tf":
            return original(self, x)
        if mode == "symmetric":
            return F.conv2d(x, self.weight, None, stride, kernel // 2, 1, self.groups)
        h, w = x.shape[-2:]
        pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
        pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
        x = F.pad(x, (pad_w - pad_w // 2, pad_w // 2, pad_h - pad_h // 2, pad_h // 2))
        return F.conv2d(x, self.weight, None, stride, 0, 1, self.groups)

    Conv2dSame.forward = forward
    try:
        yield
    finally:
        Conv2dSame.forward = original


def edge_ratios(maps: torch.Tensor) -> dict[str, float]:
    """Mean of (N, h, w) maps on each edge line divided by the mean of the interior."""
    mean = maps.mean(0)
    interior = mean[1:-1, 1:-1].mean()
    return {"top": float(mean[0].mean() / interior), "bottom": float(mean[-1].mean() / interior),
            "left": float(mean[:, 0].mean() / interior), "right": float(mean[:, -1].mean() / interior)}


def measure(model, images, target, layer) -> dict[str, dict[str, float]]:
    result = attribute(model, images, target, [layer], batch_size=25, maps=True).layers[layer]
    plus, minus = result.phi_plus, result.phi_minus
    size = images.shape[-1]
    up_plus, up_minus = smooth_maps(plus, minus, size)
    band = max(1, size // plus.shape[-1])  # one cell of the layer, in pixels
    red = ((up_plus - up_minus).clamp(min=0) * torch.maximum(up_plus, up_minus))
    return {
        "phi+ raw": edge_ratios(plus.clamp(min=0)),
        "phi- raw": edge_ratios(minus.clamp(min=0)),
        "phi+ thresholded": edge_ratios(threshold_map(plus)),
        "red in figure": edge_ratios(F.avg_pool2d(red[:, None], band)[:, 0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--target", default="_blocks.8._relu1:3")
    parser.add_argument("--layer", default="_blocks.7")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    paths = phosphene.io.images.list_images(args.images)[: args.n]
    images = torch.stack([phosphene.load_image(p, args.size) for p in paths])
    target = parse_target(args.target)
    conditions = {"original": ("tf", images), "flipped": ("tf", images.flip(-2)),
                  "pad-top-left": ("top-left", images), "pad-symmetric": ("symmetric", images)}
    print(f"{args.target} through {args.layer}, {len(paths)} images at {args.size} px; "
          "edge mean / interior mean of the map (1 = no band)")
    for name, (mode, batch) in conditions.items():
        with stride2_padding(mode):
            rows = measure(model, batch, target, args.layer)
        for kind, ratios in rows.items():
            print(f"  {name:<14} {kind:<17} " + "  ".join(f"{k} {v:5.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
