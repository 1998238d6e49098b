"""The unit browser (`phosphene.notebook.UnitBrowser`) and the report's unit page in a notebook
(`phosphene.report.unit_view.UnitPage`): the same data as the site's unit page, computed on demand."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from phosphene.errors import PhospheneError, UnitOutOfRangeError
from phosphene.report.unit_view import UnitPage

pytest.importorskip("ipywidgets")
from phosphene.notebook import UnitBrowser, site_settings  # noqa: E402


def _images(html: str) -> int:
    return len(re.findall(r'<img src="data:image/', html))


def test_unit_page_shows_what_the_site_page_shows(report_site):
    site, settings, _ = report_site
    page = UnitPage(site, "_blocks.8", 1)
    data = json.loads((site / "_blocks.8" / "units" / "0001.json").read_text())
    assert page.data == data
    html = page._repr_html_()
    ET.fromstring(html)
    inh = data["inhibition"]
    exemplars = len(data["exemplars"]["top"]) + len(data["exemplars"]["bottom"])
    pictures = (len(data["visualize"]["images"]) + exemplars + 1 + 2 * len(inh["mtis"])
                + 3 * len(data["accentuation"]["rows"]))  # the 1: the E+/E- scatter
    assert _images(html) == pictures
    assert f"{inh['tension']:.4g}" in html and f"{data['objective']['visualization']:.4g}" in html


def test_unit_page_of_a_unit_not_built_is_a_one_line_error(report_site):
    site, _, _ = report_site
    with pytest.raises(PhospheneError, match="no page for _blocks.8:9"):
        UnitPage(site, "_blocks.8", 9)


@pytest.fixture
def site_copy(report_site, tmp_path):
    site, settings, _ = report_site
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    return copy, settings


def test_browser_uses_the_settings_of_an_existing_site(report_run, model, site_copy):
    site, settings = site_copy
    browser = UnitBrowser(report_run, model, site=site)
    assert browser.settings == settings == site_settings(site)


def test_browser_shows_a_built_unit_and_computes_a_new_one(report_run, model, site_copy):
    site, _ = site_copy
    browser = UnitBrowser(report_run, model, site=site)
    shown = browser.select("_blocks.4", 2)
    assert _images(browser.page_html.value) > 10 and browser.unit.value == 2
    new = browser.select("_blocks.8", 5)  # not in the site yet: its stages run for that unit only
    assert (site / "_blocks.8" / "units" / "0005.json").is_file() and new.unit == 5
    assert not (site / "_blocks.8" / "units" / "0006.json").exists()
    assert browser.image.value == str(browser.run.top("_blocks.8", 5, 1, by="max")[0].path)
    assert shown.layer == "_blocks.4" and "_blocks.8:5" in browser.status.value


def test_browser_accentuates_the_unit_in_a_chosen_image_at_any_lambda(report_run, model, site_copy):
    site, settings = site_copy
    browser = UnitBrowser(report_run, model, site=site)
    page = browser.select("_blocks.8", 1)
    result = browser.accentuate(lam=3)
    assert result.lams == [3.0] and result.settings["reg_layer"] == page.data["inhibition"]["attr_layer"]
    assert result.images.shape[-1] == settings.size and browser.accentuation is result
    assert browser.lam.value == 3  # the widget shows the λ used


def test_browser_refuses_a_unit_out_of_range_and_a_missing_image_in_one_line(report_run, model, site_copy):
    site, _ = site_copy
    browser = UnitBrowser(report_run, model, site=site)
    with pytest.raises(UnitOutOfRangeError, match="out of range"):
        browser.select("_blocks.8", 10_000)
    browser._guarded(browser.accentuate)
    assert "show a unit first" in browser.status.value
    browser.select("_blocks.8", 1)
    browser.path.value = "/no/such/image.jpg"
    browser._guarded(browser.accentuate)
    assert "no image file at" in browser.status.value


def test_browser_displays_as_a_widget(report_run, model, site_copy):
    site, _ = site_copy
    bundle = UnitBrowser(report_run, model, site=site)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
