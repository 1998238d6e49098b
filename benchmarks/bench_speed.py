"""Speed benchmark (issue 14): BatchNorm folding, compile and the per-step overhead, paired rounds.

    /work/main/.venv/bin/python benchmarks/bench_speed.py --original /tmp/orig --json /tmp/speed.json

Compared in one process, interleaved round by round (the order rotates every round) so that every
variant meets the shared machine's load at the same moments; figures are medians over rounds of
per-round ratios. Each render variant runs ``--round-steps`` steps of ``render(model,
channel(layer, channels), param="fourier", transforms="standard")``; its step time is the median gap
between consecutive forward passes (one forward per step), the first step excluded.

  fold        this checkout, ``fold=True`` (the default)
  nofold      this checkout, ``fold=False``
  orig        the code of another checkout (``--original DIR``: a copy of the phosphene package of
              commit 4c50938, imported as ``phosphene_orig``), i.e. phosphene before this change
  compile     this checkout, ``fold=True, compile=True`` (``--compile``; compile time reported apart)
  bare_view   forward+backward (gradient w.r.t. the input) of the network cut after ``layer`` at the
              views' size (236 px for 224), no parameterization/transform/hooks; ``bare_view_fold``
              the same with `fold_batchnorm` applied to that truncated network

``--full`` also renders all ``--steps`` steps with fold, nofold and orig and compares the final
objective values; ``--accentuate N`` times accentuation (16 crops, N steps) with and without folding;
``--mining N`` times `run_mining` over N sample images with and without folding against a bare
truncated forward at the same batch size. ``--device cuda`` and ``--amp`` run the same on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_render  # noqa: E402
from bench_render import StepClock, fresh_model, truncated  # noqa: E402
from timing import Timer  # noqa: E402

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402
from phosphene.layers.folding import fold_batchnorm  # noqa: E402
from phosphene.layers.heap import heap_kept  # noqa: E402
from phosphene.transforms import standard_transforms  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_original(path: str | None):
    """The phosphene package under ``path`` (a folder holding ``phosphene/``) as ``phosphene_orig``."""
    if not path:
        return None
    sys.path.insert(0, str(path))
    return importlib.import_module("phosphene_orig")


def render_steps(lib, model, args, steps, device, units=None, **options) -> tuple[list[float], object]:
    clock = StepClock(model)
    objective = lib.objectives.channel(args.layer, args.units if units is None else units)
    result = lib.render(model, objective, param="fourier", transforms="standard", steps=steps,
                        size=args.size, seed=args.seed, progress=False, device=device, amp=args.amp,
                        **options)
    sync(device)
    gaps = clock.take()
    clock.handle.remove()
    return gaps[1:], result  # the first gap includes the folding probe / setup


BARE_HEAP = ["kept"]  # --bare-heap


def bare_steps(module, n, side, iters, device, amp, channels_last: bool = False) -> list[float]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(n, 3, side, side, device=device).contiguous(memory_format=fmt).requires_grad_(True)
    auto = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    with auto:
        module(x).float().mean().backward()
    times = []
    # by default the same allocator setting as the Renderer on the CPU (freed memory kept in the heap)
    keep = device.type == "cpu" and BARE_HEAP[0] == "kept"
    with heap_kept() if keep else contextlib.nullcontext():
        for _ in range(iters):
            sync(device)
            t0 = bench_render.CLOCK[0]()
            x.grad = None
            with auto:
                out = module(x)
            out.float().mean().backward()
            sync(device)
            times.append(bench_render.CLOCK[0]() - t0)
    return times


def variant_options(key: str) -> dict:
    """render() options of a variant of this checkout."""
    return {"fold": key != "nofold", "compile": key == "compile", "channels_last": key == "fold_cl"}


def paired_rounds(args, device, orig) -> dict:
    n, view = len(args.units), standard_transforms().out_size(args.size)
    models = {"fold": fresh_model().to(device), "nofold": fresh_model().to(device)}
    if orig is not None:
        models["orig"] = orig.load_model("efficientnet_lite0", device=str(device)).eval()
    if args.channels_last:
        models["fold_cl"] = fresh_model().to(device)
    if args.compile:
        models["compile"] = fresh_model().to(device)
        with Timer() as t:
            render_steps(phosphene, models["compile"], args, 2, device, compile=True)
        print(f"compile warm-up (2 steps, includes compiling): {t.wall:.1f} s", flush=True)
    bare_plain = truncated(fresh_model(), args.layer).to(device)
    bare_folded = truncated(fresh_model(), args.layer).to(device)
    for m in list(models.values()) + [bare_plain, bare_folded]:
        m.eval().requires_grad_(False)
    folding = fold_batchnorm(bare_folded, [], view, device)
    folded_pairs = folding.__enter__()
    bare_cl = None
    if args.channels_last:
        bare_cl = truncated(fresh_model(), args.layer).to(device).eval().requires_grad_(False)
        bare_cl.to(memory_format=torch.channels_last)
        folding_cl = fold_batchnorm(bare_cl, [], view, device)
        folding_cl.__enter__()
    print(f"bare_view_fold: {len(folded_pairs)} BatchNorms folded", flush=True)
    for key, m in models.items():  # one untimed run of each (kernels, allocator)
        lib = orig if key == "orig" else phosphene
        render_steps(lib, m, args, 2, device, **({} if key == "orig" else
                                                 variant_options(key)))
    variants = list(models) + ["bare_view", "bare_view_fold"] + (["bare_view_fold_cl"] if bare_cl else [])
    per: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for key in order:
                if key == "bare_view":
                    times = bare_steps(bare_plain, n, view, args.round_steps - 1, device, args.amp)
                elif key == "bare_view_fold":
                    times = bare_steps(bare_folded, n, view, args.round_steps - 1, device, args.amp)
                elif key == "bare_view_fold_cl":
                    times = bare_steps(bare_cl, n, view, args.round_steps - 1, device, args.amp, True)
                else:
                    lib = orig if key == "orig" else phosphene
                    opts = {} if key == "orig" else variant_options(key)
                    times, _ = render_steps(lib, models[key], args, args.round_steps, device, **opts)
                per[key].append(statistics.median(times))
            print(f"  round {r}: " + ", ".join(f"{k} {1000 * v[-1] / n:.1f}" for k, v in per.items())
                  + " ms/img/step", flush=True)
    finally:
        folding.__exit__(None, None, None)
    ratio_defs = {"speedup_fold_vs_nofold": ("nofold", "fold"), "speedup_fold_vs_orig": ("orig", "fold"),
                  "speedup_nofold_vs_orig": ("orig", "nofold"),
                  "speedup_fold_cl_vs_orig": ("orig", "fold_cl"),
                  "speedup_fold_cl_vs_fold": ("fold", "fold_cl"),
                  "overhead_fold_cl_vs_bare_view_fold_cl": ("fold_cl", "bare_view_fold_cl"),
                  "speedup_compile_vs_fold": ("fold", "compile"),
                  "overhead_fold_vs_bare_view_fold": ("fold", "bare_view_fold"),
                  "overhead_nofold_vs_bare_view": ("nofold", "bare_view"),
                  "overhead_orig_vs_bare_view": ("orig", "bare_view"),
                  "bare_fold_speedup": ("bare_view", "bare_view_fold")}
    ratios = {}
    for name, (a, b) in ratio_defs.items():
        if per.get(a) and per.get(b):
            rounds = [x / y for x, y in zip(per[a], per[b])]
            ratios[name] = {"median": statistics.median(rounds), "rounds": [round(x, 3) for x in rounds]}
    return {"ms_per_image_step_median": {k: 1000 * statistics.median(v) / n for k, v in per.items()},
            "ratios": ratios, "rounds_s": per}


def full_renders(args, device, orig) -> dict:
    out = {}
    evaluator = fresh_model().to(device)
    units = objectives.parse_units(args.full_channels or args.channels)
    for key in ["fold"] + (["orig"] if orig is not None else ["nofold"]):
        model = (orig.load_model("efficientnet_lite0", device=str(device)).eval() if key == "orig"
                 else fresh_model().to(device))
        lib = orig if key == "orig" else phosphene
        with Timer() as t:
            gaps, result = render_steps(lib, model, args, args.steps, device, units=units,
                                        **({} if key == "orig" else {"fold": key == "fold"}))
        obj = objectives.channel(args.layer, units)
        with torch.no_grad(), phosphene.LayerTap(evaluator, obj.layers) as tap:
            values = objectives.evaluate(obj, objectives.Acts(tap(result.images.to(device)))).float()
        out[key] = {"wall_s": t.wall, "median_step_s": statistics.median(gaps),
                    "values": [round(float(v), 4) for v in values], "mean": float(values.mean())}
        print(f"  full {key}: {t.wall:.1f} s, objective mean {out[key]['mean']:.3f}", flush=True)
    for key in ("nofold", "orig"):
        if key in out:
            out[f"wall_ratio_{key}_over_fold"] = out[key]["wall_s"] / out["fold"]["wall_s"]
            out[f"objective_rel_diff_fold_vs_{key}"] = out["fold"]["mean"] / out[key]["mean"] - 1
    return out


def accentuation(args, device) -> dict:
    seed = phosphene.load_image(SAMPLES / "n01440764_tench.JPEG", 224)
    times: dict[str, list[float]] = {"fold": [], "nofold": []}
    model = fresh_model().to(device)
    for r in range(args.rounds):
        for key in (("fold", "nofold") if r % 2 == 0 else ("nofold", "fold")):
            with Timer() as t:
                phosphene.accentuate(model, objectives.class_logit(1), seed, "_blocks.8",
                                     steps=args.accentuate, crops=16, device=device, progress=False,
                                     fold=key == "fold")
                sync(device)
            times[key].append(t.cpu if args.clock == "cpu" else t.wall)
        print(f"  accentuate round {r}: fold {times['fold'][-1]:.1f} s, nofold {times['nofold'][-1]:.1f} s",
              flush=True)
    rounds = [b / a for a, b in zip(times["fold"], times["nofold"])]
    return {f"{args.clock}_s": times, "speedup_fold_vs_nofold_median": statistics.median(rounds),
            "rounds": [round(x, 3) for x in rounds]}


def mining(args, device) -> dict:
    from phosphene.mining import run_mining

    paths = sorted(SAMPLES.glob("*.JPEG"))[: args.mining]
    batch = 32
    folder = Path(tempfile.mkdtemp(prefix="bench_speed_"))
    for p in paths:
        (folder / "images").mkdir(exist_ok=True)
        (folder / "images" / p.name).symlink_to(p)
    model = fresh_model().to(device)
    bare = truncated(fresh_model(), args.layer).to(device)
    x = torch.rand(batch, 3, args.size, args.size, device=device)
    res: dict[str, list[float]] = {"fold": [], "nofold": [], "bare": []}
    for r in range(args.rounds):
        for key in (("fold", "nofold", "bare") if r % 2 == 0 else ("bare", "nofold", "fold")):
            with Timer() as t:
                if key == "bare":
                    with torch.inference_mode():
                        for _ in range(-(-len(paths) // batch)):
                            bare(x)
                else:
                    run_mining(model, [args.layer], folder / "images", folder / f"run{r}{key}", k=8,
                               batch_size=batch, num_workers=0, device=device, progress=False,
                               fold=key == "fold")
                sync(device)
            res[key].append(len(paths) / (t.cpu if args.clock == "cpu" else t.wall))
        print(f"  mining round {r}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in res.items()),
              flush=True)
    out = {"images_per_s": res}
    for a, b in (("fold", "nofold"), ("fold", "bare"), ("nofold", "bare")):
        out[f"throughput_{a}_over_{b}_median"] = statistics.median(x / y for x, y in zip(res[a], res[b]))
    return out


def top1(args, device) -> dict:
    """EfficientNet-Lite0 top-1 class of every sample image, unfolded and folded."""
    paths = sorted(SAMPLES.glob("*.JPEG"))
    images = torch.stack([phosphene.load_image(p, 224) for p in paths])
    model = fresh_model().to(device)
    preds = {}
    for key in ("nofold", "fold"):
        with torch.no_grad(), fold_batchnorm(model, ["logits"], 224, device, key == "fold") as pairs:
            preds[key] = torch.cat([model(c.to(device)).argmax(1).cpu() for c in images.split(50)])
        print(f"  top-1 {key}: {len(pairs)} BatchNorms folded", flush=True)
    same = int((preds["fold"] == preds["nofold"]).sum())
    print(f"  top-1 identical on {same} of {len(paths)} images", flush=True)
    return {"images": len(paths), "identical": same}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", default="0-15")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--round-steps", type=int, default=6)
    ap.add_argument("--original", default=None, help="folder holding a phosphene_orig/ package")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--channels-last", action="store_true", help="also time fold + channels_last")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--full-channels", default=None, help="channels of the --full renders")
    ap.add_argument("--skip-paired", action="store_true")
    ap.add_argument("--accentuate", type=int, default=0, help="accentuation steps (0: skip)")
    ap.add_argument("--mining", type=int, default=0, help="sample images to mine (0: skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--top1", action="store_true", help="top-1 on all sample images, fold vs not")
    ap.add_argument("--bare-heap", choices=["kept", "default"], default="kept",
                    help="bare passes with freed memory kept in the heap as the Renderer does on the CPU "
                         "(kept) or with glibc's defaults")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: time steps by this process's CPU time (robust to other processes' load; "
                         "use with --threads 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    BARE_HEAP[0] = args.bare_heap
    if args.clock == "cpu":
        bench_render.CLOCK[0] = time.process_time
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    args.units = objectives.parse_units(args.channels)
    orig = load_original(args.original)
    print(f"torch {torch.__version__}, {args.threads} threads, {device}, amp={args.amp}; {args.layer} "
          f"channels {args.channels}, {args.size} px", flush=True)
    out: dict = {"settings": {k: v for k, v in vars(args).items() if k != "units"},
                 "torch": torch.__version__}

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))

    if not args.skip_paired:
        out["paired"] = paired_rounds(args, device, orig)
        print(json.dumps(out["paired"]["ms_per_image_step_median"], indent=1))
        for name, r in out["paired"]["ratios"].items():
            print(f"  {name}: {r['median']:.3f}  rounds {r['rounds']}")
        save()
    if args.top1:
        out["top1"] = top1(args, device)
        save()
    if args.full:
        out["full"] = full_renders(args, device, orig)
        save()
    if args.mining:
        out["mining"] = mining(args, device)
        save()
    if args.accentuate:
        out["accentuate"] = accentuation(args, device)
        save()
    return out


if __name__ == "__main__":
    main()
