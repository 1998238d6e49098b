"""The report in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), opened
from disk (file://): no console error, no broken image, a click opens a unit page whose sections are
all present with their images loaded, sorting reorders the grid, and a screenshot for the docs.

The screenshot goes to $PHOSPHENE_SCREENSHOTS (default: the test's tmp folder);
scripts/make_readme_images.py makes the one in docs/images/."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--allow-file-access-from-files",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECTIONS = ("visualizations", "exemplars", "tension", "accentuation", "objective", "neighbours", "regenerate")
BROKEN = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"

try:
    import playwright  # noqa: F401
    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason="Debian chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright is not installed (pip install -e '.[test]')"),
]


def _load_all_images(page) -> None:
    """Scroll lazy images into view and wait until every image has finished (loaded or failed)."""
    page.evaluate("Array.from(document.images).forEach(i => i.loading = 'eager')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")


@contextlib.contextmanager
def chromium_page(errors: list[str]) -> Iterator:
    """A 1280x900 page in headless Chromium whose console errors and page errors go to ``errors``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page
        finally:
            browser.close()


def test_report_in_chromium(report_site, tmp_path):
    from playwright.sync_api import expect

    site, _, _ = report_site
    shots = Path(os.environ.get("PHOSPHENE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto((site / "index.html").as_uri())
        _load_all_images(page)
        assert page.evaluate(BROKEN) == []
        grid = page.locator("#layer-_blocks\\.8 .grid .card")
        assert grid.count() == 3
        units = lambda: [int(u) for u in grid.evaluate_all("cs => cs.map(c => c.dataset.unit)")]  # noqa: E731
        orders = []
        assert units() == [0, 1, 2]
        for key in ("tension", "selectivity"):
            value = {int(c.get_attribute("data-unit")): float(c.get_attribute(f"data-{key}"))
                     for c in grid.all()}
            page.locator("#layer-_blocks\\.8 select.sort").select_option(key)
            orders.append(units())
            assert orders[-1] == sorted(value, key=lambda u: (-value[u], u))
        assert any(order != [0, 1, 2] for order in orders)  # sorting moved the cards
        page.locator("#layer-_blocks\\.8 select.sort").select_option("unit")
        assert units() == [0, 1, 2]
        page.locator("#layer-_blocks\\.8 input.filter").fill("1-2")
        expect(page.locator("#layer-_blocks\\.8 .count")).to_have_text("2 of 3 units")

        page.locator('#layer-_blocks\\.8 .card[data-unit="1"] a').click()
        page.wait_for_url("**/_blocks.8/units/0001.html")
        _load_all_images(page)
        for section in SECTIONS:
            expect(page.locator(f"section#{section}")).to_be_visible()
        for section in ("visualizations", "exemplars", "tension", "accentuation"):
            assert page.locator(f"section#{section} img").count() > 0
        assert page.evaluate(BROKEN) == []
        page.screenshot(path=str(shots / "report-unit.png"), full_page=False)

        page.goto((site / "_blocks.4" / "index.html").as_uri())
        _load_all_images(page)
        assert page.evaluate(BROKEN) == []
        expect(page.locator("#completeness tbody tr")).to_have_count(3)
    assert errors == []
    assert (shots / "report-unit.png").stat().st_size > 10_000


def test_atom_page_in_chromium(atom_site, tmp_path):
    """An atom layer's page lists its atoms; an atom page shows its atom section (energy, heaviest units
    linked to their unit pages) and the unit sections; a linked unit page shows the atoms behind it."""
    from playwright.sync_api import expect

    site, dictionary, _, _, units, _ = atom_site
    largest = dictionary.by_energy()[0]
    shots = Path(os.environ.get("PHOSPHENE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto((site / dictionary.unit_layer / "index.html").as_uri())
        expect(page.locator("section#atoms tbody tr")).to_have_count(len(dictionary))
        page.locator(f'section#atoms a[href="units/{largest:04d}.html"]').click()
        page.wait_for_url(f"**/{dictionary.unit_layer}/units/{largest:04d}.html")
        _load_all_images(page)
        for section in ("atom", *SECTIONS):
            expect(page.locator(f"section#{section}")).to_be_visible()
        expect(page.locator("section#atom")).to_contain_text("of the layer's activation energy")
        assert page.evaluate(BROKEN) == []
        page.screenshot(path=str(shots / "report-atom.png"), full_page=False)
        page.locator(f'section#atom a[href$="_blocks.8/units/{units[0]:04d}.html"]').click()
        page.wait_for_url(f"**/_blocks.8/units/{units[0]:04d}.html")
        expect(page.locator("section#atoms tbody tr")).to_have_count(len(dictionary))
    assert errors == []
    assert (shots / "report-atom.png").stat().st_size > 10_000
