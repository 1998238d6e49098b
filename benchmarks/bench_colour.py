"""Colour benchmark (issue 26): are phosphene's renders as vivid as lucent's on the same units?

Renders the same channels of one EfficientNet-Lite0 layer (default: 8 channels of ``_blocks.8``) with
phosphene (this interpreter; ``--baseline`` also with ``colour_gain=1``, lucid's colour matrix, i.e.
phosphene before issue 26) and with lucent (``/work/peers-venv``, as a subprocess), both batched,
at equal steps and size, and prints side by side per tool:

  colorfulness   Hasler & Suesstrunk (2003): sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2)
                 on 0..255 RGB, rg = R - G, yb = (R + G)/2 - B; per image, then the mean.
  saturation     mean HSV saturation (max - min) / max over pixels and images.
  contrast       mean per-image std of the luminance (0..255).
  objective      mean activation of each image's channel on the clean final image (phosphene's code
                 for both tools), then the mean over images.

lucent runs ``render_vis`` with ``param.image(size, batch=N)`` (fft=True, decorrelate=True), its
default ``standard_transforms``, Adam 0.05 and the network wrapped so that it applies Lite0's input
normalization ``(x*255-127)/128`` (``preprocess=False``). phosphene runs ``phosphene.render`` with
its defaults (what a user gets) unless ``--param`` / ``--transforms`` / ``--lr`` say otherwise.
``--out DIR`` saves both grids (``phosphene.png``, ``lucent.png``) and the numbers
(``colour.json``). Run from the repository root::

    python benchmarks/bench_colour.py --steps 128 --size 128 --out /tmp/colour
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS_PYTHON = os.environ.get("PEERS_PYTHON", "/work/peers-venv/bin/python")
LR = 0.05


def parse_channels(text: str) -> list[int]:
    """"0-7" or "3,5,9" -> channel indices."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler-Suesstrunk colorfulness per image of (N, 3, H, W) images in [0, 1] (0..255 scale)."""
    rgb = images.double() * 255
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    sd = (rg.flatten(1).std(1) ** 2 + yb.flatten(1).std(1) ** 2).sqrt()
    mu = (rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2).sqrt()
    return sd + 0.3 * mu


def saturation(images: torch.Tensor) -> torch.Tensor:
    """Mean HSV saturation per image of (N, 3, H, W) images in [0, 1]."""
    hi, lo = images.amax(1), images.amin(1)
    return ((hi - lo) / hi.clamp_min(1e-8)).flatten(1).mean(1)


def contrast(images: torch.Tensor) -> torch.Tensor:
    """Std of the luminance (Rec. 601, 0..255) per image."""
    luma = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]) * 255
    return luma.flatten(1).std(1)


def load_lite0():
    import phosphene
    model = phosphene.load_model("efficientnet_lite0", device="cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lucent_worker(args: argparse.Namespace) -> None:
    """Runs in the peers' interpreter: lucent's batched render_vis; saves the images as .npy."""
    import functools
    import operator

    from lucent.optvis import objectives as lobj
    from lucent.optvis import param as lparam
    from lucent.optvis import render as lrender
    from torch import nn

    from phosphene.models import layer_root

    class LucentNet(nn.Module):
        """Lite0 taking [0, 1] images: forward applies (x*255-127)/128."""

        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x * 255 - 127) / 128)

    torch.set_num_threads(args.threads)
    channels = parse_channels(args.channels)
    model = LucentNet(layer_root(load_lite0())).eval()
    lname = "net_" + args.layer.replace(".", "_")  # lucent joins module names with "_"
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    obj = functools.reduce(operator.add, [lobj.channel(lname, c, batch=i) for i, c in enumerate(channels)])
    started = time.perf_counter()
    out = lrender.render_vis(model, obj, lambda: lparam.image(args.size, batch=len(channels)),
                             optimizer=lambda params: torch.optim.Adam(params, lr=LR),
                             thresholds=(args.steps,), preprocess=False, progress=False,
                             show_image=False)
    np.save(args.lucent_worker, out[-1])
    print(f"lucent: {time.perf_counter() - started:.1f} s", file=sys.stderr)


def run_lucent(args: argparse.Namespace) -> torch.Tensor:
    """lucent's images (N, 3, H, W) from the worker subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "lucent.npy"
        cmd = [PEERS_PYTHON, __file__, "--lucent-worker", str(target), "--steps", str(args.steps),
               "--size", str(args.size), "--layer", args.layer, "--channels", args.channels,
               "--seed", str(args.seed), "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, check=True, env=env)
        return torch.from_numpy(np.load(target)).permute(0, 3, 1, 2).float()


def run_phosphene(args: argparse.Namespace, model, colour_gain: float | None = None) -> torch.Tensor:
    import phosphene
    from phosphene import objectives

    options = {} if colour_gain is None else {"param_options": {"colour_gain": colour_gain}}
    if args.param is not None:
        options["param"] = args.param
    if args.transforms is not None:
        options["transforms"] = args.transforms
    if args.lr is not None:
        options["lr"] = args.lr
    started = time.perf_counter()
    result = phosphene.render(model, objectives.channel(args.layer, parse_channels(args.channels)),
                              steps=args.steps, size=args.size, seed=args.seed, progress=False, **options)
    print(f"phosphene: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return result.images


def objective_values(model, images: torch.Tensor, layer: str, channels: list[int]) -> torch.Tensor:
    """Mean activation of channel ``channels[i]`` on clean image i (phosphene's code for both)."""
    from phosphene import objectives
    from phosphene.layers.tap import LayerTap
    from phosphene.objectives import Acts, evaluate

    obj = objectives.channel(layer, channels)
    with torch.no_grad(), LayerTap(model, obj.layers) as tap:
        return evaluate(obj, Acts(tap(images.float()))).float()


def measure(model, images: torch.Tensor, layer: str, channels: list[int]) -> dict[str, float]:
    objective = objective_values(model, images, layer, channels)
    return {"colorfulness": float(colorfulness(images).mean()),
            "saturation": float(saturation(images).mean()),
            "contrast": float(contrast(images).mean()), "objective": float(objective.mean()),
            "objective_per_image": [round(float(v), 3) for v in objective]}


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", default="0-7")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--param", default=None, help="phosphene parameterization (default: its default)")
    ap.add_argument("--transforms", default=None, help="phosphene transform set (default: its default)")
    ap.add_argument("--lr", type=float, default=None, help="phosphene learning rate (default: its default)")
    ap.add_argument("--colour-gain", type=float, default=None,
                    help="phosphene's colour_gain (default: its default)")
    ap.add_argument("--skip-lucent", action="store_true")
    ap.add_argument("--baseline", action="store_true",
                    help="also render with colour_gain=1 (lucid's colour matrix: phosphene before issue 26)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the grids and colour.json")
    ap.add_argument("--lucent-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lucent_worker:
        lucent_worker(args)
        return {}
    torch.set_num_threads(args.threads)
    channels = parse_channels(args.channels)
    model = load_lite0()
    rows = {"load_before": load_avg()}
    images = {"phosphene": run_phosphene(args, model, args.colour_gain)}
    if not args.skip_lucent:
        images["lucent"] = run_lucent(args)
    if args.baseline:
        images["gain1"] = run_phosphene(args, model, colour_gain=1.0)
    rows["load_after"] = load_avg()
    for tool, imgs in images.items():
        rows[tool] = measure(model, imgs, args.layer, channels)
    names = [n for n in ("phosphene", "lucent", "gain1") if n in rows]
    print(f"{args.layer} channels {args.channels}, {args.steps} steps, {args.size} px, seed {args.seed}; "
          f"load {rows['load_before']} -> {rows['load_after']}")
    print(f"{'':14}" + "".join(f"{n:>12}" for n in names) + ("  phos/lucent" if "lucent" in names else ""))
    for key in ("colorfulness", "saturation", "contrast", "objective"):
        values = [rows[n][key] for n in names]
        ratio = f"{values[0] / values[1]:12.3f}" if "lucent" in names and values[1] else ""
        print(f"{key:14}" + "".join(f"{v:12.3f}" for v in values) + ratio)
    if args.out:
        from phosphene.io.images import image_grid, save_image
        args.out.mkdir(parents=True, exist_ok=True)
        for tool, imgs in images.items():
            captions = [f"{c} {v}" for c, v in zip(channels, rows[tool]["objective_per_image"])]
            save_image(image_grid(imgs, captions), args.out / f"{tool}.png")
        (args.out / "colour.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                          **rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
