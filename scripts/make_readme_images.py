"""Make the small pictures that README shows (docs/images/, a few hundred KB in all).

    python scripts/make_readme_images.py --samples ../shared/data/imagenet-samples --run RUN \
        [--only visualizations,accentuation,mti,atlas,psychophysics,report] [--steps 96]

RUN is a mining run of the samples with `_blocks.8` (`phosphene mine --layers _blocks.4,_blocks.8
--images ../shared/data/imagenet-samples --k 16 --out RUN`). Each picture comes from the public API
the README documents:

- visualizations.jpg: `render` of channels 0-7 of `_blocks.8` (fourier, standard transforms);
- accentuation.jpg: `accentuate` of class 'tench' in a sample image (`AccentuationResult.figure`);
- mti.jpg: the 4 most tense of 96 sample images for `_blocks.8:3` through `_blocks.7`, with their
  φ⁺/φ⁻ maps (`attribute` + `tension_score` + `tension_plots.example_grid`);
- atlas.jpg: an activation atlas of `_blocks.8` over 300 sample images (`build_atlas`);
- psychophysics.png: docs/psychophysics-machine.png (made by the commands in docs/psychophysics.md),
  scaled down;
- report-unit.jpg: a headless-Chromium screenshot of a unit page of `phosphene report` on RUN.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402

OUT = REPO / "docs" / "images"
WIDTH = 880


def save_small(picture: Image.Image, name: str, width: int = WIDTH) -> None:
    """Scale to at most ``width`` px wide and save as JPEG (quality 82) or optimized PNG."""
    if picture.width > width:
        height = round(picture.height * width / picture.width)
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    path = OUT / name
    if path.suffix == ".jpg":
        picture.convert("RGB").save(path, quality=82, optimize=True)
    else:
        picture.save(path, optimize=True)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} KB", flush=True)


def samples(folder: Path, n: int, size: int) -> tuple[torch.Tensor, list[Path]]:
    paths = phosphene.io.images.list_images(folder)[:n]
    return torch.stack([phosphene.load_image(p, size) for p in paths]), paths


def visualizations(model, args) -> None:
    result = phosphene.render(model, obj.channel("_blocks.8", range(8)), steps=args.steps, size=128,
                              progress=False)
    labels = [f"_blocks.8:{u}" for u in range(8)]
    save_small(phosphene.image_grid(result.images, labels, columns=8), "visualizations.jpg")


def accentuation(model, args) -> None:
    seed = phosphene.load_image(phosphene.io.images.list_images(args.samples)[0], 160)
    result = phosphene.accentuate(model, obj.class_logit(0), seed, reg_layer="_blocks.8", lam=[0.5, 2.0],
                                  steps=max(16, args.steps // 2), crops=4, input_size=160)
    save_small(result.figure(), "accentuation.jpg", 640)


def mti(model, args) -> None:
    from phosphene.attribution import attribute
    from phosphene.inhibition.tension import tension_score
    from phosphene.inhibition.tension_plots import example_grid

    images, _ = samples(args.samples, 96, 160)
    r = attribute(model, images, "_blocks.8:3", ["_blocks.7"], batch_size=16)
    la = r.layers["_blocks.7"]
    t = tension_score(la.e_plus.numpy(), la.e_minus.numpy())
    top = torch.as_tensor(t).argsort(descending=True)[:4]
    maps = attribute(model, images[top], "_blocks.8:3", ["_blocks.7"], maps=True).layers["_blocks.7"]
    captions = [f"T {t[i]:.2f}  f {r.f[i]:.2f}" for i in top.tolist()]
    with tempfile.TemporaryDirectory() as tmp:
        example_grid(images[top], maps.phi_plus, maps.phi_minus, captions,
                     "most tense images of _blocks.8:3 and their φ⁺/φ⁻ maps", Path(tmp) / "mti.png")
        save_small(Image.open(Path(tmp) / "mti.png"), "mti.jpg", 760)


def atlas(model, args) -> None:
    from phosphene.inhibition.atlas import build_atlas

    images, paths = samples(args.samples, 300, 128)
    result = build_atlas(model, images, paths, "_blocks.8", None, mode="activation", grid=10, min_points=2,
                         icon_size=48, steps=max(32, args.steps // 2), seed=0, progress=False)
    save_small(result.image(), "atlas.jpg", 480)


def psychophysics(model, args) -> None:
    save_small(Image.open(REPO / "docs" / "psychophysics-machine.png").convert("RGB"), "psychophysics.jpg",
               720)


def report(model, args) -> None:
    from playwright.sync_api import sync_playwright

    from phosphene.report import ReportSettings, build_report

    settings = ReportSettings(steps=args.steps, size=112, diverse=4, batch=1, k=6, probe=64, mtis=3,
                              accent_steps=max(8, args.steps // 4), accent_crops=2, accent_top=2,
                              accent_unrelated=1)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_report(args.run, ["_blocks.8"], site, [3], model=model, settings=settings, progress=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1180, "height": 1500})
            page.goto((site / "_blocks.8" / "units" / "0003.html").as_uri())
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            shot = page.screenshot(full_page=False)
            browser.close()
    save_small(Image.open(io.BytesIO(shot)), "report-unit.jpg", 900)


MAKERS = {"visualizations": visualizations, "accentuation": accentuation, "mti": mti, "atlas": atlas,
          "psychophysics": psychophysics, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "data" / "imagenet-samples")
    parser.add_argument("--run", type=Path, help="mining run with _blocks.8 (for the report screenshot)")
    parser.add_argument("--only", default=",".join(MAKERS))
    parser.add_argument("--steps", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    for name in args.only.split(","):
        MAKERS[name](model, args)


if __name__ == "__main__":
    main()
