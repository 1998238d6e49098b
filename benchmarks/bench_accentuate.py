"""Accentuation benchmark (issue 3): phosphene vs faccent's ``render_vis`` accentuation, one run.

Run it with the peers' interpreter, which has faccent; phosphene is imported from this checkout::

    /work/peers-venv/bin/python benchmarks/bench_accentuate.py --json /tmp/bench_accentuate.json

Both sides run in one process with one torch, on EfficientNet-Lite0, from the same seed image
(224 px), for the same objective (a class logit), with the same regularization layer and lambda,
and faccent's defaults: 16 crops of side 5-99 % per step, Gaussian + uniform noise 0.02, Adam lr
0.05, 100 steps, the seeded magnitude-gated phase parameterization.

  faccent    ``render_vis(model, channel("net__fc", k, batch=0), fourier_phase(init_img=seed),
             accent_reg_layer=..., accent_reg_alpha=lam)`` (its transparency from a second backward
             pass each step; beta from gradients w.r.t. its parameters).
  phosphene  ``accentuate(model, class_logit(k), seed, reg_layer, lam)`` (defaults: transparency from
             |df/dx| every 4 steps; beta from gradients w.r.t. the image). Its wall time includes its
             own measurement of f and R on the result.

faccent sees phosphene's `ImageModel` (it takes [0,1] images and normalizes them itself), with
``model_input_range=(0, 1)`` so that faccent's range normalization is the identity. Both results are
measured by the same code, `phosphene.accentuation.measure`: f is the class logit of the whole image,
R the channel-L2 latent distance to the seed at the regularization layer over one fixed draw of 16
noise-free crops. The machine may be shared with other processes: wall and process CPU time are
both reported, and the ratio is of times taken in the same run. faccent runs ``steps + 1``
iterations (its loop returns the image before the last iteration's update), so both get ``steps``
updates. ``--seed S`` changes the random draws of both (phosphene's ``seed=S``; ``torch.manual_seed(S)``
before faccent's run): one run's gain and R move a lot with them, so compare several.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import Timer  # noqa: E402  (benchmarks/timing.py)

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402
from phosphene.accentuation import accentuate, measure  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"




def faccent_name(layer: str) -> str:
    """faccent names a layer by joining module names with '_' (ImageModel adds 'net')."""
    return "_".join(["net"] + layer.split("."))


def run_faccent(model, seed: torch.Tensor, cls: int, reg_layer: str, lam: float, steps: int,
                crops: int) -> tuple[Timer, torch.Tensor]:
    """faccent's accentuation with its defaults; returns (timer, (1, 3, H, W) accentuation)."""
    from faccent import objectives as fobj
    from faccent import param as fparam
    from faccent import render as frender

    size = seed.shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Timer() as timer:
            parameterizer = fparam.fourier_phase(init_img=seed, img_size=(size, size), device="cpu")
            imgs, _, _, _ = frender.render_vis(
                model, fobj.channel("net__fc", cls, batch=0), parameterizer=parameterizer,
                # faccent keeps the image before its last iteration's update: steps + 1 iterations
                # give it as many updates as phosphene's steps
                out_thresholds=range(steps + 1), inline_thresholds=[], nb_transforms=crops,
                progress=False, model_input_size=(size, size), model_input_range=(0, 1),
                accent_reg_layer=faccent_name(reg_layer), accent_reg_alpha=lam)
    return timer, imgs[-1][:1].float()


def run_phosphene(model, seed, cls, reg_layer, lam, steps, crops, rng: int = 0) -> tuple[Timer, torch.Tensor]:
    with Timer() as timer:
        result = accentuate(model, objectives.class_logit(cls), seed, reg_layer, lam=lam, steps=steps,
                            crops=crops, progress=False, seed=rng)
    return timer, result.images


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=str(SAMPLES / "n01440764_tench.JPEG"))
    ap.add_argument("--cls", type=int, default=1, help="class to accentuate (1: goldfish)")
    ap.add_argument("--reg-layer", default="_blocks.8")
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-faccent", action="store_true")
    ap.add_argument("--skip-phosphene", action="store_true")
    ap.add_argument("--seed", type=int, default=0,
                    help="random draws: phosphene's seed=, torch.manual_seed before faccent (the spread)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = phosphene.load_model("efficientnet_lite0")
    seed = phosphene.load_image(args.image, args.size)[None]
    objective = objectives.class_logit(args.cls)
    f_seed, _ = measure(model, objective, args.reg_layer, seed, seed, 0)
    order = ([] if args.skip_phosphene else ["phosphene"]) + ([] if args.skip_faccent else ["faccent"])
    for name in order:  # untimed warm-up: the first passes of each batch shape are slow on CPU
        (run_phosphene if name == "phosphene" else run_faccent)(
            model, seed, args.cls, args.reg_layer, args.lam, 2, args.crops)
    runs = {}
    for name in order:
        torch.manual_seed(args.seed)
        if name == "phosphene":
            timer, image = run_phosphene(model, seed, args.cls, args.reg_layer, args.lam, args.steps,
                                         args.crops, args.seed)
        else:
            timer, image = run_faccent(model, seed, args.cls, args.reg_layer, args.lam, args.steps,
                                       args.crops)
        f, r = measure(model, objective, args.reg_layer, image, seed, 16)
        runs[name] = {"wall_s": round(timer.wall, 2), "cpu_s": round(timer.cpu, 2),
                      "f": round(float(f[0]), 3), "gain": round(float(f[0] - f_seed[0]), 3),
                      "R": round(float(r[0]), 3)}
        print(f"{name:10s} wall {timer.wall:7.1f}s cpu {timer.cpu:7.1f}s  f {float(f_seed[0]):.2f} -> "
              f"{float(f[0]):.2f}  R {float(r[0]):.3f}", flush=True)
    out = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "settings": vars(args), "f_seed": round(float(f_seed[0]), 3), "runs": runs,
        "torch": torch.__version__, "python": platform.python_version(),
    }
    if len(runs) == 2:
        out["wall_ratio"] = round(runs["faccent"]["wall_s"] / runs["phosphene"]["wall_s"], 2)
        out["cpu_ratio"] = round(runs["faccent"]["cpu_s"] / runs["phosphene"]["cpu_s"], 2)
        print(f"faccent / phosphene: wall x{out['wall_ratio']}, cpu x{out['cpu_ratio']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
