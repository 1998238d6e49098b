"""The atlas page in a real headless Chromium at 1280 x 800: a 20 x 20 grid with many images per
cell keeps the hover panel inside the viewport."""

from __future__ import annotations

import pytest
from PIL import Image

from phosphene.inhibition.atlas_page import write_page

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _record(tmp_path, grid: int = 20, members: int = 40) -> dict:
    Image.new("RGB", (64, 64), (200, 80, 80)).save(tmp_path / "icon.png")
    Image.new("RGB", (72, 72), (80, 80, 200)).save(tmp_path / "thumb.jpg")
    cells = [{"row": r, "col": c, "icon_f": float(r - c), "icon": "icon.png",
              "members": [{"path": f"img{i}.jpg", "f": 0.5, "thumb": "thumb.jpg"} for i in range(members)]}
             for r in range(grid) for c in range(grid) if (r + c) % 3 == 0]
    return {"grid": grid, "cells": cells}


@pytest.mark.parametrize("width", [1280, 1400])
def test_hover_panel_stays_inside_the_viewport(chromium, tmp_path, width):
    from playwright.sync_api import sync_playwright

    write_page(tmp_path / "index.html", _record(tmp_path), "atlas")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto((tmp_path / "index.html").as_uri())
            page.hover('.icon[data-cell="5"]')
            page.wait_for_function("document.querySelectorAll('#panel img').length == 40")
            panel = page.locator("#panel").bounding_box()
            atlas = page.locator("#atlas").bounding_box()
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert panel["x"] >= atlas["x"] + atlas["width"] and panel["x"] + panel["width"] <= width
    assert 0 <= panel["y"] < 200 and panel["height"] <= 800 and scroll_width <= width  # scrolls inside
