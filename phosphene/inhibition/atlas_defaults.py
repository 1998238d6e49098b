"""Atlas grid size and cell threshold chosen from the number of laid-out images.

A fixed 20 x 20 grid with cells of more than 5 images suits thousands of images; on a few hundred
(the README's 500 samples lay out about 300) no cell survives. The defaults here aim at about four
images per cell on average: ``grid = round(sqrt(n / 4))`` clamped to 3..20, and a cell is kept when it
holds more than ``min_points = clamp(n // 400, 1, 5)`` images (1 below 800 images: two or more).
"""

from __future__ import annotations

import math

MIN_GRID, MAX_GRID = 3, 20
POINTS_PER_CELL = 4


def auto_grid(n: int) -> int:
    """Grid side for ``n`` laid-out images: about four images per cell, 3 to 20 cells a side."""
    return max(MIN_GRID, min(MAX_GRID, round(math.sqrt(max(n, 0) / POINTS_PER_CELL))))


def auto_min_points(n: int) -> int:
    """Cells are kept when they hold more than this many of ``n`` images: 1 below 800, up to 5."""
    return max(1, min(5, n // 400))


def sparse_hint(n: int, grid: int, min_points: int, kept: int) -> str | None:
    """A hint when few cells survive (fewer than 10, or under a tenth of what the images could fill)."""
    could_fill = min(grid * grid, n // (min_points + 1))
    if kept >= 10 or kept >= 0.1 * could_fill and kept >= 4:
        return None
    smaller = max(2, auto_grid(n) - 2)
    return (f"only {kept} of {grid}x{grid} cells hold more than {min_points} of the {n} laid-out images; "
            f"for more icons try --grid {min(smaller, grid - 1)} or --min-points {max(0, min_points - 1)}, "
            "or give more images")
