"""A browser's owner id is a cookie: a reload keeps Stop on its own job (running or queued),
and the same ?job link in another browser is read-only. Real Chromium, real server."""

import time
from urllib.parse import parse_qs, urlparse

import pytest

from deeparch.engine.manager import RECONNECT_GRACE_S
from tests.app.browser import BROWSER_TEST, chromium, running_app, shoot

pytestmark = [*BROWSER_TEST, pytest.mark.slow]
READ_ONLY = "Another session's job, shown read-only"
LONG_RUN = "/train?arch=mlp&epochs=200"  # far longer than the test: it ends when stopped


def open_tab(browser, url: str):
    """A new browser (its own cookies) with one tab on url."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.goto(url)
    return tab


def start_run(tab) -> str:
    start = tab.locator(".st-key-train_start button")
    start.wait_for()
    start.click()
    deadline = time.monotonic() + 60
    while "job" not in parse_qs(urlparse(tab.url).query) and time.monotonic() < deadline:
        tab.wait_for_timeout(200)
    return parse_qs(urlparse(tab.url).query)["job"][0]


def state_of(tab) -> str:
    metric = tab.locator('[data-testid="stMetric"]').filter(has_text="state").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def wait_state(tab, wanted: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tab.locator('[data-testid="stMetric"]').count() and state_of(tab) == wanted:
            return
        tab.wait_for_timeout(250)
    raise AssertionError(f"the job never reached {wanted!r}")


def test_a_reload_keeps_control_and_a_copied_link_stays_read_only():
    # One training slot: the other student's run holds it, so ours waits in the queue. No
    # heartbeat: Chromium throttles the timers of tabs in the background, which would stop them.
    env = {"DEEPARCH_MAX_RUNNING": "1", "DEEPARCH_HEARTBEAT_S": "0"}
    with running_app("owner_cookie", env=env) as url, chromium() as b:
        other = open_tab(b, url + LONG_RUN)
        start_run(other)
        wait_state(other, "running")
        ours = open_tab(b, url + LONG_RUN)
        job_id = start_run(ours)
        wait_state(ours, "queued")
        cookies = {c["name"]: c["value"] for c in ours.context.cookies()}
        owner = cookies["deeparch_owner"]
        assert len(owner) == 32 and int(owner, 16) >= 0  # 128 random bits, as hex
        assert owner not in ours.url and job_id not in owner

        # A reload is a new Streamlit session of the same owner: the queued job is still ours,
        # and stays queued past the grace in which a closed tab's queued jobs are dropped.
        ours.reload()
        wait_state(ours, "queued")
        assert ours.get_by_text(READ_ONLY).count() == 0
        ours.wait_for_timeout((RECONNECT_GRACE_S + 5) * 1000)
        wait_state(ours, "queued")
        sidebar_stop = ours.locator(f".st-key-side_stop_{job_id} button")
        assert sidebar_stop.count() == 1
        shoot(ours, "owner_reload_queued")

        # The same link in another browser: shown, never controlled.
        stranger = open_tab(b, f"{url}/train?job={job_id}")
        stranger.get_by_text(READ_ONLY).wait_for()
        assert stranger.locator(".st-key-train_stop button").count() == 0
        assert stranger.locator(f".st-key-side_stop_{job_id} button").count() == 0
        shoot(stranger, "owner_link_read_only")

        # The slot frees: our job trains, and Stop (after the reload) stops it.
        other.bring_to_front()
        other.locator(".st-key-train_stop button").click()
        wait_state(other, "stopped")
        ours.bring_to_front()
        wait_state(ours, "running", timeout=90)
        ours.locator(".st-key-train_stop button").click()
        wait_state(ours, "stopped")
        shoot(ours, "owner_reload_stopped")
