"""Results show themselves in Jupyter (`phosphene.io.display`): well-formed HTML with every picture
embedded, a PNG sheet, ``show()`` with matplotlib, bounded sizes; and importing phosphene never
changes a notebook's matplotlib backend."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import torch
from conftest import REPO
from PIL import Image

import phosphene
from phosphene import objectives as obj
from phosphene.io import display
from phosphene.io.display import Gallery, Section, View, tiles

MB = 1024 * 1024


def _embedded(html: str) -> list[str]:
    """The data URIs of the ``<img>`` tags of an HTML view."""
    return re.findall(r'<img src="(data:image/(?:jpeg|png);base64,[A-Za-z0-9+/=]+)"', html)


def _check_html(html: str) -> ET.Element:
    """Well-formed (parses as XML), no script, no external file; returns the root ``div``."""
    root = ET.fromstring(html)
    assert root.tag == "div" and "<script" not in html
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', html))
    return root


def _bundle_bytes(result) -> int:
    bundle = result._repr_mimebundle_()
    return len(bundle["text/html"].encode()) + len(bundle["image/png"])


def _noise_render(n: int = 16, side: int = 224) -> phosphene.RenderResult:
    """A RenderResult of uniform noise: the worst case for JPEG and PNG sizes."""
    gen = torch.Generator().manual_seed(0)
    images, mask = torch.rand(n, 3, side, side, generator=gen), torch.rand(n, 1, side, side, generator=gen)
    history, final = torch.rand(64, n, generator=gen), torch.rand(n, generator=gen)
    return phosphene.RenderResult(images, history, final, mask, [f"layer:{i}" for i in range(n)],
                                  {"objective": "noise", "param": "fourier"})


def test_a_16_unit_224px_render_shows_every_image_in_under_2_mb():
    result = _noise_render()
    html = result._repr_html_()
    _check_html(html)
    assert len(_embedded(html)) == 16 + 1  # the images and the objective-per-step plot
    assert _bundle_bytes(result) < 2 * MB


def test_html_view_has_the_captions_and_key_numbers_escaped():
    view = View("a <title> & more", {"f": 1.23456, "name": "<x>"},
                [Section("s", tiles(torch.zeros(2, 3, 8, 8), ["one\ntwo", "E⁺ <3"]))])
    html = display.to_html(view)
    root = _check_html(html)
    text = "".join(root.itertext())
    assert "a <title> & more" in text and "1.235" in text and "<x>" in text and "E⁺ <3" in text


def test_thumbnails_are_shrunk_to_the_thumbnail_side():
    html = display.to_html(View("tall", sections=[Section("s", tiles(torch.rand(1, 3, 600, 300)))]))
    (uri,) = _embedded(html)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.size == (display.THUMB // 2, display.THUMB)  # (width, height), the aspect kept


def test_a_section_shows_at_most_max_tiles_and_counts_the_rest():
    view = View("many", sections=[Section("s", tiles(torch.rand(display.MAX_TILES + 5, 3, 8, 8)))])
    html = display.to_html(view)
    assert len(_embedded(html)) == display.MAX_TILES and "and 5 more" in html


def test_png_repr_is_one_sheet_at_most_eight_tiles_wide():
    png = _noise_render(12, 96)._repr_png_()
    sheet = Image.open(io.BytesIO(png))
    assert sheet.format == "PNG" and sheet.width <= 8 * (display.SHEET_TILE + 6) + 6
    assert sheet.height > 2 * display.SHEET_TILE  # two rows of images, the plot, the text


def test_show_draws_the_sheet_with_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    figure = _noise_render(4, 32).show()
    assert len(figure.axes) == 1 and figure.axes[0].images


def test_mimebundle_honours_formats_and_exclude(monkeypatch):
    result = _noise_render(2, 32)
    assert set(result._repr_mimebundle_(exclude=["image/png"])) == {"text/plain", "text/html"}
    monkeypatch.setattr(display, "FORMATS", {"html"})
    bundle = result._repr_mimebundle_()
    assert "image/png" not in bundle and bundle["text/plain"].startswith("render: noise")


def test_gallery_shows_any_pictures():
    pictures = [np.zeros((5, 5, 3), np.uint8), torch.ones(1, 5, 5)]  # an array and a grayscale tensor
    gallery = Gallery(View("mine", sections=[Section("s", tiles(pictures))]))
    assert len(_embedded(gallery._repr_html_())) == 2


def test_accentuation_repr_shows_four_panels_per_row_with_f_and_r(model):
    seed = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    result = phosphene.accentuate(model, obj.class_logit(1), seed, reg_layer="_blocks.4", lam=[0, 1], steps=2,
                                  crops=1, measure_crops=1, progress=False)
    html = result._repr_html_()
    _check_html(html)
    assert len(_embedded(html)) == 2 * 4 + 2  # four panels per accentuation, the f and R plots
    assert "reg layer" in html and "R=" in html and "λ=1" in html


def test_inversion_repr_shows_the_seed_map_and_the_five_panels_with_e_plus_and_e_minus(model):
    from phosphene.inhibition.inversion import PANELS, invert

    seed = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    result = invert(model, seed, "_blocks.9:5", "_blocks.6", steps=1, crops=1, progress=False)
    html = result._repr_html_()
    _check_html(html)
    assert len(_embedded(html)) == 3 + len(PANELS)
    assert "E⁺" in html and "E⁻" in html and "unit visualization f=" in html


def test_atlas_repr_shows_the_atlas_and_its_layout():
    from phosphene.inhibition.atlas import AtlasResult, Cell

    n, icons = 12, torch.rand(2, 3, 16, 16)
    result = AtlasResult("attribution", "_blocks.7", phosphene.units.parse_unit("_blocks.8:3"), 3,
                         np.random.default_rng(0).random((n, 2)), np.random.default_rng(1).random((n, 8)),
                         np.linspace(-1, 1, n), [REPO] * n, torch.rand(n, 3, 16, 16),
                         [Cell(0, 0, np.arange(6)), Cell(1, 2, np.arange(6, 12))], icons,
                         np.array([0.5, -0.5]), {"images": 40, "min_points": 5, "hint": "a hint"})
    html = result._repr_html_()
    _check_html(html)
    assert len(_embedded(html)) == 2 and "cells</b> 2" in html and "a hint" in html


def test_mining_run_repr_shows_the_best_image_of_the_first_units(report_run):
    from phosphene import mining

    run = mining.open(report_run)
    html = run._repr_html_()
    _check_html(html)
    assert len(_embedded(html)) == 2 * 8 and "_blocks.8" in html  # two layers, units 0-7
    unit = run.view_unit("_blocks.8", 3, k=2)._repr_html_()
    assert len(_embedded(unit)) == 4  # top 2 and bottom 2


def test_tension_report_repr_shows_the_pictures_it_wrote(model, samples_dir, tmp_path):
    from phosphene.inhibition.tension import tension_report

    images = tmp_path / "images"
    images.mkdir()
    for path in sorted(samples_dir.iterdir())[:6]:
        (images / path.name).symlink_to(path)
    report = tension_report(model, images, "_blocks.8._relu1:337", ["_blocks.7"], tmp_path / "out", n=2,
                            num_workers=0, size=48, progress=False)
    html = report._repr_html_()
    _check_html(html)
    # scatter, completeness, categories, MEIs, MIIs, MTIs, category examples
    assert len(_embedded(html)) == 7 and "max T" in html
    table = display.to_html(report.table._view(n=2))  # the table alone: images without the φ maps
    assert len(_embedded(table)) == 1 + 3 * 2  # the scatter, then 2 images per selection


def test_importing_and_plotting_leaves_the_matplotlib_backend_alone(tmp_path):
    code = ("import matplotlib, numpy as np\n"
            "from phosphene.inhibition import atlas, tension_plots as p\n"
            "p.scatter_plot({'l': np.ones(3)}, {'l': np.arange(3.0)}, np.arange(3.0) - 1, {}, 't')\n"
            "atlas.scatter_figure(np.random.rand(5, 2), np.arange(5.0) - 2, np.ones(5), 4, 'a.png', 't')\n"
            "print(matplotlib.get_backend())\n")
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg" and (tmp_path / "a.png").stat().st_size > 0


def test_progress_bars_default_to_on_in_a_jupyter_kernel(monkeypatch):
    from phosphene.io.progress import in_notebook, progress_enabled

    class Shell:
        config = {"IPKernelApp": {}}

    class FakeIPython:
        @staticmethod
        def get_ipython():
            return Shell()

    assert not in_notebook()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_enabled(None) is False
    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    assert in_notebook() and progress_enabled(None) is True and progress_enabled(False) is False
