"""The atlas' HTML page: the icon grid; hovering a cell shows the dataset images that fell in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.colors
import numpy as np

from ..io.images import atomic_write_bytes

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
 #wrap { display: flex; gap: 16px; align-items: flex-start; }
 /* the grid shrinks to the room the panel leaves, so the panel stays inside the viewport */
 #atlas { flex: 1 1 auto; min-width: 0; max-width: {{ grid * (cell + 1) }}px; display: grid;
          grid-template-columns: repeat({{ grid }}, minmax(0, 1fr)); gap: 1px; background: #eee; }
 .cell { aspect-ratio: 1 / 1; background: #fff; box-sizing: border-box; min-width: 0; }
 .cell img { width: 100%; height: 100%; display: block; }
 .icon { border: 3px solid; cursor: pointer; }
 #panel { flex: 0 0 auto; width: min(340px, 35vw); position: sticky; top: 8px;
          max-height: calc(100vh - 16px); overflow-y: auto; }
 #panel img { width: 72px; height: 72px; margin: 2px; }
 .muted { color: #777; font-size: 13px; }
</style></head><body>
<h1 style="font-size:18px">{{ title }}</h1>
<p class="muted">Icon frame: mean f of the cell's images (blue &lt; 0 &lt; red).
 Hover a cell to see its dataset images.
 <a href="atlas.png">atlas.png</a> · <a href="scatter.png">scatter.png</a> ·
 <a href="atlas.json">atlas.json</a></p>
<div id="wrap"><div id="atlas">
{% for r in range(grid) %}{% for c in range(grid) %}{% set k = index.get((r, c)) %}
{% if k is not none %}<div class="cell icon" data-cell="{{ k }}" style="border-color: {{ colours[k] }}">
<img src="{{ cells[k].icon }}" alt="cell {{ r }},{{ c }}"></div>
{% else %}<div class="cell"></div>{% endif %}
{% endfor %}{% endfor %}
</div><div id="panel"><p class="muted">Hover a cell.</p></div></div>
<script>
const CELLS = {{ cells_json | safe }};
const panel = document.getElementById("panel");
document.querySelectorAll(".icon").forEach(el => el.addEventListener("mouseenter", () => {
  const cell = CELLS[+el.dataset.cell];
  panel.replaceChildren();
  const head = document.createElement("p");
  head.textContent = `cell (${cell.row}, ${cell.col}): ${cell.members.length} images, ` +
                     (cell.cell_f === null ? "" : `mean f ${cell.cell_f.toFixed(2)}, `) +
                     `f on icon ${cell.icon_f.toFixed(2)}`;
  panel.appendChild(head);
  for (const m of cell.members) {
    const img = document.createElement("img");
    img.src = m.thumb; img.title = `${m.path}  f=${m.f.toFixed(2)}`;
    panel.appendChild(img);
  }
}));
</script></body></html>
"""


def diverging_colours(values: np.ndarray) -> np.ndarray:
    """(K,) values -> (K, 3) RGB in [0, 1] on a blue-white-red scale centred at 0."""
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm

    bound = max(float(np.abs(values).max()), 1e-6)
    norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    return colormaps["RdBu_r"](norm(values))[:, :3]


def write_page(path: Path, record: dict[str, Any], title: str, cell: int = 64) -> None:
    """Render the page for an atlas ``record`` (as written to atlas.json) to ``path``."""
    from jinja2 import Environment, select_autoescape  # the ``atlas`` extra

    cells = record["cells"]
    values = np.array([c["icon_f"] if c.get("cell_f") is None else c["cell_f"] for c in cells])
    colours = [matplotlib.colors.to_hex(rgb) for rgb in diverging_colours(values)] if cells else []
    env = Environment(autoescape=select_autoescape(default=True))
    html = env.from_string(_TEMPLATE).render(
        title=title, grid=record["grid"], cell=cell, cells=cells, colours=colours,
        index={(c["row"], c["col"]): k for k, c in enumerate(cells)},
        cells_json=json.dumps([{"row": c["row"], "col": c["col"], "icon_f": c["icon_f"],
                                "cell_f": c.get("cell_f"),
                                "members": [{"path": Path(m["path"]).name, "f": m["f"], "thumb": m["thumb"]}
                                            for m in c["members"]]} for c in cells]).replace("</", "<\\/"),
    )
    atomic_write_bytes(path, html.encode())
