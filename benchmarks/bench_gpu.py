"""GPU benchmark (issue 25): per-step times of phosphene against the bare network, lucent and faccent,
and the report's time per unit, on the embedded EfficientNet-Lite0; one command::

    python benchmarks/bench_gpu.py --out /tmp/bench_gpu.json          # CUDA (CPU with a note if none)
    python benchmarks/bench_gpu.py --device cpu --quick --out /tmp/bench_gpu_cpu.json

Rows of the table (median ms per optimizer step over ``--steps`` timed steps after ``--warmup``
untimed ones; on CUDA every step is bracketed by ``torch.cuda.synchronize``):

  bare fwd+bwd   the truncated, BatchNorm-folded network phosphene runs (the same `Renderer`'s tap,
                 hooks and memory format) on a fixed leaf tensor of the views' shape: forward to the
                 objective's layer and backward to the input, no parameterization, warp or optimizer.
  render         `Renderer.step` of 16 channels of ``--layer`` (Fourier, standard transforms), at fp32,
                 bf16 (and fp16 on CUDA), each eager and with ``compile=True`` (CUDA only; compile
                 time is in the warm-up and reported separately).
  lucent         lucent 0.1.8's ``render_vis`` in its batched mode, same size, batch, Adam lr and the
                 Distill transform set (step time from the gaps between its forward calls).
  accentuate     phosphene's `accentuate` and faccent 1.0.3's ``render_vis`` accentuation at faccent's
                 defaults (16 crops, 5-99 % boxes, noise 0.02) of one 224-px seed: wall time of the
                 whole call divided by its steps (setup and measurement included on both sides).
  report         ``build_report`` of ``--report-units`` units on a synthetic mining run (seconds per
                 unit and per stage).

lucent and faccent are imported lazily: a row says "not importable (reason)" when they (or their
dependencies) are missing. Modules they import only for image I/O, plots, widgets and model zoos
(torchvision, matplotlib, ipywidgets, imageio, IPython) get a stub where they cannot be imported
(`STUBBED`; listed in the JSON as ``stubbed_modules``); a stub raises if a run calls it. Nothing is
downloaded. ``--out`` writes the table as JSON and the same table as Markdown next to it (``.md``).
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import platform
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402
from phosphene.models import layer_root  # noqa: E402
from phosphene.objectives import Acts, evaluate  # noqa: E402
from phosphene.render import RenderConfig, Renderer  # noqa: E402

LR = 0.05
QUICK = {"size": 64, "channels": 4, "steps": 3, "warmup": 1, "accent_steps": 3, "crops": 2, "report_units": 2,
         "report_steps": 4, "report_size": 64, "report_accent_steps": 2, "report_images": 8}
DEVICE = [torch.device("cpu")]


def sync() -> None:
    if DEVICE[0].type == "cuda":
        torch.cuda.synchronize()


def median_ms(step: Callable[[], object], warmup: int, steps: int) -> tuple[float, float]:
    """(median ms per call over ``steps`` timed calls, seconds of the ``warmup`` untimed calls)."""
    sync()
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm = time.perf_counter() - start
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), warm


# -- phosphene ----------------------------------------------------------------------------------
def render_row(model, objective, args, precision: str, compile_: bool) -> dict:
    config = RenderConfig(steps=args.warmup + args.steps, size=args.size, precision=precision,
                          compile=compile_)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Renderer(model, objective, config=config) as renderer:
            ms, warm = median_ms(renderer.step, args.warmup, args.steps)
    failed = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    return {"ms": ms, "warmup_s": round(warm, 2), **({"note": failed[0][:120]} if failed else {})}


def bare_row(model, objective, args, precision: str) -> dict:
    """The same Renderer's truncated, folded network on a fixed input: forward + backward only."""
    config = RenderConfig(steps=1, size=args.size, precision=precision)
    with Renderer(model, objective, config=config) as renderer:
        views = renderer.transform(renderer.images(), renderer.gen)
        x = views.detach().contiguous(memory_format=renderer.memory_format).requires_grad_(True)

        def step():
            x.grad = None
            with renderer.autocast:
                values = evaluate(objective, Acts(renderer.tap(x)))
            (-values.float().sum()).backward()

        ms, _ = median_ms(step, args.warmup, args.steps)
    return {"ms": ms}


def accentuate_row(model, seed, args) -> dict:
    from phosphene.accentuation import accentuate

    def run(steps):
        return accentuate(model, obj.class_logit(args.accent_class), seed, args.reg_layer, lam=1.0,
                          steps=steps, crops=args.crops, input_size=seed.shape[-1],
                          measure_crops=args.crops, progress=False)

    run(2)  # warm-up (kernels, allocator)
    sync()
    start = time.perf_counter()
    run(args.accent_steps)
    sync()
    return {"ms": 1000 * (time.perf_counter() - start) / args.accent_steps}


# -- peers (lazy) -------------------------------------------------------------------------------
# Modules lucent and faccent import at import time but whose functions these runs never call (their
# image I/O, plotting, widgets, model zoos): a stub stands in for each one that cannot be imported.
STUBBED = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.models",
           "torchvision.datasets", "torchvision.utils", "ipywidgets", "imageio", "matplotlib",
           "matplotlib.pyplot", "matplotlib.cm", "matplotlib.patches", "IPython", "IPython.display")


def stub_missing() -> list[str]:
    """Put a stub in ``sys.modules`` for each of `STUBBED` that cannot be imported; returns their
    names. A stub's attributes are functions that raise, so a run that needs one fails loudly."""
    import importlib

    def missing(name):
        def stub(*_a, **_k):
            raise RuntimeError(f"stub: {name} is not installed")
        return stub

    stubbed = []
    for name in STUBBED:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:
            mod = types.ModuleType(name)
            mod.__getattr__ = lambda attr, _n=name: missing(f"{_n}.{attr}")
            mod.__path__ = []  # a package, so that its submodules can be stubbed too
            sys.modules[name] = mod
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, mod)
            stubbed.append(name)
    return stubbed


class StepClock:
    """Timestamps of a model's forward calls (one per lucent step); gaps are step times."""

    def __init__(self, model: nn.Module):
        self.stamps: list[float] = []
        self.handle = model.register_forward_pre_hook(lambda *_: self.stamps.append(self._now()))

    @staticmethod
    def _now() -> float:
        sync()
        return time.perf_counter()


class LucentNet(nn.Module):
    """EfficientNet-Lite0 taking [0, 1] images, its normalization inside (lucent: preprocess=False)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * 255 - 127) / 128)


def lucent_row(args) -> dict:
    from lucent.optvis import objectives as lobj
    from lucent.optvis import param as lparam
    from lucent.optvis import render as lrender
    from lucent.optvis import transform

    if DEVICE[0].type == "cpu" and torch.cuda.is_available():
        return {"note": "skipped: lucent always runs on cuda:0 when CUDA exists"}
    model = LucentNet(layer_root(fresh_model())).to(DEVICE[0]).eval()
    clock = StepClock(model)
    lname = "net_" + args.layer.replace(".", "_")
    objective = functools.reduce(operator.add,
                                 [lobj.channel(lname, c, batch=c) for c in range(args.channels)])
    transforms = [transform.pad(12, mode="constant", constant_value=0.5), transform.jitter(8),
                  transform.random_scale([1.0, 0.975, 1.025, 0.95, 1.05]),
                  transform.random_rotate(list(range(-5, 6))), transform.jitter(4)]
    torch.manual_seed(0)
    total = args.warmup + args.steps + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrender.render_vis(model, objective, lambda: lparam.image(args.size, batch=args.channels),
                           optimizer=lambda params: torch.optim.Adam(params, lr=LR), transforms=transforms,
                           thresholds=(total,), preprocess=False, progress=False, show_image=False)
    gaps = np.diff(clock.stamps)[args.warmup:args.warmup + args.steps]
    return {"ms": 1000 * float(np.median(gaps))}


def faccent_row(model, seed, args) -> dict:
    from faccent import objectives as fobj
    from faccent import param as fparam
    from faccent import render as frender

    size = seed.shape[-1]

    def run(steps):
        parameterizer = fparam.fourier_phase(init_img=seed.cpu(), img_size=(size, size),
                                             device=str(DEVICE[0]))
        frender.render_vis(model, fobj.channel("net__fc", args.accent_class, batch=0),
                           parameterizer=parameterizer, out_thresholds=range(steps), inline_thresholds=[],
                           nb_transforms=args.crops, progress=False, model_input_size=(size, size),
                           model_input_range=(0, 1), accent_reg_alpha=1.0,
                           accent_reg_layer="_".join(["net"] + args.reg_layer.split(".")))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(2)
        sync()
        start = time.perf_counter()
        run(args.accent_steps)
        sync()
    return {"ms": 1000 * (time.perf_counter() - start) / args.accent_steps}


def peer(name: str, row: Callable[[], dict]) -> dict:
    """``row()``, or a note saying why the peer could not run."""
    try:
        return row()
    except ImportError as exc:
        return {"note": f"{name} not importable ({type(exc).__name__}: {str(exc)[:80]})"}
    except Exception as exc:  # a peer failing must not lose the rest of the table
        return {"note": f"{name} failed ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"}


def fresh_model() -> phosphene.ImageModel:
    model = phosphene.load_model("efficientnet_lite0", device=str(DEVICE[0])).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# -- the report ---------------------------------------------------------------------------------
def synthetic_images(folder: Path, count: int, side: int = 256) -> None:
    """``count`` smooth random colour images (no dataset needed): low-pass noise plus a few shapes."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = torch.rand(1, 3, 8, 8, generator=gen)
        image = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic")
        image = (image + 0.15 * torch.rand(1, 3, side, side, generator=gen)).clamp(0, 1)[0]
        array = (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"synthetic_{i:03d}.png")


def report_row(model, args) -> dict:
    from phosphene.mining import run_mining
    from phosphene.report import ReportSettings, build_report

    units = list(range(args.report_units))
    settings = ReportSettings(steps=args.report_steps, size=args.report_size, diverse=2, batch=16, k=4,
                              probe=args.report_images // 2, mtis=2, accent_steps=args.report_accent_steps,
                              accent_crops=4, accent_top=1, accent_unrelated=1, neighbours=3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic_images(root / "images", args.report_images)
        run_mining(model, [args.layer], root / "images", root / "run", k=4, batch_size=32, num_workers=0,
                   progress=False)
        sync()
        start = time.perf_counter()
        result = build_report(root / "run", [args.layer], root / "site", units, model=model,
                              settings=settings, progress=False)
        sync()
        total = time.perf_counter() - start
    return {"s_per_unit": total / len(units), "units": len(units), "total_s": round(total, 2),
            "stages_s": {k: round(v, 2) for k, v in result.seconds.items()},
            "settings": {k: v for k, v in settings.to_dict().items()
                         if k in ("steps", "size", "diverse", "accent_steps", "accent_crops", "probe")}}


# -- the table ----------------------------------------------------------------------------------
def markdown(record: dict) -> str:
    """The table as Markdown: one row per measurement, ms per step and ratio to the bare pass."""
    bare = record["rows"].get("bare fwd+bwd fp32", {}).get("ms")
    lines = [f"# bench_gpu: {record['device_name']} ({record['device']}), torch {record['torch']}",
             "", f"{record['note']}" if record.get("note") else "",
             f"{record['channels']} channels of `{record['layer']}`, {record['size']} px (one batch), "
             f"{record.get('seconds', '?')} s in all; "
             f"median of {record['steps']} steps after {record['warmup']} warm-up steps.", "",
             "| row | ms / step | × bare fp32 | note |", "|---|---:|---:|---|"]
    for name, row in record["rows"].items():
        ms = row.get("ms")
        ratio = f"{ms / bare:.2f}" if ms is not None and bare else ""
        note = row.get("note", "") or (f"warm-up {row['warmup_s']} s" if "warmup_s" in row else "")
        lines.append(f"| {name} | {'' if ms is None else f'{ms:.2f}'} | {ratio} | {note} |")
    report = record.get("report")
    if report:
        lines += ["", "| report | value |", "|---|---|"]
        if "s_per_unit" in report:
            lines.append(f"| seconds per unit | {report['s_per_unit']:.2f} ({report['units']} units, "
                         f"{report['settings']}) |")
            lines += [f"| stage {k} | {v} s |" for k, v in report["stages_s"].items()]
        else:
            lines.append(f"| note | {report.get('note', '')} |")
    return "\n".join(line for line in lines if line is not None) + "\n"


def save(record: dict, out: str | None, text: str | None = None) -> None:
    """Write the table so far to ``out`` (JSON) and its Markdown beside it (a killed run keeps its rows)."""
    if not out:
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    path.with_suffix(".md").write_text(text or markdown(record))
    if text:
        print(f"wrote {path} and {path.with_suffix('.md')}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few steps (a smoke test on a CPU)")
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", type=int, default=16, help="units rendered in one batch")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per row (compile happens here)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--precisions", default=None,
                    help="comma-separated, e.g. fp32 (default: fp32,bf16 and fp16 on CUDA)")
    ap.add_argument("--accent-steps", type=int, default=30)
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--accent-class", type=int, default=285)
    ap.add_argument("--reg-layer", default="_blocks.5")
    ap.add_argument("--report-units", type=int, default=8)
    ap.add_argument("--report-steps", type=int, default=64)
    ap.add_argument("--report-size", type=int, default=128)
    ap.add_argument("--report-accent-steps", type=int, default=32)
    ap.add_argument("--report-images", type=int, default=64)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--budget", type=float, default=180,
                    help="seconds after which the optional rows (peers, compile, report) are skipped")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the table as JSON here (and as .md beside it)")
    if ap.parse_known_args(argv)[0].quick:
        ap.set_defaults(**QUICK)  # options given on the command line still win
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    note = ""
    wanted = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        wanted, note = "cpu", "no CUDA device: measured on the CPU"
    elif args.device is None and wanted == "cpu":
        note = "no CUDA device: measured on the CPU"
    DEVICE[0] = torch.device(wanted)
    cuda = DEVICE[0].type == "cuda"
    name = torch.cuda.get_device_name(DEVICE[0]) if cuda else platform.processor() or platform.machine()
    print(f"bench_gpu on {DEVICE[0]} ({name}), torch {torch.__version__}{'; ' + note if note else ''}",
          flush=True)
    model = fresh_model()
    objective = obj.channel(args.layer, list(range(args.channels)))
    # process warm-up, untimed: the model's one-time checks, kernel selection, the allocator
    phosphene.render(model, objective, steps=2, size=args.size, progress=False)
    started = time.perf_counter()
    record = {"device": str(DEVICE[0]), "device_name": name, "torch": torch.__version__, "note": note,
              "python": platform.python_version(), "layer": args.layer, "size": args.size,
              "channels": args.channels, "steps": args.steps, "warmup": args.warmup,
              "accent_steps": args.accent_steps, "quick": args.quick, "stubbed_modules": [], "rows": {}}

    def add(label: str, make: Callable[[], dict], optional: bool = True) -> None:
        """Measure one row (an optional one only within ``--budget``) and save the table so far."""
        elapsed = time.perf_counter() - started
        row = ({"note": f"skipped: {elapsed:.0f} s spent of the {args.budget:.0f} s budget"}
               if optional and elapsed > args.budget else make())
        record["rows"][label] = row
        record["seconds"] = round(time.perf_counter() - started, 1)
        shown = f"{row['ms']:.2f} ms/step" if row.get("ms") is not None else ""
        print(f"  {label:<34} {shown:>14}  {row.get('note', '')}", flush=True)
        save(record, args.out)

    precisions = (args.precisions.split(",") if args.precisions
                  else ["fp32", "bf16"] + (["fp16"] if cuda else []))
    for precision in precisions:
        add(f"bare fwd+bwd {precision}", lambda p=precision: bare_row(model, objective, args, p), False)
        add(f"render {precision}", lambda p=precision: render_row(model, objective, args, p, False), False)
    side = 64 if args.quick else 224  # faccent's default canvas
    seed = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)).to(DEVICE[0])
    add(f"accentuate ({args.crops} crops)", lambda: accentuate_row(model, seed, args), False)
    if not args.skip_peers:
        record["stubbed_modules"] = stub_missing()
        add("lucent render_vis (batched)", lambda: peer("lucent", lambda: lucent_row(args)))
        add(f"faccent accentuation ({args.crops} crops)",
            lambda: peer("faccent", lambda: faccent_row(model, seed, args)))
    if cuda and not args.no_compile:
        for precision in ("fp32", "bf16"):
            add(f"render {precision} compile",
                lambda p=precision: render_row(model, objective, args, p, True))
    elif not args.no_compile:
        record["rows"]["render compile"] = {"note": "CUDA only (on a CPU its compile time is not recovered)"}
    if not args.skip_report:
        elapsed = time.perf_counter() - started
        spent = f"skipped: {elapsed:.0f} s spent of the {args.budget:.0f} s budget"
        record["report"] = (peer("report", lambda: report_row(model, args)) if elapsed <= args.budget
                            else {"note": spent})
        print(f"  report: {record['report']}", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    text = markdown(record)
    print("\n" + text)
    save(record, args.out, text)
    return record


if __name__ == "__main__":
    main()
