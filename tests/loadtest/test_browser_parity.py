"""The protocol client checked against Chromium: on Start it sends the same widget ids and values
as the real frontend, polls the same fragments, and its job ends the same way."""

import asyncio
import time

from streamlit.proto.BackMsg_pb2 import BackMsg

from scripts.loadtest.student import Student, progress_text, state_of
from tests.app.browser import BROWSER_TEST, chromium, running_app, shoot

pytestmark = BROWSER_TEST

# A wide MLP on large batches outlasts the page's first refresh ticks even on a fast machine: the
# test compares the fragments both clients poll while a job trains (5 small steps ended before
# the first tick on CI, and there was nothing to poll).
STEPS = 20
SETTINGS = {
    "train_mlp_hidden_sizes": "2048,2048",
    "train_cfg_epochs": 12,  # not mlp's default 10: an unchanged box sends nothing
    "train_cfg_max_steps": STEPS,
    "train_cfg_batch_size": 1024,
}
START_KEY = "train_start"


def widget_values(msg: BackMsg) -> dict[str, tuple[str, object]]:
    """id -> (kind, value) of every widget state a rerun carries."""
    out = {}
    for widget in msg.rerun_script.widget_states.widgets:
        kind = widget.WhichOneof("value")
        value = getattr(widget, kind)
        out[widget.id] = (
            kind,
            value if isinstance(value, bool | int | float | str) else str(value),
        )
    return out


def is_start(msg: BackMsg) -> bool:
    return any(
        w.id.endswith(f"-{START_KEY}") and w.trigger_value
        for w in msg.rerun_script.widget_states.widgets
    )


def wait_until_sent(sent: list[BackMsg], predicate, page, timeout: float = 60.0) -> BackMsg:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in sent:
            if predicate(msg):
                return msg
        page.wait_for_timeout(100)
    raise AssertionError("the browser never sent the expected BackMsg")


def browser_session(url: str) -> dict:
    """Chromium: open the app, go to Train, type the settings, press Start, watch to the end."""
    sent: list[BackMsg] = []

    def on_socket(socket):
        def record(payload):
            msg = BackMsg()
            msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
            sent.append(msg)

        socket.on("framesent", record)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(90_000)
        page.on("websocket", on_socket)
        page.goto(url)
        page.get_by_text("Your jobs").wait_for()
        page.get_by_role("link", name="Train").click()
        page.locator(f".st-key-{START_KEY} button").wait_for()
        for key, value in SETTINGS.items():
            box = page.locator(f".st-key-{key} input")
            box.fill(str(value))
            box.press("Enter")

            def carries(msg, key=key, value=value):
                values = widget_values(msg)
                return any(i.endswith(f"-{key}") and v[1] == value for i, v in values.items())

            wait_until_sent(sent, carries, page)
            page.wait_for_timeout(1000)  # the rerun that takes the value
        page.locator(f".st-key-{START_KEY} button").click()
        start = wait_until_sent(sent, is_start, page)
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="state").first
        value = metric.locator('[data-testid="stMetricValue"]')
        deadline = time.monotonic() + 120
        while value.inner_text() != "finished" and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        progress = page.locator('[data-testid="stMain"] [data-testid="stProgress"]').first
        shoot(page, "loadtest-parity-browser")
        return {
            "start": start,
            "state": value.inner_text(),
            "progress": progress.inner_text().strip(),
            "auto_fragments": {
                m.rerun_script.fragment_id for m in sent if m.rerun_script.is_auto_rerun
            },
        }


async def protocol_session(url: str) -> dict:
    student = Student(url, "parity", time.monotonic(), SETTINGS)
    assert await student.open()
    await student.start(120)
    await student.watch_to_end(120)
    await student.close()
    start = next(msg for msg in student.tab.sent if is_start(msg))
    return {
        "start": start,
        "state": state_of(student.tab),
        "progress": progress_text(student.tab),
        "auto_fragments": {
            m.rerun_script.fragment_id for m in student.tab.sent if m.rerun_script.is_auto_rerun
        },
        "timed_fragments": student.tab.timed_fragments,
    }


def test_the_protocol_client_sends_what_chromium_sends_on_start():
    with running_app("loadtest-parity") as url:
        real = browser_session(url)
        simulated = asyncio.run(protocol_session(url))
    real_values, simulated_values = widget_values(real["start"]), widget_values(simulated["start"])
    assert set(simulated_values) == set(real_values)  # the same widget ids
    assert simulated_values == real_values  # and the same kinds and values
    for key, value in SETTINGS.items():
        assert any(i.endswith(f"-{key}") and v[1] == value for i, v in real_values.items())
    for field in ("page_script_hash", "fragment_id", "is_auto_rerun"):
        assert getattr(simulated["start"].rerun_script, field) == getattr(
            real["start"].rerun_script, field
        )
    # the same outcome: both jobs trained with the same settings to their last step
    assert real["state"] == simulated["state"] == "finished"
    assert real["progress"] == simulated["progress"]
    assert real["progress"].endswith(f"step {STEPS}/{STEPS}")
    # both poll the live panel and the job sidebar, the fragments the server gave a run_every
    # (how many ticks each sends before the run ends depends on the machine's speed)
    assert len(simulated["timed_fragments"]) == 2
    assert real["auto_fragments"] <= simulated["timed_fragments"]
    assert simulated["auto_fragments"] <= simulated["timed_fragments"]
    assert real["auto_fragments"] and simulated["auto_fragments"]
