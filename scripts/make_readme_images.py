"""Make every picture README shows (docs/images/) by running the commands README prints beside it.

    python scripts/make_readme_images.py [--only visualizations,accentuation,mti,atlas,report,psychophysics]

Each entry of `FIGURES` names a picture, the README commands that make it (verbatim; the test
tests/test_readme_images.py checks that each command is in README in the picture's section and that
the picture's caption names the same layer, unit and class as the command) and the file they write.
The commands run from the checkout root, as a reader would run them (outputs under out/ and runs/,
both git-ignored); the picture is that file scaled to README's width (the report picture is a
headless-Chromium screenshot of the unit page). Needs ../shared/data/imagenet-samples.
"""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
SAMPLES = "../shared/data/imagenet-samples"


@dataclass(frozen=True)
class Figure:
    """A README picture: the commands that make it, the file they write, the width it is shown at."""

    name: str
    commands: tuple[str, ...]
    output: str  # a PNG the last command writes, or an HTML page to screenshot
    width: int


FIGURES: tuple[Figure, ...] = (
    Figure("visualizations.jpg",
           ("phosphene render --layer _blocks.8 --channels 0-7 --steps 64 --size 128 --out out/quickstart",),
           "out/quickstart/grid.png", 880),
    Figure("accentuation.jpg",
           (f"phosphene accentuate --image {SAMPLES}/n01440764_tench.JPEG {SAMPLES}/n01514859_hen.JPEG "
            "--class 1 --reg-layer _blocks.8 --lam 1 --out out/accent",),
           "out/accent/figure.png", 640),
    Figure("mti.jpg",
           (f"phosphene tension --images {SAMPLES} --target _blocks.8._relu1:337 --attr-layer _blocks.7 "
            "--attr-layer _blocks.4 --out out/tension337",),
           "out/tension337/mti.png", 760),
    Figure("atlas.jpg",
           (f"phosphene atlas --images {SAMPLES} --target _blocks.8._relu1:337 --attr-layer _blocks.7 "
            "--out out/atlas337",),
           "out/atlas337/atlas.png", 480),
    Figure("report-unit.jpg",
           (f"phosphene mine --layers _blocks.4,_blocks.8 --images {SAMPLES} --k 16 --out runs/report",
            "phosphene report runs/report --layers _blocks.8 --units 0-3 --quality standard --out out/quick"),
           "out/quick/_blocks.8/units/0003.html", 900),
    Figure("psychophysics.jpg",
           (f"phosphene mine --layers _blocks.2,_blocks.7,_blocks.13 --images {SAMPLES} --k 16 "
            "--out runs/psy",
            "phosphene experiment stimuli --run runs/psy --units-per-layer 6 --quality draft "
            "--out out/stimuli",
            "phosphene experiment simulate out/stimuli --observer efficientnet_lite1 --out out/machine"),
           "out/machine/accuracy.png", 720),
)


def normalized(command: str) -> str:
    """A command with line continuations and repeated spaces removed (how README's are compared)."""
    return " ".join(command.replace("\\\n", " ").split())


def run(command: str) -> float:
    """Run one README command from the checkout root; its wall time. Fails loudly."""
    started = time.perf_counter()
    print(f"$ {command}", flush=True)
    done = subprocess.run(shlex.split(command), cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {command}")
    return time.perf_counter() - started


def screenshot(page: Path) -> Image.Image:
    """The top of an HTML page in headless Chromium, once its images have loaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1180, "height": 1500})
        tab.goto(page.as_uri())
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        shot = tab.screenshot(full_page=False)
        browser.close()
    return Image.open(io.BytesIO(shot))


def save_small(picture: Image.Image, name: str, width: int) -> Path:
    """Scale to at most ``width`` px wide and save as JPEG (quality 85) in docs/images/."""
    if picture.width > width:
        height = round(picture.height * width / picture.width)
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    path = OUT / name
    picture.convert("RGB").save(path, quality=85, optimize=True)
    return path


def make(figure: Figure) -> None:
    seconds = sum(run(command) for command in figure.commands)
    output = REPO / figure.output
    picture = screenshot(output) if output.suffix == ".html" else Image.open(output)
    path = save_small(picture, figure.name, figure.width)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} KB, commands took {seconds:.0f} s",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [f.name.rsplit(".", 1)[0] for f in FIGURES]
    parser.add_argument("--only", default=",".join(names), help="comma-separated: " + ",".join(names))
    args = parser.parse_args()
    wanted = args.only.split(",")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown picture(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for figure in FIGURES:
        if figure.name.rsplit(".", 1)[0] in wanted:
            make(figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
