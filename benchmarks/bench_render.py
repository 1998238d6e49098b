"""Render benchmark (issue 2): phosphene vs lucent's ``render_vis`` on EfficientNet-Lite0, one run.

Run it with the peers' interpreter, which has lucent; phosphene is imported from this checkout::

    /work/peers-venv/bin/python benchmarks/bench_render.py --steps 64 --size 224

Everything runs in one process with one torch, so every figure comes from the same run on the same
machine. Compared, at equal steps, size, learning rate (Adam 0.05), Fourier parameterization and
transform set (the Distill article's standard set, each library's own implementation):

  phosphene   ``phosphene.render`` of ``channel(layer, channels)``: all channels in one batch.
  lucent-1    ``render_vis`` one channel at a time (one call per channel).
  lucent-B    lucent's batched mode: ``param.image(size, batch=N)`` and the sum of
              ``channel(layer, n, batch=n)``.
  bare        forward+backward (gradient w.r.t. the input) at batch N with no parameterization,
              transform or hooks: of the network truncated after ``layer``, and of the whole network.

lucent sees the EfficientNet-Lite0 network wrapped so that its forward applies ``(x*255-127)/128``
and gets ``preprocess=False``. The final objective of both sides is the mean activation of each
channel on the clean final images, computed by the same phosphene code. The machine is shared, so
measurements are interleaved (phosphene and the bare passes are timed twice, before and after the
lucent runs) and both wall and process CPU time are reported. ``--skip-lucent`` runs only phosphene
and the bare passes (for an interpreter without lucent, e.g. phosphene's own venv).

Issue 14 options: ``--fold 0/1`` (phosphene's BatchNorm folding, default on; the bare passes then also
include ``bare_trunc_<view>px_fold``, the truncated network with the same folding), ``--device cuda``
and ``--amp`` (bfloat16 autocast for phosphene and the bare passes) to run the same comparisons on a
GPU; on CUDA every timestamp synchronizes first, so step gaps are device time. If torchvision cannot
be imported (a CPU-only venv), lucent's one torchvision import, ``Normalize`` for its preprocessing
(which the benchmark turns off), is stubbed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import operator
import platform
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import Timer  # noqa: E402  (benchmarks/timing.py)

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402
from phosphene.layers.folding import fold_batchnorm  # noqa: E402
from phosphene.layers.tap import LayerTap  # noqa: E402
from phosphene.models import layer_root  # noqa: E402
from phosphene.objectives import Acts, evaluate  # noqa: E402
from phosphene.transforms import standard_transforms  # noqa: E402

LR = 0.05
DISTILL_SCALES = [1.0, 0.975, 1.025, 0.95, 1.05]
DISTILL_DEGREES = list(range(-5, 6))
RUN = {"device": torch.device("cpu"), "amp": False, "fold": True}  # set by main()


def sync() -> None:
    if RUN["device"].type == "cuda":
        torch.cuda.synchronize()


def torchvision_shim() -> None:
    """lucent imports ``torchvision.transforms.Normalize`` (for preprocess=True only); stub it where
    torchvision cannot be imported (no CPU build of it for this torch)."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        tv, tf = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        tf.Normalize = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("torchvision stub"))
        tv.transforms = tf
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tf})




CLOCK = [time.perf_counter]  # bench_speed --clock cpu swaps in time.process_time


class StepClock:
    """Timestamps every forward call of a model; step durations are the gaps between them.

    Both renderers run exactly one forward pass per optimization step, so the gap between two
    consecutive forward starts is one whole step (parameterization, transforms, forward, backward,
    optimizer). Medians of these are robust to other processes stealing the shared CPU.
    """

    def __init__(self, model: nn.Module):
        self.stamps: list[float] = []
        self.handle = model.register_forward_pre_hook(lambda *_: self.stamp())

    def stamp(self) -> None:
        sync()
        self.stamps.append(CLOCK[0]())

    def take(self) -> list[float]:
        """Step durations (s) since the last take; starts a new series."""
        gaps = list(np.diff(self.stamps)) if len(self.stamps) > 1 else []
        self.stamps = []
        return [float(g) for g in gaps]


class LucentNet(nn.Module):
    """The EfficientNet-Lite0 network taking [0,1] images: forward applies (x*255-127)/128."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * 255 - 127) / 128)


def fresh_model() -> nn.Module:
    """A new EfficientNet-Lite0 (ImageModel) in eval mode with frozen parameters."""
    model = phosphene.load_model("efficientnet_lite0", device=str(RUN["device"])).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def truncated(model: nn.Module, layer: str) -> nn.Module:
    """The network as a Sequential ending at ``_blocks.K`` (same activations as the full net)."""
    net = layer_root(model)
    k = int(layer.split(".")[1])
    return nn.Sequential(model.normalize, net._conv_stem, net._bn0, net._relu0, *net._blocks[:k + 1])


def bare_block(module: nn.Module, batch: int, size: int, iters: int, channels_last: bool,
               gen: torch.Generator) -> list[float]:
    """Seconds of each of ``iters`` forward+backward passes (gradient w.r.t. the input)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module.to(memory_format=fmt)
    x = torch.rand(batch, 3, size, size, generator=gen).to(RUN["device"]).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    autocast = torch.autocast(RUN["device"].type, dtype=torch.bfloat16, enabled=RUN["amp"])
    with autocast:
        out = module(x)
    out.float().mean().backward()  # warm-up, not timed
    times = []
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        x.grad = None
        with autocast:
            out = module(x)
        out.float().mean().backward()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def clean_values(model: nn.Module, images: torch.Tensor, layer: str, channels: list[int]
                 ) -> list[float]:
    """Mean activation of channel ``channels[i]`` on clean image i (phosphene's code)."""
    obj = objectives.channel(layer, channels)
    with torch.no_grad(), LayerTap(model, obj.layers) as tap:
        values = evaluate(obj, Acts(tap(images.float())))
    return [round(float(v), 4) for v in values]


def run_phosphene(model, layer, channels, steps, size, seed, channels_last, copies=1):
    with Timer() as t:
        result = phosphene.render(model, objectives.channel(layer, channels), param="fourier",
                                  transforms="standard", steps=steps, lr=LR, size=size, seed=seed,
                                  copies=copies, progress=False, channels_last=channels_last,
                                  fold=RUN["fold"], amp=RUN["amp"])
    return t, result


def lucent_transforms():
    from lucent.optvis import transform
    return [transform.pad(12, mode="constant", constant_value=0.5), transform.jitter(8),
            transform.random_scale(DISTILL_SCALES), transform.random_rotate(DISTILL_DEGREES),
            transform.jitter(4)]


def run_lucent(model, layer, channels, steps, size, seed, batched):
    """lucent's render_vis: one call per channel, or one batched call. Returns (Timer, images)."""
    from lucent.optvis import objectives as lobj
    from lucent.optvis import param as lparam
    from lucent.optvis import render as lrender

    lname = "net_" + layer.replace(".", "_")  # lucent joins module names with "_"
    kwargs = dict(optimizer=lambda params: torch.optim.Adam(params, lr=LR),
                  transforms=lucent_transforms(), thresholds=(steps,), preprocess=False,
                  progress=False, show_image=False)
    images = []
    with Timer() as t:
        if batched:
            torch.manual_seed(seed)
            np.random.seed(seed)
            obj = functools.reduce(operator.add, [lobj.channel(lname, c, batch=i)
                                                  for i, c in enumerate(channels)])
            out = lrender.render_vis(model, obj, lambda: lparam.image(size, batch=len(channels)),
                                     **kwargs)
            images.append(torch.from_numpy(out[-1]).permute(0, 3, 1, 2))
        else:
            for c in channels:
                torch.manual_seed(seed + c)
                np.random.seed(seed + c)
                out = lrender.render_vis(model, lobj.channel(lname, c), lambda: lparam.image(size),
                                         **kwargs)
                images.append(torch.from_numpy(out[-1]).permute(0, 3, 1, 2))
    return t, torch.cat(images)


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "mean": statistics.fmean(values),
            "n": len(values)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--layer", default="_blocks.8", help="an EfficientNet-Lite0 block, _blocks.K")
    ap.add_argument("--channels", default="0-15", help="e.g. 0-15")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", type=int, default=1, choices=(0, 1),
                    help="memory format of phosphene's main runs and of the bare passes")
    ap.add_argument("--bare-iters", type=int, default=8, help="iterations per bare timing block")
    ap.add_argument("--sweep-steps", type=int, default=12,
                    help="steps of the channels_last / copies sweep (0: no sweep)")
    ap.add_argument("--overhead-rounds", type=int, default=8,
                    help="rounds of the paired phosphene-vs-bare overhead measurement (0: none)")
    ap.add_argument("--skip-lucent", action="store_true")
    ap.add_argument("--fold", type=int, default=1, choices=(0, 1), help="phosphene's BatchNorm folding")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast (phosphene and bare passes)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    RUN.update(device=torch.device(args.device), amp=args.amp, fold=bool(args.fold))
    folds = contextlib.ExitStack()
    warnings.filterwarnings("ignore")
    layer, steps, size, seed = args.layer, args.steps, args.size, args.seed
    channels = objectives.parse_units(args.channels)
    n = len(channels)
    cl = bool(args.channels_last)
    view = standard_transforms().out_size(size)
    gen = torch.Generator().manual_seed(seed)
    out: dict = {"settings": {**vars(args), "torch": torch.__version__, "python": platform.python_version(),
                              "cpu": platform.processor() or platform.machine(), "view_size": view,
                              "transforms": "Distill standard set: pad 12 (0.5), jitter 8, scale "
                                            f"{DISTILL_SCALES}, rotate +-5 deg, jitter 4"}}
    print(f"torch {torch.__version__}, {args.threads} threads; {layer} channels {args.channels} "
          f"(N={n}), {steps} steps, {size} px (views {view} px), channels_last={cl}", flush=True)

    phos_model, eval_model = fresh_model(), fresh_model()
    bare = {"bare_trunc": (truncated(fresh_model(), layer), size),
            f"bare_trunc_{view}px": (truncated(fresh_model(), layer), view),
            "bare_full": (fresh_model(), size)}
    if RUN["fold"]:
        folded = truncated(fresh_model(), layer)
        folds.enter_context(fold_batchnorm(folded, [], view, RUN["device"]))
        bare[f"bare_trunc_{view}px_fold"] = (folded, view)
    step_times: dict[str, list[float]] = {k: [] for k in bare}
    step_times.update(phosphene=[], lucent_single=[], lucent_batched=[])
    totals: dict[str, float] = {"phosphene": 0.0, "lucent_single": 0.0, "lucent_batched": 0.0}
    runs: dict[str, int] = {"phosphene": 0, "lucent_single": 0, "lucent_batched": 0}
    images: dict[str, list[torch.Tensor]] = {"lucent_single": [], "lucent_batched": []}
    results = {}
    phos_clock = StepClock(phos_model)

    def bare_round():
        for key, (module, side) in bare.items():
            step_times[key] += bare_block(module, n, side, args.bare_iters, cl, gen)
        print("  bare fwd+bwd, median s/iter: " + ", ".join(
            f"{k} {statistics.median(step_times[k][-args.bare_iters:]):.2f}" for k in bare), flush=True)

    def phos_round():
        phos_clock.take()
        t, res = run_phosphene(phos_model, layer, channels, steps, size, seed, cl)
        step_times["phosphene"] += phos_clock.take()
        totals["phosphene"] += t.wall
        runs["phosphene"] += 1
        results["phosphene"] = res
        print(f"  phosphene: {t.wall:.1f} s wall, {t.cpu:.1f} s cpu", flush=True)

    if not args.skip_lucent:
        torchvision_shim()
    lucent_model = None if args.skip_lucent else LucentNet(layer_root(fresh_model())).eval()
    lucent_clock = StepClock(lucent_model) if lucent_model is not None else None
    half = (n + 1) // 2

    def lucent_round(batched: bool, chans: list[int]):
        key = "lucent_batched" if batched else "lucent_single"
        t = None
        for group in ([chans] if batched else [[c] for c in chans]):
            lucent_clock.take()
            t, imgs = run_lucent(lucent_model, layer, group, steps, size, seed, batched)
            step_times[key] += lucent_clock.take()
            totals[key] += t.wall
            images[key].append(imgs)
        runs[key] += 1 if batched else 0
        print(f"  {key} ({len(chans)} channels): {totals[key]:.1f} s wall so far", flush=True)

    # Warm-up (one-time initialisation of kernels and libraries), not timed.
    run_phosphene(fresh_model(), layer, channels, 2, size, seed, cl)
    if lucent_model is not None:
        run_lucent(lucent_model, layer, channels[:1], 2, size, seed, False)
        run_lucent(lucent_model, layer, channels, 2, size, seed, True)

    # Interleaved schedule, so that every method sees the shared machine at several moments.
    bare_round()
    phos_round()
    if lucent_model is not None:
        lucent_round(False, channels[:half])
    bare_round()
    if lucent_model is not None:
        lucent_round(True, channels)
    bare_round()
    phos_round()
    if lucent_model is not None and channels[half:]:
        lucent_round(False, channels[half:])
    bare_round()
    runs["lucent_single"] = 1 if images["lucent_single"] else 0

    # -- figures --------------------------------------------------------------------------------
    rows = {}
    for key, times in step_times.items():
        if not times:
            continue
        st = stats(times)
        row = {"step_s": st, "ms_per_image_step_median": 1000 * st["median"] / (1 if key == "lucent_single"
                                                                                  else n)}
        row["ms_per_image_step_min"] = 1000 * st["min"] / (1 if key == "lucent_single" else n)
        if key in totals and runs[key]:
            row["wall_s_total_for_N_images"] = totals[key] / runs[key]
            row["ms_per_image_step_total"] = 1000 * row["wall_s_total_for_N_images"] / (n * steps)
        rows[key] = row

    ratios: dict = {}
    ph = rows["phosphene"]
    lucent_keys = [k for k in ("lucent_single", "lucent_batched") if k in rows]
    for basis in ("median", "total"):
        field = f"ms_per_image_step_{basis}"
        if lucent_keys:
            faster = min(lucent_keys, key=lambda k: rows[k][field])
            ratios[f"speedup_vs_faster_lucent_{basis}"] = rows[faster][field] / ph[field]
            ratios[f"faster_lucent_mode_{basis}"] = faster
            for k in lucent_keys:
                ratios[f"speedup_vs_{k}_{basis}"] = rows[k][field] / ph[field]
    for key in bare:
        if key != "bare_full":
            ratios[f"overhead_vs_{key}_median_pct"] = 100 * (ph["step_s"]["median"]
                                                             / rows[key]["step_s"]["median"] - 1)
            ratios[f"overhead_vs_{key}_min_pct"] = 100 * (ph["step_s"]["min"]
                                                          / rows[key]["step_s"]["min"] - 1)
    ratios["bare_full_over_bare_trunc_median"] = (rows["bare_full"]["step_s"]["median"]
                                                  / rows["bare_trunc"]["step_s"]["median"])

    values = {"phosphene": clean_values(eval_model, results["phosphene"].images.to(RUN["device"]), layer,
                                        channels),
              "phosphene_render_final": [round(float(v), 4) for v in results["phosphene"].final]}
    for key in lucent_keys:
        values[key] = clean_values(eval_model, torch.cat(images[key]).to(RUN["device"]), layer, channels)
    means = {k: statistics.fmean(v) for k, v in values.items()}
    if lucent_keys:
        ratios["objective_phosphene_minus_best_lucent_mean"] = means["phosphene"] - max(
            means[k] for k in lucent_keys)
        ratios["channels_where_phosphene_below_both_lucent"] = sum(
            values["phosphene"][i] < min(values[k][i] for k in lucent_keys) for i in range(n))
    out.update(rows=rows, ratios=ratios, objective_values=values, objective_means=means)

    print(f"\nper step, batch of {n} (lucent_single: batch 1, one image at a time)")
    print(f"{'':22}{'ms/img/step median':>19}{'min':>8}{'from total':>11}{'steps timed':>12}")
    for key, row in rows.items():
        total = row.get("ms_per_image_step_total")
        print(f"{key:22}{row['ms_per_image_step_median']:19.1f}{row['ms_per_image_step_min']:8.1f}"
              f"{(f'{total:.1f}' if total else '-'):>11}{row['step_s']['n']:12d}")
    print("\nratios:")
    for k, v in ratios.items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    print("\nfinal objective (mean channel activation on the clean final images):")
    for k, v in values.items():
        print(f"  {k:24} mean {means[k]:7.3f}  {v}")

    # -- paired overhead: short phosphene renders alternating with bare passes ------------------
    if args.overhead_rounds:
        per = 6
        model = fresh_model()
        clock = StepClock(model)
        paired: dict[str, list[float]] = {k: [] for k in bare if k != "bare_full"}
        for r in range(args.overhead_rounds):
            for part in (("phos", "bare") if r % 2 == 0 else ("bare", "phos")):
                if part == "phos":
                    clock.take()
                    run_phosphene(model, layer, channels, per, size, seed + r, cl)
                    phos = statistics.median(clock.take()[:-1])  # the last gap includes the tail
                else:
                    bares = {k: statistics.median(bare_block(bare[k][0], n, bare[k][1], per - 1, cl, gen))
                             for k in paired}
            for k in paired:
                paired[k].append(100 * (phos / bares[k] - 1))
        print(f"\npaired overhead of a phosphene step over bare truncated fwd+bwd "
              f"({args.overhead_rounds} rounds of {per - 1} steps vs {per - 1} passes, median over rounds):")
        for k, v in paired.items():
            ratios[f"paired_overhead_vs_{k}_pct"] = statistics.median(v)
            print(f"  vs {k}: {statistics.median(v):+.1f} %  rounds {[round(x, 1) for x in v]}")
        out["paired_overhead_pct_rounds"] = paired

    if args.json:  # the main figures, before the (optional) sweep
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))

    # -- sweep: channels_last and copies (phosphene only, fewer steps) --------------------------
    if args.sweep_steps:
        s = args.sweep_steps
        sweep: dict[str, list[float]] = {}
        print(f"\nsweep: phosphene, {s} steps, median ms per image-view per step (two runs each):",
              flush=True)
        configs = [("channels_last=0 copies=1", False, 1), ("channels_last=1 copies=1", True, 1),
                   ("channels_last=1 copies=2", True, 2), ("channels_last=0 copies=2", False, 2),
                   ("channels_last=1 copies=4", True, 4)]
        for rep in range(2):
            for name, use_cl, copies in (configs if rep == 0 else configs[::-1]):
                model = fresh_model()  # render(channels_last=True) leaves the model channels_last
                clock = StepClock(model)
                run_phosphene(model, layer, channels, s, size, seed, use_cl, copies)
                sweep.setdefault(name, []).append(1000 * statistics.median(clock.take()) / (n * copies))
        for name, v in sweep.items():
            print(f"  {name}: {statistics.fmean(v):.1f}  runs {[round(x, 1) for x in v]}")
        out["sweep_ms_per_view_step_median"] = sweep

    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
