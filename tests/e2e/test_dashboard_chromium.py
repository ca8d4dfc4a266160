"""The dashboard in a real headless Chromium, against `pipeline run --http`, while files
are being written: the counters move, the events appear in the live tail, the filter box
hides what does not match. A screenshot goes to the test artefacts."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.cli import Background
from tests.e2e.test_http_endpoint import NO_PLUGINS, endpoint_url, landing

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; installed with apt-get when missing (the tests run as root)."""
    if not CHROMIUM.exists():
        print("\n/usr/bin/chromium is missing: installing Debian's chromium with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            if shutil.which(command[0]) is None:
                break
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.fail(
            "the dashboard test needs Debian's chromium at /usr/bin/chromium and could not "
            "install it: run `apt-get update && apt-get install -y chromium` as root"
        )
    return CHROMIUM


@pytest.fixture(scope="module")  # not longer: Playwright's sync API holds an event loop in
def browser(chromium: Path) -> Iterator[Browser]:  # this thread, and asyncio.run refuses to nest
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        yield launched
        launched.close()


def artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FSPIPELINE_ARTEFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Writer(threading.Thread):
    """Writes `count` files, alternating .csv and .json, a few per second."""

    def __init__(self, folder: Path, first: int, count: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.first, self.count = folder, first, count

    def run(self) -> None:
        for number in range(self.first, self.first + self.count):
            suffix = "csv" if number % 2 == 0 else "json"
            (self.folder / f"report-{number:03d}.{suffix}").write_text("x")
            time.sleep(0.05)


def delivered(page: Page) -> int:
    text = page.locator('tr[data-component="landing.sinks[0]"] td.out').inner_text()
    return int(text.replace(",", "") or 0)


def test_the_dashboard_shows_counters_moving_and_a_filterable_live_tail(
    tmp_path: Path, browser: Browser
) -> None:
    config, inbox, _ = landing(tmp_path)
    run = Background("run", "--http", "0", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
    try:
        page.goto(endpoint_url(run) + "/")
        expect(page.locator("#ready")).to_have_text("ready", timeout=10_000)
        first = Writer(inbox, 0, 10)
        first.start()
        first.join()
        expect(page.locator('tr[data-component="landing.sinks[0]"] td.out')).to_have_text(
            "10", timeout=10_000
        )
        second = Writer(inbox, 10, 20)
        second.start()
        seen = [delivered(page)]
        while second.is_alive() or seen[-1] < 30:  # read the counter as the files arrive
            time.sleep(0.25)
            seen.append(delivered(page))
            assert len(seen) < 200, f"the counter stopped at {seen[-1]}"
        assert len(set(seen)) >= 3, f"the counter did not move while files arrived: {seen}"
        assert seen == sorted(seen)
        rows = page.locator("#events tr.event")
        expect(rows).to_have_count(30, timeout=10_000)
        expect(rows.first).to_contain_text("report-029.json")  # newest on top
        expect(rows.first).to_contain_text("closed_write")
        expect(page.locator('tr[data-component="landing.sources[0]"] td.out')).to_have_text("30")

        page.fill("#filter", "*.csv")
        visible = page.locator("#events tr.event:visible")
        expect(visible).to_have_count(15)
        for text in visible.all_inner_texts():
            assert ".csv" in text and ".json" not in text
        expect(page.locator("#shown")).to_have_text("showing 15 of the last 30 events")
        page.fill("#filter", "report-02")  # plain text: a substring of the path
        expect(visible).to_have_count(10)
        page.fill("#filter", "*.csv")

        screenshot = artefacts(tmp_path) / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"\ndashboard screenshot: {screenshot}")
        assert screenshot.stat().st_size > 10_000
        assert problems == [], problems
    finally:
        page.close()
        assert run.interrupt() == 0
