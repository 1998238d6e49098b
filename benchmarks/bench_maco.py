"""MaCo fidelity (issue 15): phosphene's ``param="maco"`` against horama's ``maco``, same channels.

Both render the same channels of EfficientNet-Lite0 (``--layer``, ``--channels``) for the same
number of steps at the same canvas size, interleaved channel by channel in one process. horama runs
with its own method settings (NAdam lr 1.0, 6 crops of 20-25 % of the canvas per step, noise 0.05,
standardized phase, its value range): its default ``values_range=(-2.5, 2.5)`` is in the space of
an ImageNet-normalized input, i.e. pixels from about -0.1 to 1.05, and that is what it gets here
(phosphene's model takes pixels in [0, 1] and normalizes them itself). horama downloads its
magnitude template at run time; here it is given phosphene's shipped spectrum (the file it would
download has the same role: a mean decorrelated ImageNet amplitude spectrum), so the spectra are
equal and the comparison is of the method. phosphene renders with its defaults for ``maco``.

Measured on each final image, clipped to [0, 1] (as saved): the channel's mean activation on the
whole image, per-channel std of the pixels, mean HSV saturation, and the slope of the radially
averaged power spectrum in log-log (natural images: about -2).

    PYTHONPATH=$PWD /tmp/fid-venv/bin/python benchmarks/bench_maco.py --json /tmp/maco.json \\
        --picture docs/images/maco-vs-horama.png
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402
from phosphene.io.images import image_grid  # noqa: E402
from phosphene.layers.tap import LayerTap  # noqa: E402
from phosphene.param import MacoImage, natural_spectrum, spectrum_std  # noqa: E402


def image_stats(image: torch.Tensor) -> dict[str, float]:
    """std per colour channel (mean of the 3), mean HSV saturation, power-spectrum slope of (3, H, W)."""
    x = image.clamp(0, 1).double()
    mx, mn = x.max(0).values, x.min(0).values
    saturation = ((mx - mn) / mx.clamp_min(1e-6)).mean()
    gray = x.mean(0)
    power = torch.fft.fftshift(torch.fft.fft2(gray - gray.mean())).abs() ** 2
    h, w = gray.shape
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = (yy**2 + xx**2).sqrt().round().long()
    radial = torch.bincount(radius.flatten(), power.flatten()) / torch.bincount(radius.flatten())
    freqs = torch.arange(2, min(h, w) // 2)
    slope = np.polyfit(np.log(freqs.numpy()), np.log(radial[freqs].numpy() + 1e-12), 1)[0]
    return {"std": float(x.flatten(1).std(1).mean()), "saturation": float(saturation),
            "slope": float(slope)}


def channel_value(model, layer: str, channel: int, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        return tap(images.clamp(0, 1))[layer][:, channel].float().mean((-2, -1))


def roi_align_by_grid(image: torch.Tensor, boxes: torch.Tensor, output_size) -> torch.Tensor:
    """torchvision's ``roi_align(image, boxes, output_size)`` (aligned=False) for boxes whose bins are
    under a pixel (sampling ratio 1): a bilinear sample at each bin centre, by ``grid_sample``.

    horama crops with torchvision's C++ roi_align; in the benchmark venv torchvision's compiled ops
    do not load (a CUDA build next to the CPU torch), and its pure-Python fallback needs > 11 GB here.
    """
    oh, ow = output_size
    _, _, h, w = image.shape
    x1, y1, x2, y2 = boxes[:, 1:].unbind(1)
    fx = (torch.arange(ow, dtype=image.dtype) + 0.5) / ow
    fy = (torch.arange(oh, dtype=image.dtype) + 0.5) / oh
    xs = x1[:, None] + fx[None] * (x2 - x1)[:, None]
    ys = y1[:, None] + fy[None] * (y2 - y1)[:, None]
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :] * 2 / (w - 1) - 1,
                                               ys[:, :, None] * 2 / (h - 1) - 1), -1)
    return torch.nn.functional.grid_sample(image.expand(boxes.shape[0], -1, -1, -1), grid,
                                           mode="bilinear", padding_mode="zeros", align_corners=True)


def run_horama(model, layer: str, channel: int, args) -> tuple[torch.Tensor, float]:
    import horama.common
    from horama import maco

    horama.common.roi_align = roi_align_by_grid

    with LayerTap(model, [layer]) as tap:
        def objective(images: torch.Tensor) -> torch.Tensor:
            return tap(images)[layer][:, channel].mean()

        torch.manual_seed(args.seed + channel)
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            image, _alpha = maco(objective, total_steps=args.steps, image_size=args.size,
                                 model_input_size=args.size, values_range=(-0.1, 1.05), device="cpu")
    return image.detach()[None], time.perf_counter() - started


def run_phosphene(model, layer: str, channel: int, args) -> tuple[torch.Tensor, float]:
    result = phosphene.render(model, objectives.channel(layer, channel), param="maco", steps=args.steps,
                              size=args.size, seed=args.seed + channel, progress=False)
    return result.images, result.seconds


def run_phosphene_unit_std(model, layer: str, channel: int, args) -> tuple[torch.Tensor, float]:
    """phosphene's MaCo before issue 15: the standardized image at std 1 instead of the spectrum's."""
    size = args.size
    param = MacoImage(1, size, generator=torch.Generator().manual_seed(args.seed + channel),
                      contrast=1 / spectrum_std(natural_spectrum(size)))
    result = phosphene.render(model, objectives.channel(layer, channel), param=param, steps=args.steps,
                              size=size, seed=args.seed + channel, progress=False)
    return result.images, result.seconds


TOOLS = {"phosphene": run_phosphene, "phosphene_std1": run_phosphene_unit_std, "horama": run_horama}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", default="0,1,2,3")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--picture", default=None)
    args = ap.parse_args(argv)
    for key in ("json", "picture"):  # the run changes directory below
        if getattr(args, key):
            setattr(args, key, str(Path(getattr(args, key)).resolve()))
    torch.set_num_threads(args.threads)
    model = phosphene.load_model("efficientnet_lite0")
    channels = [int(c) for c in args.channels.split(",")]
    workdir = tempfile.mkdtemp(prefix="maco-bench-")
    np.save(Path(workdir) / "spectrum_decorrelated.npy", natural_spectrum(args.size).numpy())
    os.chdir(workdir)  # horama reads its template from the working directory
    rows, tiles, captions = [], [], []
    for channel in channels:
        for name, run in TOOLS.items():
            image, seconds = run(model, args.layer, channel, args)
            value = float(channel_value(model, args.layer, channel, image)[0])
            rows.append({"tool": name, "channel": channel, "objective": value, "seconds": round(seconds, 1),
                         **image_stats(image[0])})
            tiles.append(image[0].clamp(0, 1))
            captions.append(f"{name} {channel}: {value:.1f}")
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for name in TOOLS:
        mine = [r for r in rows if r["tool"] == name]
        summary[name] = {k: round(float(np.mean([r[k] for r in mine])), 4)
                         for k in ("objective", "std", "saturation", "slope", "seconds")}
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "settings": vars(args),
           "summary": summary, "rows": rows, "torch": torch.__version__}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.picture:
        image_grid(torch.stack(tiles), captions, columns=len(TOOLS)).save(args.picture)
    return out


if __name__ == "__main__":
    main()
