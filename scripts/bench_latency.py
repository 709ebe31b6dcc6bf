"""Benchmark (by hand): input event to paint in Chromium, the browser components against the server.

    python scripts/bench_latency.py --moves 40

Starts `streamlit run app.py`, trains the Latent space page's starter VAE briefly and stops it,
then times, in the same run:

- server: today's path (the page's "answer in the browser" toggle off): one z1 arrow-key step on
  the Streamlit slider until the server-drawn decode shows the new z;
- the browser explorer: a z1 arrow-key step on its own slider, a pointer move over the latent
  scatter, a pointer move along the interpolation strip; and on Inspect, a pointer move over the
  convolution helper's cells;
- a burst: `--moves` z1 key presses as fast as Playwright sends them, each way, until the picture
  shows the last one (how long, and how much of the movement arrived).

Each latency runs, inside the page, from the input event's timeStamp (caught at the window before
any handler runs) to the first animation frame whose DOM shows the change (requestAnimationFrame,
performance.now): the frame that paints it. Prints JSON with p50/p95/max per kind and the load
average before and after.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # deeparch and its tests
from tests.app.browser import ARTIFACTS, chromium, running_app  # noqa: E402
from tests.app.test_browser_explore import stop_current_job  # noqa: E402

# Measured in the page: an input event (key or pointer, caught at the window in the capture phase,
# before any handler; a component's shadow root sends them there too) starts a measurement; an
# animation-frame loop ends it at the first frame whose DOM passes `test`, the frame that paints
# the change. No Playwright round trip lies inside the interval.
RECORD_INPUT_JS = """() => {
  if (window.__bench) return;
  const bench = { pending: null, done: [], test: null, snapshot: null, arg: null };
  window.__bench = bench;
  const watch = (e) => {
    // The newest event counts: Chromium also sends a pointermove of its own when the page
    // moves under a resting pointer, and such a move must not stand in for the next real one.
    if (!bench.test) return;
    try {
      bench.pending = { start: e.timeStamp, before: bench.snapshot(bench.arg) };
    } catch (error) {
      bench.pending = null;  // the watched canvas is not on this page (yet)
    }
  };
  for (const type of ["keydown", "pointermove"]) window.addEventListener(type, watch, true);
  const frame = () => {
    requestAnimationFrame(frame);
    const p = bench.pending;
    try {
      if (p && bench.test(bench.arg, p.before)) {
        bench.done.push(performance.now() - p.start);
        bench.pending = null;
      }
    } catch (error) {
      bench.pending = null;
    }
  };
  requestAnimationFrame(frame);
}"""
SET_TEST_JS = """([test, snapshot, arg]) => {
  window.__bench.test = new Function("arg", "before", test);
  window.__bench.snapshot = new Function("arg", snapshot);
  window.__bench.arg = arg;
  window.__bench.pending = null;
}"""
# A component's canvas (in its shadow root): its paint count, and whether it painted since.
CANVAS = """
  const hosts = document.querySelectorAll('[data-testid="stBidiComponentIsolated"]');
  const canvas = [...hosts].map((h) => h.shadowRoot && h.shadowRoot.querySelector(arg.canvas))
    .find(Boolean);
"""
PAINTS = CANVAS + "return Number(canvas.dataset.paints || 0);"
PAINTED = CANVAS + "return Number(canvas.dataset.paints || 0) > before;"
# The server-drawn decode shows the title the step should give.
SERVER_TITLE = """
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  return [...charts].some((chart) => chart.innerText.includes(arg.title));
"""


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)

    return {"n": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0)}


def watch(page, test: str, snapshot: str, arg: dict) -> None:
    page.evaluate(RECORD_INPUT_JS)
    page.evaluate(SET_TEST_JS, [test, snapshot, arg])


def measured(page, act, timeout: float = 60.0) -> float:
    """ms from the input `act()` makes to the frame that paints its change (see RECORD_INPUT_JS)."""
    count = page.evaluate(
        "() => { window.__bench.pending = null; return window.__bench.done.length; }"
    )
    act()
    try:
        page.wait_for_function(
            "n => window.__bench.done.length > n", arg=count, timeout=timeout * 1000
        )
    except PlaywrightTimeout:
        state = page.evaluate("() => JSON.stringify([window.__bench.pending, window.__bench.arg])")
        raise TimeoutError(f"no painted change within {timeout} s: {state}") from None
    return float(page.evaluate("() => window.__bench.done.at(-1)"))


def component_latency(page, canvas: str, act) -> float:
    """Latency of one input `act()` until the component's canvas counted a new paint."""
    watch(page, PAINTED, PAINTS, {"canvas": canvas})
    return measured(page, act)


def pointer_sweep(page, canvas: str, moves: int, path, painted: str = "") -> list[float]:
    """Pointer moves over a canvas, one at a time, each until `painted` (a canvas, by default the
    same) shows it; path(k) gives the k-th point as fractions of the canvas."""
    target = page.locator(canvas).first
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    latencies = []
    for k in range(moves):
        fx, fy = path(k)
        x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy

        def move(x=x, y=y):
            page.mouse.move(x, y)

        latencies.append(component_latency(page, painted or canvas, move))
    return latencies


def diagonal(moves: int, low: float, high: float):
    """Left to right along a diagonal band, a new point (a new z) at every move."""
    return lambda k: (0.1 + 0.8 * k / max(moves - 1, 1), low + (high - low) * k / max(moves - 1, 1))


def key_steps(page, slider, moves: int, painted) -> list[float]:
    slider.focus()
    latencies = []
    for k in range(moves):
        latencies.append(painted(k, lambda: slider.press("ArrowRight")))
    return latencies


def title_z(text: str) -> tuple[float, float]:
    found = re.search(r"decode\((-?[\d.]+), (-?[\d.]+)\)", text)
    return float(found.group(1)), float(found.group(2))


def server_title(page) -> str:
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text=re.compile(r"decode\(")).first
    chart.wait_for()
    deadline = time.monotonic() + 60
    while "decode(" not in (text := chart.inner_text()):
        if time.monotonic() > deadline:
            raise TimeoutError("the server-drawn decode has no title")
        time.sleep(0.2)
    return text


def set_instant(page, on: bool) -> None:
    toggle = page.locator(".st-key-lat_instant input").first
    if toggle.is_checked() != on:
        page.locator(".st-key-lat_instant").get_by_text("answer in the browser").click()
    if on:
        page.locator(".da-lat-title").wait_for()
    else:
        server_title(page)
    time.sleep(1.0)


def burst(page, slider, presses: int, z1_now, expected_last: float, timeout: float = 120) -> dict:
    """`presses` key presses sent at once; how long until the picture shows the last one."""
    slider.focus()
    start = time.monotonic()
    for _ in range(presses):
        slider.press("ArrowRight")
    sent = time.monotonic() - start
    last, still = z1_now(), 0.0
    while time.monotonic() - start < timeout:  # settled: the same z for a second
        time.sleep(0.1)
        now = z1_now()
        if now != last:
            last, still = now, time.monotonic()
        elif still and time.monotonic() - still > 1.0:
            break
        elif not still:
            still = time.monotonic()
    settled = (still or time.monotonic()) - start
    return {
        "presses": presses,
        "sent_s": round(sent, 2),
        "last_change_s": round(settled, 2),
        "moved": round(last, 2),
        "expected": round(expected_last, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=40, help="moves per browser measurement")
    parser.add_argument("--server-moves", type=int, default=20, help="slider steps on the server")
    parser.add_argument("--min-step", type=int, default=60, help="train the VAE this far first")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict = {"cpus": os.cpu_count()}
    with running_app("bench_latency") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.on("pageerror", lambda error: print("page error:", error, file=sys.stderr))
        page.goto(url)
        page.get_by_test_id("stSidebarNav").get_by_text("Latent space").click()
        page.get_by_role("button", name=re.compile(r"^Train vae on mnist")).click()
        stop_current_job(page, min_step=args.min_step)
        page.locator(".da-lat-title").wait_for()
        time.sleep(2.0)

        # Today's path: the Streamlit slider and the server-drawn decode.
        set_instant(page, False)
        z1, z2 = title_z(server_title(page))
        server_slider = page.locator(".st-key-lat_z1").get_by_role("slider")
        steps = min(args.server_moves, int((4.0 - z1) / 0.05) - 1)

        def server_painted(k, act):
            title = f"decode({z1 + 0.05 * (k + 1):.2f}, {z2:.2f})"
            watch(page, SERVER_TITLE, "return null;", {"title": title})
            return measured(page, act)

        results["server_key_step"] = percentiles(
            key_steps(page, server_slider, steps, server_painted)
        )
        z1 = title_z(server_title(page))[0]
        presses = min(args.moves, int((4.0 - z1) / 0.05) - 1)
        results["server_burst"] = burst(
            page, server_slider, presses, lambda: title_z(server_title(page))[0],
            z1 + 0.05 * presses,
        )  # fmt: skip
        page.screenshot(path=str(ARTIFACTS / "bench_latency_server.png"))

        # The browser explorer, on the same model.
        set_instant(page, True)
        decoded = ".da-lat-decoded"
        slider = page.locator(".da-lat-z1")
        slider.evaluate("(s) => { s.value = s.min; s.dispatchEvent(new Event('input')); }")
        results["browser_key_step"] = percentiles(
            key_steps(
                page, slider, args.moves,
                lambda k, act: component_latency(page, decoded, act),
            )
        )  # fmt: skip
        results["browser_scatter_move"] = percentiles(
            pointer_sweep(
                page, ".da-lat-scatter", args.moves, diagonal(args.moves, 0.2, 0.8), decoded
            )
        )
        results["browser_strip_move"] = percentiles(
            pointer_sweep(
                page, ".da-scrub-strip", args.moves, diagonal(args.moves, 0.5, 0.5), ".da-scrub-big"
            )
        )
        title = page.locator(".da-lat-title")
        slider.evaluate("(s) => { s.value = s.min; s.dispatchEvent(new Event('input')); }")
        start_z1 = title_z(title.inner_text())[0]
        results["browser_burst"] = burst(
            page, slider, args.moves, lambda: title_z(title.inner_text())[0],
            start_z1 + 0.05 * args.moves,
        )  # fmt: skip
        page.locator(".da-lat").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "bench_latency_browser.png"))

        # The convolution helper's sliding window on Inspect.
        page.get_by_test_id("stSidebarNav").get_by_text("Inspect").click()
        page.get_by_role("tab", name="Convolution arithmetic").click()
        page.locator(".da-conv-canvas").wait_for()
        # Between an input cell and an output cell, so that every move picks another cell.
        results["browser_conv_move"] = percentiles(
            pointer_sweep(page, ".da-conv-canvas", args.moves, lambda k: (0.2 + 0.6 * (k % 2), 0.5))
        )
    results["load_average_before"] = [round(v, 2) for v in load_before]
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
