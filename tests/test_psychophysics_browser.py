"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
consent, trials answered by clicking, a reload that resumes, the end page, and the database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phosphene.psychophysics.server import background_server, create_app
from phosphene.psychophysics.stimuli import demo_stimuli
from phosphene.psychophysics.storage import ExperimentDB

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=(
    f"browser test skipped: Chromium not found at {CHROMIUM}; install it to run it "
    "(Debian/Ubuntu: sudo apt-get install chromium; .ci/run does)"))


def test_participant_completes_a_session_in_chromium(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    stimuli = demo_stimuli(tmp_path / "stimuli", size=24)
    db_path = tmp_path / "responses.sqlite"
    design = {"trials_per_condition": 1, "images_per_unit": (1,), "catch_trials": 1}
    clicked: list[tuple[int, str]] = []
    app = create_app(stimuli, db_path, "admin-token-for-tests-0123456789", **design)
    with background_server(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            expect(page.locator("#welcome")).to_be_visible()
            expect(page.locator("#start")).to_be_disabled()
            page.check("#consent")
            page.click("#start")
            expect(page.locator("#task")).to_be_visible()
            total = int(page.text_content("#trial-count"))
            assert total == 2 * 3 + 1
            for trial in range(total):
                if trial == 3:  # reload mid-session: the page resumes at the next trial
                    page.reload()
                    expect(page.locator("#task")).to_be_visible()
                expect(page.locator("#trial-number")).to_have_text(str(trial + 1))
                assert page.locator(".row").count() == 3 and page.locator(".query img").count() == 3
                expect(page.locator("#submit")).to_be_disabled()
                assignment = [(trial + q) % 3 for q in range(3)]
                for q, row in enumerate(assignment):
                    page.click(f'.query[data-q="{q}"]')
                    page.click(f'.row[data-r="{row}"]')
                page.wait_for_timeout(30)  # a measurable reaction time
                page.click("#submit")
                clicked.append((trial, " ".join(map(str, assignment))))
            expect(page.locator("#done")).to_be_visible()
            session = page.text_content("#code")
            images_loaded = page.evaluate("Array.from(document.images).every(i => i.complete)")
        finally:
            browser.close()
    rows = ExperimentDB(db_path).responses()
    assert [(r["trial"], r["assignment"]) for r in rows] == clicked  # exactly those responses
    assert {r["session"] for r in rows} == {session}
    assert all(r["rt_ms"] > 0 for r in rows) and images_loaded
    assert ExperimentDB(db_path).counts() == {"sessions": 1, "responses": total}
