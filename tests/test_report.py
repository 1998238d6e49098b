"""`phosphene report`: the site's files, resuming and extending, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request

import pytest
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.report import ReportSettings, SiteMismatchError, build_report
from phosphene.report.inhibition import attribution_layer
from phosphene.report.serve import background

SECTIONS = ("visualizations", "exemplars", "tension", "accentuation", "objective", "neighbours", "regenerate")


def test_site_has_every_page_with_its_data(report_site, report_run):
    site, settings, result = report_site
    assert result.computed == 6 and result.units == {"_blocks.4": [0, 1, 2], "_blocks.8": [0, 1, 2]}
    index = (site / "index.html").read_text()
    assert 'href="_blocks.8/units/0002.html"' in index and 'loading="lazy"' in index
    assert "<script" in index and 'class="controls" hidden' in index  # readable without JS
    for layer in ("_blocks.4", "_blocks.8"):
        layer_data = json.loads((site / layer / "layer.json").read_text())
        assert [c["unit"] for c in layer_data["units"]] == [0, 1, 2]
        assert (site / layer / "distribution.png").stat().st_size > 0
        for unit in range(3):
            page = (site / layer / "units" / f"{unit:04d}.html").read_text()
            assert all(f'id="{s}"' in page for s in SECTIONS)
            data = json.loads((site / layer / "units" / f"{unit:04d}.json").read_text())
            assert len(data["visualize"]["images"]) == settings.diverse
            assert len(data["exemplars"]["top"]) == settings.k == len(data["exemplars"]["bottom"])
            assert all(e["y"] is not None for e in data["exemplars"]["top"])  # spatial max positions
            assert len(data["inhibition"]["mtis"]) == settings.mtis
            assert [a["kind"] for a in data["accentuation"]["rows"]] == ["top exemplar", "unrelated"]
            assert data["command"].startswith(f"phosphene report {os.fspath(report_run)} --layers {layer}")
            assert "--units" in data["command"] and f"--steps {settings.steps}" in data["command"]
            for name in (*data["visualize"]["images"], "thumb.jpg", "scatter.png"):
                assert (site / layer / "units" / f"{unit:04d}" / name).stat().st_size > 0
    assert 'src="../../static/report.css"' not in index  # relative links from the index itself
    assert all(not link.startswith(("/", "http")) for link in _links(index))


def _links(html: str) -> list[str]:
    import re

    return re.findall(r'(?:href|src)="([^"]+)"', html)


def test_rebuild_skips_done_units_and_extends(report_site, report_run, model, tmp_path):
    site, settings, _ = report_site
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    page = copy / "_blocks.8" / "units" / "0001" / "vis_0.png"
    before = page.stat().st_mtime_ns
    again = build_report(report_run, ["_blocks.8"], copy, [1], model=model, settings=settings, progress=False)
    assert again.computed == 0 and page.stat().st_mtime_ns == before
    (copy / "_blocks.8" / "units" / "0002" / "accentuation.json").unlink()  # as if killed mid-stage
    extended = build_report(report_run, ["_blocks.8"], copy, [2, 3], model=model, settings=settings,
                            progress=False)
    assert extended.computed == 2 and extended.units["_blocks.8"] == [0, 1, 2, 3]
    assert extended.units["_blocks.4"] == [0, 1, 2]
    index = json.loads((copy / "index.json").read_text())
    assert [c["unit"] for c in index["layers"][1]["units"]] == [0, 1, 2, 3]


def test_other_settings_are_refused_and_nothing_is_overwritten(report_site, report_run, model):
    site, settings, _ = report_site
    record = (site / "report.json").read_bytes()
    other = ReportSettings(**{**settings.to_dict(), "steps": settings.steps + 1})
    with pytest.raises(SiteMismatchError, match="steps 4->5"):
        build_report(report_run, ["_blocks.8"], site, [0], model=model, settings=other, progress=False)
    assert (site / "report.json").read_bytes() == record


@pytest.mark.parametrize("args, message", [
    (["--layers", "_blocks.9", "--units", "0"], "unknown layer '_blocks.9'"),
    (["--layers", "_blocks.8", "--units", "500"], "unit 500 out of range: _blocks.8 has 112 units"),
    (["--layers", "_blocks.8", "--units", "0", "--steps", "5"], "made with other settings"),
])
def test_bad_input_is_one_line_and_exit_2(report_site, report_run, args, message):
    site, _, _ = report_site
    result = CliRunner().invoke(main, ["report", str(report_run), *args, "--out", str(site),
                                       "--size", "48", "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_out_that_is_a_file_is_refused(report_run, tmp_path):
    target = tmp_path / "file.html"
    target.write_text("x")
    result = CliRunner().invoke(main, ["report", str(report_run), "--layers", "_blocks.8", "--out",
                                       str(target)])
    assert result.exit_code == 2 and "is a file" in result.output and target.read_text() == "x"


def test_serve_gives_the_pages(report_site):
    site, _, _ = report_site
    with background(site) as url:
        html = urllib.request.urlopen(f"{url}/_blocks.8/units/0000.html").read().decode()
    assert 'id="exemplars"' in html
    result = CliRunner().invoke(main, ["report", "serve", str(site / "static")])
    assert result.exit_code == 2 and "holds no report" in result.output


def test_attribution_layer_is_the_module_before(model):
    assert attribution_layer(model, "_blocks.8") == "_blocks.7"
    assert attribution_layer(model, "_blocks.8._bn1") == "_blocks.8._depthwise_conv"
    assert attribution_layer(model, "_conv_stem") == "input"


def test_atlas_option_puts_an_activation_atlas_on_the_layer_page(report_run, model, tmp_path):
    settings = ReportSettings(steps=2, size=48, diverse=1, batch=1, k=4, probe=8, mtis=1, accent_steps=1,
                              accent_crops=1, accent_top=1, accent_unrelated=0, neighbours=1, atlas=True)
    site = tmp_path / "site"
    build_report(report_run, ["_blocks.4"], site, [0], model=model, settings=settings, progress=False)
    atlas = site / "_blocks.4" / "atlas"
    assert (atlas / "atlas.png").stat().st_size > 0 and (atlas / "index.html").is_file()
    assert 'href="atlas/index.html"' in (site / "_blocks.4" / "index.html").read_text()


def test_stage_table_has_wall_and_cpu_per_stage(report_site):
    site, _, result = report_site
    assert set(result.cpu_seconds) == set(result.seconds) >= {"visualize", "accentuate", "pages"}
    for stage in ("visualize", "exemplars", "inhibition", "accentuate", "pages"):
        assert result.seconds[stage] > 0 and result.cpu_seconds[stage] > 0
    record = json.loads((site / "report.json").read_text())["last_build"]
    assert record["cpu_seconds"] == pytest.approx(result.cpu_seconds) and record["computed"] == 6
    table = result.stage_table().splitlines()
    assert table[0].split() == ["stage", "wall", "s", "cpu", "s", "cpu", "%"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert set(rows) == {*result.seconds, "total", "per"}
    assert float(rows["accentuate"][1]) == pytest.approx(result.cpu_seconds["accentuate"], abs=0.06)
    assert float(rows["total"][1]) == pytest.approx(sum(result.cpu_seconds.values()), abs=0.06)
