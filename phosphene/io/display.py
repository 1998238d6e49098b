"""Results that show themselves: HTML and PNG in Jupyter, ``.show()`` with matplotlib elsewhere.

A result describes what to show as a `View`: a title, key numbers, sections of captioned pictures
(tensors (C, H, W) in [0, 1], PIL images, uint8 arrays, files or matplotlib figures) and an optional
table. Inheriting `Rich` and defining ``_view()`` gives a class all three displays::

    class Dictionary(Rich):
        def _view(self) -> View:
            return View(f"{self.method} dictionary of {self.layer}", {"atoms": len(self.atoms)},
                        table=[{"atom": k, "energy": e} for k, e in enumerate(self.energy)])

- ``_repr_html_``: thumbnails (at most `THUMB` px, figures `PLOT` px) inlined as base64 JPEG (PNG for
  plots), captions and numbers as text; well-formed XHTML, no scripts, no external files.
- ``_repr_png_``: the same as one `sheet` (PIL, tiles of `SHEET_TILE` px, matplotlib's DejaVu font),
  a 256-colour PNG.
- ``show()``: that sheet in a pyplot figure (a window, or inline in a notebook); returns the figure.

Jupyter stores every format a result offers; ``phosphene.display.FORMATS`` says which (drop
``"png"`` to halve a notebook's size, at the cost of PDF/LaTeX exports losing the pictures).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import to_uint8

if TYPE_CHECKING:  # matplotlib is imported where a figure is made (a slow import)
    from matplotlib.figure import Figure

THUMB = 128  # longest side of an image thumbnail in the HTML view
PLOT = 420  # longest side of a plot in the HTML view
SHEET_TILE = 112  # tile side in the PNG sheet and in show()
MAX_TILES = 64  # pictures per section (the rest are counted, not shown)
MAX_ROWS = 40  # rows of a table
FORMATS = {"html", "png"}  # what `Rich` offers to Jupyter

Picture = Union[torch.Tensor, Image.Image, np.ndarray, Path, str, "Figure"]


@dataclass
class Tile:
    """One picture with its caption (lines separated by newlines). ``plot``: a chart (kept larger,
    PNG-encoded) rather than an image; ``side``: its longest side in the HTML view (default `THUMB`,
    `PLOT` for plots)."""

    picture: Picture
    caption: str = ""
    plot: bool = False
    side: int | None = None

    @property
    def html_side(self) -> int:
        return self.side or (PLOT if self.plot else THUMB)

    @property
    def sheet_side(self) -> int:
        return min(self.side, 5 * SHEET_TILE) if self.side else (3 if self.plot else 1) * SHEET_TILE


@dataclass
class Section:
    """A row (wrapping) of tiles under a heading, with an optional note."""

    title: str
    tiles: list[Tile]
    note: str = ""


@dataclass
class View:
    """Everything a display shows: title, key numbers, sections of pictures, a table, a note."""

    title: str
    numbers: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def tiles(pictures: Sequence[Picture], captions: Sequence[str] | None = None) -> list[Tile]:
    """Tiles of ``pictures`` (an (N, C, H, W) tensor or a list) with their captions."""
    captions = list(captions) if captions is not None else [""] * len(pictures)
    return [Tile(p, c) for p, c in zip(pictures, captions)]


def number(value: Any) -> str:
    """A key number as text: floats with 4 significant digits, the rest as ``str``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def new_figure(figsize: tuple[float, float], dpi: float = 100) -> Figure:
    """A matplotlib figure with an Agg canvas, made without pyplot: drawing and saving it never
    changes the caller's backend (a notebook's inline plots) and it needs no ``close``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def line_plot(series: torch.Tensor | np.ndarray, ylabel: str, xlabel: str = "step",
              labels: Sequence[str] | None = None, first: int = 1) -> Figure:
    """A small chart of ``series`` (T, N): one line per column (a legend for up to 8 ``labels``),
    the x axis counting from ``first`` (steps from 1; use 0 for indices such as atoms)."""
    values = np.asarray(series.detach().float().cpu() if isinstance(series, torch.Tensor) else series)
    values = values.reshape(len(values), -1)
    figure = new_figure((3.6, 2.2))
    ax = figure.subplots()
    lines = ax.plot(np.arange(first, first + len(values)), values, linewidth=0.9)
    if labels is not None and 1 < len(lines) <= 8:
        ax.legend(lines, labels, fontsize=6, frameon=False)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


# -- pictures ------------------------------------------------------------------------------------
def as_pil(picture: Picture) -> Image.Image:
    """Any `Picture` as an RGB (or L) PIL image."""
    if isinstance(picture, Image.Image):
        return picture if picture.mode in ("RGB", "L") else picture.convert("RGB")
    if isinstance(picture, (str, Path)):
        with Image.open(picture) as opened:
            return as_pil(opened.copy())
    if hasattr(picture, "savefig") and hasattr(picture, "canvas"):  # a matplotlib figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(picture)
        canvas.draw()
        return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    if isinstance(picture, torch.Tensor):
        return Image.fromarray(to_uint8(picture.detach().float().cpu()))
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)


def thumbnail(picture: Picture, side: int) -> Image.Image:
    """The picture shrunk (never enlarged) so that its longest side is at most ``side``."""
    image = as_pil(picture)
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def data_uri(image: Image.Image, fmt: str = "jpeg") -> str:
    """``data:image/...;base64,...`` of a PIL image (JPEG quality 85, or optimized PNG)."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return f"data:image/{fmt};base64,{base64.b64encode(buffer.getvalue()).decode()}"


# -- HTML ----------------------------------------------------------------------------------------
_BOX = "font-family:sans-serif;font-size:12px;line-height:1.35;max-width:100%"
_CAPTION = "font-size:11px;margin-top:2px;overflow-wrap:anywhere"


def _text(value: str) -> str:
    return "<br/>".join(html.escape(line) for line in str(value).split("\n"))


def _tile_html(tile: Tile) -> str:
    side = tile.html_side
    image = thumbnail(tile.picture, side)
    scale = min(side / max(image.size), 1.0 if tile.plot else 4.0)  # small images are drawn enlarged
    width, height = round(image.width * scale), round(image.height * scale)
    src = data_uri(image, "png" if tile.plot else "jpeg")
    alt = html.escape(tile.caption.replace("\n", " "), quote=True)
    return (f'<figure style="margin:0;width:{width}px"><img src="{src}" width="{width}" height="{height}" '
            f'alt="{alt}" style="image-rendering:auto;display:block"/>'
            f'<figcaption style="{_CAPTION}">{_text(tile.caption)}</figcaption></figure>')


def _section_html(section: Section) -> str:
    shown = section.tiles[:MAX_TILES]
    more = len(section.tiles) - len(shown)
    figures = "".join(_tile_html(t) for t in shown)
    extra = f'<div style="{_CAPTION}">… and {more} more</div>' if more > 0 else ""
    note = f'<div style="{_CAPTION};opacity:0.75">{_text(section.note)}</div>' if section.note else ""
    return (f'<div style="margin-top:8px"><div style="font-weight:600">{_text(section.title)}</div>'
            f'<div style="display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start">{figures}</div>'
            f"{extra}{note}</div>")


def _table_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f'<th style="text-align:left;padding:1px 8px 1px 0">{_text(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td style="padding:1px 8px 1px 0">{_text(number(row.get(c, "")))}'
                                    "</td>" for c in columns) + "</tr>" for row in rows[:MAX_ROWS])
    more = (f'<div style="{_CAPTION}">… {len(rows) - MAX_ROWS} more rows</div>'
            if len(rows) > MAX_ROWS else "")
    return (f'<table style="border-collapse:collapse;margin-top:8px;font-size:11px"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table>{more}")


def to_text(view: View) -> str:
    """The title and the key numbers, for frontends without HTML or pictures."""
    numbers = ", ".join(f"{k} {number(v)}" for k, v in view.numbers.items())
    return f"{view.title} ({numbers})" if numbers else view.title


def to_html(view: View) -> str:
    """The view as one self-contained XHTML fragment (a ``div``)."""
    numbers = " &#183; ".join(f"<b>{_text(k)}</b> {_text(number(v))}" for k, v in view.numbers.items())
    parts = [f'<div class="phosphene-view" style="{_BOX}">',
             f'<div style="font-weight:600;font-size:13px">{_text(view.title)}</div>']
    if numbers:
        parts.append(f"<div>{numbers}</div>")
    parts += [_section_html(s) for s in view.sections if s.tiles]
    parts.append(_table_html(view.table))
    if view.note:
        parts.append(f'<div style="{_CAPTION};opacity:0.75;margin-top:6px">{_text(view.note)}</div>')
    parts.append("</div>")
    return "".join(parts)


# -- the PNG sheet and show() ------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """matplotlib's DejaVu Sans (it draws φ, E⁺, λ, which PIL's default font cannot)."""
    from matplotlib import font_manager

    font = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
    return ImageFont.truetype(font_manager.findfont(font), size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels (at spaces; newlines kept)."""
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


class _Sheet:
    """A white canvas filled top to bottom: text lines and rows of captioned tiles (a flow layout)."""

    PAD = 6

    def __init__(self, width: int):
        self.width, self.y, self.items = width, self.PAD, []
        self.small, self.normal, self.bold = _font(10), _font(11), _font(13, bold=True)

    def text(self, text: str, font: ImageFont.FreeTypeFont, colour: str = "black") -> None:
        for line in _wrap(text, font, self.width - 2 * self.PAD):
            self.items.append(("text", (self.PAD, self.y), line, font, colour))
            self.y += font.size + 4

    def tiles(self, section: Section) -> None:
        x, row = self.PAD, 0
        for tile in section.tiles[:MAX_TILES]:
            image = thumbnail(tile.picture, tile.sheet_side)
            if image.width < SHEET_TILE and not tile.plot:  # small images enlarged to the tile side
                scale = SHEET_TILE / max(image.size)
                image = image.resize((round(image.width * scale), round(image.height * scale)),
                                     Image.Resampling.NEAREST)
            width = max(image.width, SHEET_TILE)
            caption = _wrap(tile.caption, self.small, width) if tile.caption else []
            if x + width > self.width - self.PAD and x > self.PAD:
                x, self.y, row = self.PAD, self.y + row + self.PAD, 0
            self.items.append(("image", (x, self.y), image))
            for i, line in enumerate(caption):
                xy = (x, self.y + image.height + 2 + i * 12)
                self.items.append(("text", xy, line, self.small, "black"))
            row = max(row, image.height + 4 + 12 * len(caption))
            x += width + self.PAD
        self.y += row + self.PAD
        more = len(section.tiles) - MAX_TILES
        if more > 0:
            self.text(f"… and {more} more", self.small)

    def image(self) -> Image.Image:
        canvas = Image.new("RGB", (self.width, self.y + self.PAD), "white")
        draw = ImageDraw.Draw(canvas)
        for kind, xy, *rest in self.items:
            if kind == "image":
                canvas.paste(rest[0].convert("RGB"), xy)
            else:
                draw.text(xy, rest[0], fill=rest[2], font=rest[1])
        return canvas


def sheet(view: View, columns: int = 8) -> Image.Image:
    """The view as one picture ``columns`` tiles wide: title, key numbers, each section's captioned
    tiles (plots three tiles wide), the table as text, the note."""
    page = _Sheet(columns * (SHEET_TILE + _Sheet.PAD) + _Sheet.PAD)
    page.text(view.title, page.bold)
    if view.numbers:
        page.text("   ".join(f"{k} {number(v)}" for k, v in view.numbers.items()), page.normal)
    for section in (s for s in view.sections if s.tiles):
        page.y += 4
        page.text(section.title, _font(11, bold=True))
        page.tiles(section)
        if section.note:
            page.text(section.note, page.small, "#555555")
    if view.table:
        names = list(dict.fromkeys(key for row in view.table for key in row))
        page.text("   ".join(names), _font(10, bold=True))
        for row in view.table[:MAX_ROWS]:
            page.text("   ".join(number(row.get(c, "")) for c in names), page.small)
    if view.note:
        page.text(view.note, page.small, "#555555")
    return page.image()


def to_png(view: View) -> bytes:
    """The view's `sheet` as a 256-colour PNG (a third of the full-colour size: it is the fallback
    for exports and frontends without HTML, where the full-colour thumbnails are)."""
    buffer = io.BytesIO()
    sheet(view).quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def show(view: View) -> Figure:
    """The view's `sheet` in a pyplot figure, shown with ``plt.show()`` (inline in a notebook)."""
    import matplotlib.pyplot as plt  # pyplot only here: importing phosphene never picks a backend

    picture = sheet(view)
    figure = plt.figure(figsize=(picture.width / 100, picture.height / 100), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.imshow(np.asarray(picture))
    ax.set_axis_off()
    plt.show()
    return figure


class Rich:
    """Mixin: ``_repr_mimebundle_`` (HTML and PNG from one ``_view()``), ``_repr_html_``,
    ``_repr_png_`` and ``show()``."""

    def _view(self) -> View:
        raise NotImplementedError

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        wanted = {"html": "text/html", "png": "image/png"}
        kinds = [k for k, mime in wanted.items() if k in FORMATS and (include is None or mime in include)
                 and (exclude is None or mime not in exclude)]
        view = self._view()
        bundle: dict[str, Any] = {"text/plain": to_text(view)}
        if "html" in kinds:
            bundle["text/html"] = to_html(view)
        if "png" in kinds:
            bundle["image/png"] = to_png(view)
        return bundle

    def _repr_html_(self) -> str:
        return to_html(self._view())

    def _repr_png_(self) -> bytes:
        return to_png(self._view())

    def show(self) -> Figure:
        """Display the result with matplotlib (a window, or inline in a notebook)."""
        return show(self._view())


class Gallery(Rich):
    """Any `View` (or pictures with captions) shown like a result::

        Gallery(View("top images", sections=[Section("unit 3", tiles(images, captions))]))
    """

    def __init__(self, view: View):
        self.view = view

    def _view(self) -> View:
        return self.view

    def __repr__(self) -> str:
        return f"Gallery({to_text(self.view)!r})"
