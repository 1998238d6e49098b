"""Execute notebooks and screenshot them as a browser shows them (issue 23's acceptance pictures).

    python scripts/notebook_screenshots.py notebooks/01_quick_tour.ipynb ... --out out/screens [--tiny]

Each notebook is executed with nbclient in OUT/<name>/ (with ``--tiny``: PHOSPHENE_NOTEBOOK_TINY=1),
saved executed (OUT/<name>.ipynb), exported to HTML with nbconvert (OUT/<name>.html) and rendered by
Chromium through Playwright into OUT/<name>.png (the whole page); the wall time of each execution and
the load average are printed. Widgets are rendered from their saved state only where the export can
load the widget manager (it needs the network), so take widget screenshots in JupyterLab. Needs
nbclient, nbconvert, playwright and a Chromium at /usr/bin/chromium (or --chromium).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbclient
import nbformat
from nbconvert import HTMLExporter
from playwright.sync_api import sync_playwright


def execute(path: Path, out: Path, timeout: int) -> tuple[nbformat.NotebookNode, float]:
    """The notebook executed in ``out/<stem>/`` and its wall time in seconds."""
    notebook = nbformat.read(path, as_version=4)
    folder = out / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    started = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - started


def screenshot(html: Path, png: Path, chromium: str, width: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(png), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("out/screens"))
    parser.add_argument("--tiny", action="store_true", help="PHOSPHENE_NOTEBOOK_TINY=1 (CI sizes)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    if args.tiny:
        os.environ["PHOSPHENE_NOTEBOOK_TINY"] = "1"
    args.out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    for path in args.notebooks:
        notebook, seconds = execute(path, args.out, args.timeout)
        loadavg = Path("/proc/loadavg")
        load = " ".join(loadavg.read_text().split()[:3]) if loadavg.is_file() else "?"
        print(f"{path.name}: {seconds:.1f} s wall, load average {load}", flush=True)
        nbformat.write(notebook, args.out / path.name)
        body, _ = exporter.from_notebook_node(notebook)
        html = args.out / f"{path.stem}.html"
        html.write_text(body)
        screenshot(html, args.out / f"{path.stem}.png", args.chromium, args.width)


if __name__ == "__main__":
    main()
