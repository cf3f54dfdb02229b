"""The built site in a real browser from file://: rows, sorting, filtering, charts, no script runs.

Drives Debian's Chromium through Playwright (never ``playwright install``: nothing is downloaded).
Without /usr/bin/chromium the tests skip with the reason, except under CI (env CI set), where a
missing browser is a failure so that CI can never pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import XSS_HOST, XSS_MODEL

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (apt-get install chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


class Watched:
    """A page with every console error, uncaught exception and dialog it produced."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def run_ids(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "#leaderboard tbody tr", "rows => rows.map(row => row.dataset.runId)"
        )

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []


@pytest.fixture
def site(browser: Any, built) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watched = Watched(context.new_page())
    watched.page.goto((built.out / "index.html").as_uri())
    watched.page.wait_for_selector("#leaderboard tbody tr")
    yield watched
    context.close()


def test_table_shows_the_listed_runs_fastest_first(site: Watched) -> None:
    assert site.run_ids() == ["run-b", "run-a", "run-d"]
    assert site.page.text_content("#count") == "showing 3 of 3 matching runs (3 in all)"
    headers = site.page.eval_on_selector_all("#leaderboard thead th", "cells => cells.map(c => c.innerText)")
    assert headers[:3] == ["Hardware class", "Node", "Model"] and "Output tok/s" in headers
    assert site.page.get_attribute("th[data-key=output_tok_s]", "aria-sort") == "descending"
    site.assert_clean()


def test_clicking_headers_reorders_rows(site: Watched) -> None:
    site.page.click("th[data-key=output_tok_s] button")
    assert site.run_ids() == ["run-d", "run-a", "run-b"]
    assert site.page.get_attribute("th[data-key=output_tok_s]", "aria-sort") == "ascending"
    site.page.click("th[data-key=output_tok_s] button")
    assert site.run_ids() == ["run-b", "run-a", "run-d"]
    site.page.click("th[data-key=hardware_class] button")
    assert site.run_ids() == ["run-d", "run-a", "run-b"]  # Generic CPU < GeForce RTX 4090 < H100 SXM
    site.page.click("th[data-key=usd_per_1m_blended] button")  # run-d has no price: last either way
    assert site.run_ids()[-1] == "run-d"
    site.page.click("th[data-key=usd_per_1m_blended] button")
    assert site.run_ids()[-1] == "run-d"
    site.assert_clean()


def test_filter_box_and_selects_narrow_rows(site: Watched) -> None:
    site.page.fill("#filter", "h100")
    assert site.run_ids() == ["run-b"]
    site.page.fill("#filter", "node-7")
    assert site.run_ids() == ["run-a", "run-d"]
    assert site.page.text_content("#count") == "showing 2 of 2 matching runs (3 in all)"
    site.page.fill("#filter", "")
    site.page.select_option("#hardware", label="Generic CPU")
    assert site.run_ids() == ["run-d"]
    site.page.select_option("#hardware", value="")
    site.page.select_option("#backend", label="llamacpp")
    assert site.run_ids() == ["run-b"]
    site.page.fill("#filter", "no such model anywhere")
    assert site.run_ids() == []
    site.assert_clean()


def test_charts_are_drawn(site: Watched) -> None:
    charts = site.page.locator("figure.chart svg")
    assert charts.count() == 4
    for index in range(4):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
    assert site.page.locator("figure.chart svg").first.locator("circle").count() >= 3
    site.assert_clean()


def test_hostile_names_show_as_text_and_run_nothing(site: Watched) -> None:
    row = site.page.locator("#leaderboard tbody tr[data-run-id=run-b]")
    assert row.locator("td").nth(2).inner_text() == XSS_MODEL
    assert row.locator("td").nth(1).inner_text() == XSS_HOST
    assert site.page.locator("#leaderboard img, #leaderboard script").count() == 0
    options = site.page.eval_on_selector_all("#hardware option", "options => options.map(o => o.textContent)")
    assert options == ["all", "Generic CPU", "NVIDIA GeForce RTX 4090", "NVIDIA H100 SXM"]
    row.locator("a").click()
    site.page.wait_for_load_state("load")
    assert site.page.url.endswith("/runs/run-b.html")
    assert site.page.inner_text("h1") == f"{XSS_MODEL} on NVIDIA H100 SXM"
    assert XSS_HOST in site.page.inner_text("main")
    assert site.page.locator("main img, main script").count() == 0
    site.assert_clean()


def test_screenshot_of_the_leaderboard(site: Watched, built, tmp_path: Path) -> None:
    shot = site.page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    assert len(shot) > 10_000  # a blank page compresses to far less
    site.assert_clean()
