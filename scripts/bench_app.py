"""Benchmark (by hand): training speed in the running app against the CLI, and click-to-chart time.

    python scripts/bench_app.py --epochs 5
    python scripts/bench_app.py --pages --baseline /tmp/deeparch-before

With --pages it times what a student waits for instead, on a fresh server, in Chromium: Home's
first paint (its title, its first card, every card) from the moment the server is healthy;
Inspect in a fresh tab (the first on the server, then another); Start to the first loss point on
the Train page (the first run on the server, which loads the data, then another). --baseline
names another checkout (git worktree add --detach <dir> <commit>) measured the same way in the
same run, so the figures compare under the same load; the load average is printed with them, and
then each of issue 12's targets beside its measured value (the median of --repeat rounds). One
round takes about a minute on a quiet machine.

Starts `streamlit run app.py`, drives Chromium to the Train page with the given settings, clicks
Start and times the first loss point on the chart, then reads samples/s from the page once the run
has finished (the browser keeps polling all along). The same configuration then trains through
`python -m deeparch train`, and again with the app's thread count (one core fewer, left to the
browser); the figures are printed with their ratios as JSON.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # deeparch and its tests
from deeparch.engine.threads import threads_beside_a_browser  # noqa: E402
from tests.app.browser import (  # noqa: E402  (the browser tests' helpers)
    CHROMIUM,
    CHROMIUM_ARGS,
    COUNT_POINTS_JS,
    REPO,
    free_port,
    start_server,
    stop_server,
    wait_healthy,
)


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def app_run(page, url: str, arch: str, epochs: int, timeout: float) -> dict:
    """One run from the Train page: seconds from Start to the first loss point, and samples/s."""
    page.goto(f"{url}/train?arch={arch}&epochs={epochs}")
    start = page.locator(".st-key-train_start button")
    start.wait_for()
    clicked = time.monotonic()
    start.click()
    while page.evaluate(COUNT_POINTS_JS) <= 0:
        if time.monotonic() - clicked > timeout:
            raise TimeoutError("no loss point appeared")
        page.wait_for_timeout(20)
    first_point_s = time.monotonic() - clicked
    while metric_value(page, "state") not in ("finished", "stopped", "failed", "diverged"):
        if time.monotonic() - clicked > timeout:
            raise TimeoutError("the run did not finish")
        page.wait_for_timeout(250)
    return {
        "state": metric_value(page, "state"),
        "first_point_s": round(first_point_s, 2),
        "samples_per_s": float(metric_value(page, "samples/s").replace(",", "")),
    }


def cli_run(arch: str, epochs: int, threads: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "deeparch", "train", arch, "--epochs", str(epochs),
                   "--out", folder]  # fmt: skip
        if threads is not None:
            command += ["--threads", str(threads)]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def seconds_until(page, selector: str, since: float, count: int = 1) -> float:
    """Seconds from `since` until `count` elements match `selector` and the first is visible."""
    locator = page.locator(selector)
    locator.first.wait_for(state="visible")
    while locator.count() < count:
        page.wait_for_timeout(20)
    return round(time.monotonic() - since, 2)


def first_point_s(page, url: str, arch: str) -> float:
    """Start to the first loss point on the chart; the run is stopped then."""
    page.goto(f"{url}/train?arch={arch}&epochs=50")
    start = page.locator(".st-key-train_start button")
    start.wait_for()
    page.wait_for_timeout(500)  # the page settles (the sidebar's first draw)
    clicked = time.monotonic()
    start.click()
    while page.evaluate(COUNT_POINTS_JS) <= 0:
        page.wait_for_timeout(10)
    seconds = round(time.monotonic() - clicked, 2)
    page.locator(".st-key-train_stop button").click()
    page.locator('[data-testid="stMetricValue"]').filter(has_text="stopped").wait_for()
    return seconds


def page_times(checkout: Path, arch: str, timeout: float) -> dict:
    """Home, Inspect and Start-to-first-point on one fresh server of `checkout`."""
    from playwright.sync_api import sync_playwright

    from deeparch.models import list_archs

    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"deeparch-bench-pages-{port}.log"
    url = f"http://127.0.0.1:{port}"
    figures = {"checkout": str(checkout)}
    # The browser is started before the server, as a student's is already open: its launch
    # (0.5-2 s here) was counted in Home's title before (README: Waiting for a page).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(timeout * 1000)
        server = start_server(port, log_path, cwd=checkout)
        try:
            wait_healthy(url, server)
            healthy = time.monotonic()
            page.goto(url)
            figures["home_title_s"] = seconds_until(page, "h1", healthy)
            figures["home_first_card_s"] = seconds_until(
                page, "[class*=st-key-home_card_]", healthy
            )
            figures["home_all_cards_s"] = seconds_until(
                page, "[class*=st-key-home_card_]", healthy, len(list_archs())
            )
            for visit in ("first", "second"):
                tab = browser.new_page(viewport={"width": 1400, "height": 1000})
                tab.set_default_timeout(timeout * 1000)
                opened = time.monotonic()
                tab.goto(f"{url}/inspect?arch=cnn")
                # The count's text, whatever draws it (an st.metric before it was Markdown).
                count = '[data-testid="stMain"] >> text=93,322'
                figures[f"inspect_{visit}_tab_s"] = seconds_until(tab, count, opened)
                tab.close()
            figures["first_point_fresh_s"] = first_point_s(page, url, arch)
            figures["first_point_warm_s"] = first_point_s(page, url, arch)
        finally:
            stop_server(server)
        browser.close()
    return figures


# Issue 12's targets, in seconds: what each figure of --pages should be at most.
PAGE_TARGETS = {
    "home_title_s": 2.0,  # Home's first paint after the server is healthy
    "inspect_first_tab_s": 1.5,
    "inspect_second_tab_s": 1.5,
    "first_point_fresh_s": 2.0,
    "first_point_warm_s": 1.0,
}


def target_lines(runs: list[dict]) -> list[str]:
    """One line per target and checkout: the target beside the median of the rounds."""
    lines = []
    for checkout in dict.fromkeys(run["checkout"] for run in runs):
        own = [run for run in runs if run["checkout"] == checkout]
        loads = ", ".join(run["loadavg"] for run in own)
        lines.append(f"{checkout} ({len(own)} round(s), load average {loads}):")
        for figure, target in PAGE_TARGETS.items():
            measured = statistics.median(run[figure] for run in own)
            verdict = "met" if measured <= target else "NOT met"
            lines.append(f"  {figure:22s} target {target:4.1f} s  measured {measured:6.2f} s  "
                         f"{verdict}")  # fmt: skip
    return lines


def pages_main(args: argparse.Namespace) -> None:
    checkouts = [REPO] + ([Path(args.baseline)] if args.baseline else [])
    runs = []
    for _ in range(args.repeat):
        for checkout in checkouts:  # interleaved: both see the same load
            runs.append({**page_times(checkout, args.arch, args.timeout),
                         "loadavg": Path("/proc/loadavg").read_text().split()[0]})  # fmt: skip
    print(json.dumps(runs, indent=2))
    print("\n".join(target_lines(runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--pages", action="store_true", help="time Home, Inspect and Start")
    parser.add_argument("--baseline", help="another checkout to time the same way (--pages)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --pages")
    args = parser.parse_args()
    if args.pages:
        pages_main(args)
        return

    from playwright.sync_api import sync_playwright

    port = free_port()
    log_path = Path(tempfile.gettempdir()) / "deeparch-bench-streamlit.log"
    server = start_server(port, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(args.timeout * 1000)
            cold = app_run(page, url, args.arch, args.epochs, args.timeout)  # loads the data
            warm = app_run(page, url, args.arch, args.epochs, args.timeout)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    cli = cli_run(args.arch, args.epochs)
    # The app trains on one core fewer than the machine has, leaving one to the browser; the CLI
    # with that many threads separates the app's own overhead from the core it gives away.
    app_threads = threads_beside_a_browser()
    cli_same_threads = cli_run(args.arch, args.epochs, app_threads)
    report = {
        "arch": args.arch,
        "epochs": args.epochs,
        "app_cold": cold,
        "app_warm": warm,
        "app_threads": app_threads,
        "cli_samples_per_s": round(cli["samples_per_s"]),
        "app_over_cli": round(warm["samples_per_s"] / cli["samples_per_s"], 3),
        "cli_same_threads_samples_per_s": round(cli_same_threads["samples_per_s"]),
        "app_over_cli_same_threads": round(
            warm["samples_per_s"] / cli_same_threads["samples_per_s"], 3
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
