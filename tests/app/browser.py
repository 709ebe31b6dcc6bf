"""Helpers for real-browser tests and benchmarks: a `streamlit run app.py` server and Chromium.

Debian's Chromium driven by Playwright (never a browser Playwright downloads). Each server takes a
free port of its own, so tests, benchmarks and parallel sessions never collide.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# One way to start, wait for and stop a server: the load test's (tests and benchmarks import
# free_port, wait_healthy and stop_server from here too).
from scripts.loadtest import server as streamlit_server
from scripts.loadtest.server import free_port, stop_server, wait_healthy

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DEEPARCH_ARTIFACTS", REPO / "tests" / "artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# Number of points in every trace of the first plotly chart of the main area (-1: no chart yet).
# _fullData holds the decoded arrays (plotly.py sends numpy arrays base64-encoded).
COUNT_POINTS_JS = """() => {
  const plot = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
  if (!plot || !plot._fullData) return -1;
  return plot._fullData.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0);
}"""


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


# A real-browser test module's marks (`pytestmark = BROWSER_TEST`): `-m "not browser"` leaves it
# out, and without Chromium it is skipped, saying why.
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason=f"no Chromium at {CHROMIUM}"),
]


def start_server(
    port: int,
    log_path: Path,
    env: dict[str, str] | None = None,
    app: str = "app.py",
    cwd: Path = REPO,
) -> subprocess.Popen:
    """`streamlit run app.py` on a port, as the README starts it, its output in log_path
    (cwd: another checkout, for a benchmark's before-and-after in one run)."""
    return streamlit_server.start_server(cwd, port, log_path, env, app=app)


@contextlib.contextmanager
def running_app(log_name: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A healthy app server on a free port for the block, its output in
    ARTIFACTS/<log_name>.log; yields its URL and stops it afterwards. The one way the browser,
    load-test and cold-start tests start a server they only talk to."""
    port = free_port()
    server = start_server(port, ARTIFACTS / f"{log_name}.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url
    finally:
        stop_server(server)


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def app_tab(log_name: str, height: int = 1000) -> Iterator[object]:
    """A Chromium tab on a fresh app server, opened on Home with its menu drawn."""
    with running_app(log_name) as url, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": height})
        tab.set_default_timeout(60_000)
        tab.goto(url)
        tab.get_by_test_id("stSidebarNav").wait_for()
        yield tab


def shoot(page, name: str) -> Path:
    """A full-page screenshot in the artifacts folder (look at it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
