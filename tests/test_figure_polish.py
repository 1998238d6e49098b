"""Figure details (issue 26): legends clear of titles, unbroken notes, drawn key arrows, relative paths."""

from __future__ import annotations

import numpy as np

from phosphene.inhibition.colour_key import scale_key
from phosphene.inhibition.tension_plots import scatter_plot
from phosphene.io.captions import GRID_NOTE
from phosphene.io.images import wrap_note
from phosphene.report.build import relative_to


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_tension_scatter_legend_is_clear_of_the_title_and_the_panels():
    rng = np.random.default_rng(0)
    e = {"_blocks.7": rng.random(20), "_blocks.4": rng.random(20)}
    marks = {"mei": np.array([0, 1]), "mii": np.array([2]), "mti": np.array([3])}
    fig = scatter_plot(e, {k: rng.random(20) for k in e}, rng.normal(size=20), marks, "a long title " * 4)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert not _overlap(legend, fig._suptitle.get_window_extent(renderer))
    assert not any(_overlap(legend, ax.get_window_extent(renderer)) for ax in fig.axes)


def test_grid_note_breaks_at_spaces_only():
    for chars in range(8, 60):
        lines = wrap_note(GRID_NOTE, chars)
        assert not any(line.endswith("-") for line in lines), lines
        assert " ".join(lines) == GRID_NOTE


def test_colour_key_axes_are_drawn_arrows():
    key = (scale_key(96).permute(1, 2, 0).numpy() * 255).astype(int)
    dark = key.max(-1) < 60
    left, top = 14, 12
    side = 96 - top - 22
    assert dark[top + 2:top + side - 2, left - 7].all()  # the phi- axis: a vertical line
    assert dark[top + side + 5, left + 2:left + side - 2].all()  # the phi+ axis: a horizontal line


def test_report_paths_are_relative_to_the_run_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    assert relative_to(tmp_path / "images", tmp_path / "runs" / "r1") == "../../images"
    assert relative_to(tmp_path / "runs" / "r1" / "x", tmp_path / "runs" / "r1") == "x"
