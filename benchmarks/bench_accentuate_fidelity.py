"""Accentuation fidelity (issue 15): does phosphene's λ mean what faccent's λ means?

For 12 seed/target pairs from the sample images (two seeds x {own class, the seed's second-ranked
class, an absent class}, with R at `_blocks.8`; two seeds x a channel of an early/middle/late layer,
with R one stage below it) both tools accentuate the target at several λ, interleaved pair by pair,
in one process, with the same settings: canvas and model input `--size`, `--steps` Adam steps (lr
0.05), `--crops` crops per step of side 5-99 %, noise 0.02, the seeded magnitude-gated phase
parameterization. phosphene runs its λ sweep in one batch with its defaults (β balanced w.r.t. the
parameters, ``style="faccent"``: faccent's step-0 image, logit clamp and integer crops with noise at
the crop's resolution) and, for reference, λ = 1 in ``style="phosphene"`` (exact start, continuous
crops, per-pixel noise: the earlier default). faccent gets ``--steps`` optimizer updates too (its
loop keeps the image before the last iteration's update, so it is run for steps + 1 iterations).
Both results are measured by the same function, `phosphene.accentuate.measure` (f on the whole
image; R over one fixed draw of 16 noise-free crops).

Run it with an interpreter that has faccent (a throwaway venv; never a dependency of phosphene)::

    PYTHONPATH=$PWD /work/peers-venv/bin/python benchmarks/bench_accentuate_fidelity.py \\
        --json /tmp/fidelity.json --plot docs/images/accentuation-frontier.png

At faccent's full defaults (``--size 224 --steps 100 --crops 16``) one faccent run takes 490-670 CPU s
with one thread and up to ~9 GB of memory: run one process at a time on a 24 GB machine, split with
``--pairs`` (a list, e.g. ``7,10``), and save time with ``--faccent-lams 1 --no-reference``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402
from phosphene.accentuation.accentuate import accentuate, measure  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"
CLASS_SEEDS = ("n03201208_dining_table.JPEG", "n02835271_bicycle-built-for-two.JPEG")
CHANNEL_SEEDS = ("n01440764_tench.JPEG", "n04147183_schooner.JPEG")
ABSENT = 309  # bee
CHANNEL_LAYERS = {"early": ("_blocks.2", "_blocks.1"), "middle": ("_blocks.7", "_blocks.5"),
                  "late": ("_blocks.13", "_blocks.8")}


def faccent_name(layer: str) -> str:
    """faccent names a layer by joining module names with '_' (ImageModel adds 'net')."""
    return "_".join(["net"] + layer.split("."))


def pairs(model, size: int) -> list[dict]:
    """The 12 seed/target pairs: label, seed, phosphene objective, faccent (layer, unit), reg layer."""
    out = []
    for name in CLASS_SEEDS:
        seed = phosphene.load_image(SAMPLES / name, size)[None]
        with torch.no_grad():
            top = model(seed)[0].topk(2).indices.tolist()
        for kind, cls in (("own", top[0]), ("other", top[1]), ("absent", ABSENT)):
            out.append({"label": f"{name.split('_', 1)[1].split('.')[0]} class {cls} ({kind})",
                        "seed": seed, "objective": objectives.class_logit(cls),
                        "faccent": ("net__fc", cls), "reg": "_blocks.8"})
    rng = random.Random(0)
    counts = {layer: int(shape[1]) for layer, _, shape in
              phosphene.layer_shapes(model, 64, torch.device("cpu"))
              if layer in {v[0] for v in CHANNEL_LAYERS.values()}}
    for name in CHANNEL_SEEDS:
        seed = phosphene.load_image(SAMPLES / name, size)[None]
        for depth, (layer, reg) in CHANNEL_LAYERS.items():
            unit = rng.randrange(counts[layer])
            out.append({"label": f"{name.split('_', 1)[1].split('.')[0]} {layer}:{unit} ({depth})",
                        "seed": seed, "objective": objectives.channel(layer, unit),
                        "faccent": (faccent_name(layer), unit), "reg": reg})
    return out


def run_faccent(model, pair: dict, lam: float, args) -> tuple[torch.Tensor, float, float]:
    """faccent's accentuation; returns ((1, 3, H, W) image, its β, seconds)."""
    from faccent import objectives as fobj
    from faccent import param as fparam
    from faccent import render as frender

    size = args.size
    layer, unit = pair["faccent"]
    printed = io.StringIO()
    started = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        parameterizer = fparam.fourier_phase(init_img=pair["seed"], img_size=(size, size), device="cpu")
        imgs, _, _, _ = frender.render_vis(
            model, fobj.channel(layer, unit, batch=0), parameterizer=parameterizer,
            out_thresholds=range(args.steps + 1), inline_thresholds=[], nb_transforms=args.crops,
            progress=False, model_input_size=(size, size), model_input_range=(0, 1),
            accent_reg_layer=faccent_name(pair["reg"]), accent_reg_alpha=lam)
    beta = float("nan")
    for line in printed.getvalue().splitlines():
        if line.startswith("obj/reg ratio:"):
            beta = float(line.split(":")[1])
    return imgs[-1][:1].float(), beta, time.perf_counter() - started


def frontier_r(points: list[tuple[float, float]], gain: float) -> float | None:
    """R of a (gain, R) frontier at ``gain``, linear between the two nearest sweep points."""
    points = sorted(points)
    for (g0, r0), (g1, r1) in zip(points, points[1:]):
        if g0 <= gain <= g1 and g1 > g0:
            return r0 + (r1 - r0) * (gain - g0) / (g1 - g0)
    return None


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(11, 7.5))
    for ax, res in zip(axes.flat, results):
        for name, style in (("phosphene", "o-"), ("faccent", "s--"), ("phosphene_style", "g^")):
            pts = sorted((p["R"], p["gain"], p["lam"]) for p in res[name])
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=6 if name == "phosphene_style" else 4,
                    label={"phosphene_style": 'phosphene, style="phosphene"'}.get(name, name))
            for r, g, lam in pts:
                if lam == 1.0 and name != "phosphene_style":
                    ax.plot([r], [g], "k*", ms=9)
        ax.set_title(res["label"], fontsize=7.5)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("R (latent distance to the seed)")
    fig.supylabel("gain in f")
    fig.suptitle("gain vs R over λ (★ = λ 1; ▲ = λ 1 in phosphene's earlier style)", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)


def summarize(results: list[dict]) -> dict:
    gain_ratio, r_ratio, beyond, matching = [], [], [], []
    for res in results:
        p1 = next(p for p in res["phosphene"] if p["lam"] == 1.0)
        f1 = next(p for p in res["faccent"] if p["lam"] == 1.0)
        gain_ratio.append(p1["gain"] / f1["gain"] if f1["gain"] else float("nan"))
        r_ratio.append(p1["R"] / f1["R"] if f1["R"] else float("nan"))
        front = [(p["gain"], p["R"]) for p in res["phosphene"]]
        lam = frontier_r([(p["gain"], p["lam"]) for p in res["phosphene"]], f1["gain"])
        if lam is not None:  # phosphene's λ whose gain equals faccent's at λ = 1
            matching.append(lam)
        for f in res["faccent"]:
            r = frontier_r(front, f["gain"])
            if r is not None:
                beyond.append(r / f["R"])
    return {"median_gain_ratio_lam1": statistics.median(gain_ratio),
            "median_R_ratio_lam1": statistics.median(r_ratio),
            "gain_ratios_lam1": [round(v, 3) for v in gain_ratio],
            "R_ratios_lam1": [round(v, 3) for v in r_ratio],
            "frontier_R_ratio_at_faccent_gain": [round(v, 3) for v in beyond],
            "median_frontier_R_ratio": statistics.median(beyond) if beyond else None,
            "phosphene_lam_matching_faccent_lam1_gain": [round(v, 3) for v in matching],
            "median_matching_lam": statistics.median(matching) if matching else None}


def select(spec: str) -> list[int]:
    """Pair indices from "0-5", "0,7,10" or "0-2,7"."""
    out = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--crops", type=int, default=6)
    ap.add_argument("--lams", default="0.5,1,2,4", help="phosphene's sweep (one batch)")
    ap.add_argument("--faccent-lams", default="0.5,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", default="0-11",
                    help="which of the 12 pairs: a range 0-5 or a list 0,7,10 (split a run)")
    ap.add_argument("--no-reference", action="store_true",
                    help='skip phosphene\'s λ = 1 in style="phosphene" (the reference point)')
    ap.add_argument("--merge", nargs="*", default=None,
                    help="only merge these --json files of split runs (summary, plot; a pair in several "
                         "files counts once; --size must be the runs')")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)
    if args.merge:
        merged = {res["label"]: res for path in args.merge
                  for res in json.loads(Path(path).read_text())["pairs"]}
        order = [pair["label"] for pair in pairs(phosphene.load_model("efficientnet_lite0"), args.size)]
        rank = {label: i for i, label in enumerate(order)}
        return finish(sorted(merged.values(), key=lambda res: rank.get(res["label"], len(rank))), args)
    torch.set_num_threads(args.threads)
    model = phosphene.load_model("efficientnet_lite0")
    chosen = select(args.pairs)
    lams = [float(v) for v in args.lams.split(",")]
    flams = [float(v) for v in args.faccent_lams.split(",")]
    results = []
    for pair in [p for i, p in enumerate(pairs(model, args.size)) if i in chosen]:
        seed, objective, reg = pair["seed"], pair["objective"], pair["reg"]
        f_seed, _ = measure(model, objective, reg, seed, seed, 0)
        res = {"label": pair["label"], "reg": reg, "f_seed": float(f_seed[0]),
               "phosphene": [], "phosphene_style": [], "faccent": []}
        runs = [("faccent", "phosphene", lams)] + ([] if args.no_reference
                                                   else [("phosphene", "phosphene_style", [1.0])])
        for style, key, sweep in runs:
            out = accentuate(model, objective, seed, reg, lam=sweep, steps=args.steps, crops=args.crops,
                             input_size=args.size, progress=False, style=style)
            f, r = measure(model, objective, reg, out.images, seed, 16)
            res[f"beta_{key}"] = float(out.beta[0])
            res[key] = [{"lam": lam, "gain": float(f[i] - f_seed[0]), "R": float(r[i])}
                        for i, lam in enumerate(sweep)]
            res[f"{key}_s"] = round(out.seconds, 1)
        for lam in flams:
            image, beta, seconds = run_faccent(model, pair, lam, args)
            f, r = measure(model, objective, reg, image, seed, 16)
            res["faccent"].append({"lam": lam, "gain": float(f[0] - f_seed[0]), "R": float(r[0]),
                                   "seconds": round(seconds, 1)})
            res["beta_faccent"] = beta
        p1 = next(p for p in res["phosphene"] if p["lam"] == 1.0)
        f1 = next(p for p in res["faccent"] if p["lam"] == 1.0)
        print(f"{pair['label']:<40} β faccent {res['beta_faccent']:.4g} phosphene "
              f"{res['beta_phosphene']:.4g} | λ1 gain/R phosphene {p1['gain']:+.2f}/{p1['R']:.2f} "
              f"faccent {f1['gain']:+.2f}/{f1['R']:.2f}", flush=True)
        results.append(res)
        if args.json:  # partial results survive an interrupted run
            Path(args.json).write_text(json.dumps({"settings": vars(args), "pairs": results}, indent=1))
    return finish(results, args)


def finish(results: list[dict], args) -> dict:
    """Summary, JSON and plot of the pairs' results."""
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "settings": vars(args),
           "summary": summarize(results), "pairs": results, "torch": torch.__version__,
           "python": platform.python_version()}
    print(json.dumps(out["summary"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(results, args.plot)
    return out


if __name__ == "__main__":
    main()
