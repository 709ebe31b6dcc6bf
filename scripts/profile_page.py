"""Profile (by hand): what a fresh Chromium tab waits for between the server's answer and a paint.

    python scripts/profile_page.py                       # /inspect?arch=cnn until 93,322 shows
    python scripts/profile_page.py --checkout /tmp/deeparch-before --repeat 2

On a fresh server of the checkout, Home is opened first and waited for (every card), as in
`bench_app.py --pages`; then a new browser context (an empty cache: a fresh tab) opens the page
under Chromium's trace (DevTools timeline, V8's sampling profiler, the network). The page marks
(performance.mark, in the trace's clock) each websocket message it receives and the first
appearance of each watched element in the DOM, then the frame after it (its paint). Printed,
in ms from the navigation: the messages, each watched element, the scripts fetched and when
they finished, and the renderer's main thread between the server's last message before the
watched text and that text's paint: busy time by activity, by script (V8's samples), and what
was idle.
"""

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # deeparch and its tests
from tests.app.browser import (  # noqa: E402  (the browser tests' helpers)
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    free_port,
    start_server,
    stop_server,
    wait_healthy,
)

# What the page marks, by name: a CSS selector, and optionally a text the element must contain.
WATCHED = {
    "title": ("h1", ""),
    "radio": ('[data-testid="stRadio"]', ""),
    "selectbox": ('[data-testid="stSelectbox"]', ""),
    "number input": ('[data-testid="stNumberInput"]', ""),
    "metric": ('[data-testid="stMetricValue"]', ""),
    "text": ('[data-testid="stMain"]', "{text}"),
    "hint": ('[data-testid="stCaptionContainer"]', "Click a row"),
    "tabs": ('[data-testid="stTabs"]', ""),
    "table": ('[data-testid="stDataFrame"]', ""),
    "table canvas": ('[data-testid="stDataFrame"] canvas', ""),
    "markdown table": ('[data-testid="stMarkdownContainer"] table', ""),
}
# Marks each websocket message ("ws <n> <bytes>"), each watched element's first appearance
# ("seen <name>") and the frame after it ("painted <name>": a task posted from the next
# animation frame runs after that frame is drawn).
MARKS_JS = """
(() => {
  const watched = %s;
  const Native = window.WebSocket;
  let messages = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => {
        const data = event.data;
        performance.mark(`ws ${messages++} ${data.byteLength ?? data.size ?? data.length}`);
      });
    }
  };
  const seen = new Set();
  const skeletons = {max: 0};
  const check = () => {
    for (const [name, [selector, text]] of Object.entries(watched)) {
      if (seen.has(name)) continue;
      const found = [...document.querySelectorAll(selector)].some(
        (element) => !text || element.textContent.includes(text));
      if (!found) continue;
      seen.add(name);
      performance.mark(`seen ${name}`);
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => performance.mark(`painted ${name}`);
        channel.port2.postMessage(0);
      });
    }
    const count = document.querySelectorAll('[data-testid="stSkeleton"]').length;
    if (count !== skeletons.last) performance.mark(`skeletons ${count}`);
    skeletons.last = count;
  };
  new MutationObserver(check).observe(document, {
    childList: true, subtree: true, characterData: true,
  });
})();
"""
TRACE_CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "toplevel",
    "v8.execute",
    "blink.user_timing",
    "loading",
    "disabled-by-default-v8.cpu_profiler",
]
# Main-thread activities, from the trace's event names.
ACTIVITY = {
    "v8.compile": "compile",
    "v8.compileModule": "compile",
    "v8.parseOnBackground": "compile",
    "CompileCode": "compile",
    "EvaluateScript": "run script",
    "v8.evaluateModule": "run script",
    "FunctionCall": "run script",
    "v8.run": "run script",
    "TimerFire": "run script",
    "FireAnimationFrame": "run script",
    "EventDispatch": "run script",
    "UpdateLayoutTree": "style",
    "RecalculateStyles": "style",
    "ParseAuthorStyleSheet": "style",
    "Layout": "layout",
    "Paint": "paint",
    "PrePaint": "paint",
    "Layerize": "paint",
    "UpdateLayer": "paint",
    "Commit": "paint",
    "MinorGC": "garbage collection",
    "MajorGC": "garbage collection",
    "V8.GC_SCAVENGER": "garbage collection",
    "ParseHTML": "parse HTML",
    "ResourceReceivedData": "network",
    "ResourceFinish": "network",
}


def record(checkout: Path, target: str, text: str, timeout: float) -> dict:
    """One fresh server of `checkout`: Home first, then `target` in a fresh context, traced."""
    from playwright.sync_api import sync_playwright

    from deeparch.models import list_archs

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / f"deeparch-profile-{port}.log"
    trace_path = Path(tempfile.gettempdir()) / f"deeparch-profile-{port}.json"
    watched = {name: (selector, value.format(text=text)) for name, (selector, value) in
               WATCHED.items()}  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        server = start_server(port, log_path, cwd=checkout)
        try:
            wait_healthy(url, server)
            home = browser.new_page(viewport={"width": 1400, "height": 1000})
            home.set_default_timeout(timeout * 1000)
            home.goto(url)
            cards = home.locator("[class*=st-key-home_card_]")
            cards.first.wait_for()
            while cards.count() < len(list_archs()):
                home.wait_for_timeout(50)
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(timeout * 1000)
            tab.add_init_script(MARKS_JS % json.dumps(watched))
            browser.start_tracing(page=tab, path=str(trace_path), categories=TRACE_CATEGORIES)
            opened = time.monotonic()
            tab.goto(f"{url}{target}")
            tab.get_by_test_id("stMain").get_by_text(text).first.wait_for(state="visible")
            seconds = time.monotonic() - opened
            tab.wait_for_timeout(1500)  # the rest of the page (the table's canvas) settles
            browser.stop_tracing()
        finally:
            stop_server(server)
        browser.close()
    events = json.loads(trace_path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    return {"checkout": str(checkout), "wait_for_visible_s": round(seconds, 2),
            **summarise(events, text)}  # fmt: skip


def renderer_of(events: list[dict]) -> tuple[int, int]:
    """The (pid, tid) of the main thread of the renderer that made the page's marks."""
    pid = next(e["pid"] for e in events if e.get("name", "").startswith("seen "))
    tid = next(
        e["tid"]
        for e in events
        if e.get("ph") == "M" and e.get("pid") == pid and e["args"].get("name") == "CrRendererMain"
    )
    return pid, tid


def summarise(events: list[dict], text: str) -> dict:
    pid, tid = renderer_of(events)
    timings = sorted(
        (e["ts"], e["name"])
        for e in events
        if e.get("pid") == pid and e.get("cat") == "blink.user_timing"
    )
    marks = {}
    for ts, name in timings:
        marks.setdefault(name, ts)
    first_message = min((ts for ts, name in timings if name.startswith("ws ")), default=None)
    # The page's own navigation: the last one before its first websocket message.
    zero = max(ts for ts, name in timings if name == "navigationStart"
               and (first_message is None or ts <= first_message))  # fmt: skip

    def ms(ts: float) -> float:
        return round((ts - zero) / 1000, 1)

    ws = sorted((ts, name) for name, ts in marks.items() if name.startswith("ws "))
    watched = {
        name.removeprefix("seen "): {
            "seen": ms(ts),
            "painted": ms(marks.get(f"painted {name[5:]}", ts)),
        }
        for name, ts in sorted(marks.items(), key=lambda item: item[1])
        if name.startswith("seen ")
    }
    skeletons = [
        (ms(ts), int(name.split()[1])) for ts, name in timings if name.startswith("skeletons")
    ]
    text_seen = marks.get("seen text")
    text_painted = marks.get("painted text", text_seen)
    before_text = [ts for ts, _ in ws if text_seen is None or ts <= text_seen]
    answered = before_text[-1] if before_text else zero
    scripts = resources(events, pid, zero)
    window = (answered, text_painted or answered)
    return {
        "ws_messages": len(ws),
        "ws_bytes": sum(int(name.split()[2]) for _, name in ws if name.split()[2].isdigit()),
        "ws_first_ms": ms(ws[0][0]) if ws else None,
        "ws_last_before_text_ms": ms(answered),
        "ws_last_ms": ms(ws[-1][0]) if ws else None,
        "watched_ms": watched,
        "skeletons (ms, count)": skeletons,
        "scripts": scripts,
        "window_ms": [ms(window[0]), ms(window[1])],
        "main_thread": main_thread(events, pid, tid, window),
        "samples_by_script": samples_by_script(events, pid, window),
    }


def resources(events: list[dict], pid: int, zero: float) -> dict:
    """Scripts and styles fetched: count, bytes, and when the last of them finished (ms)."""
    sent, finished = {}, {}
    for event in events:
        if event.get("pid") != pid:
            continue
        data = (event.get("args") or {}).get("data") or {}
        if event.get("name") == "ResourceSendRequest":
            sent[data["requestId"]] = (data.get("url", ""), event["ts"])
        elif event.get("name") == "ResourceFinish" and data.get("requestId") in sent:
            finished[data["requestId"]] = (
                data.get("finishTime", event["ts"] / 1e6) * 1e6,
                data.get("encodedDataLength", 0),
            )
    rows = []
    for request, (url, start) in sent.items():
        if request in finished and url.endswith((".js", ".css")):
            end, size = finished[request]
            rows.append((round((start - zero) / 1000), round((end - zero) / 1000), size,
                         url.rsplit("/", 1)[-1]))  # fmt: skip
    rows.sort(key=lambda row: row[1])
    largest = sorted(rows, key=lambda row: -row[2])[:8]
    return {
        "count": len(rows),
        "bytes": sum(row[2] for row in rows),
        "last_finished_ms": rows[-1][1] if rows else None,
        "largest (sent ms, finished ms, bytes, file)": largest,
    }


def main_thread(events: list[dict], pid: int, tid: int, window: tuple[float, float]) -> dict:
    """Busy ms of the main thread in the window by activity (self time of nested events)."""
    spans = sorted(
        (e for e in events if e.get("pid") == pid and e.get("tid") == tid and e.get("ph") == "X"
         and "dur" in e),
        key=lambda e: (e["ts"], -e["dur"]),
    )  # fmt: skip
    start, end = window
    by_activity, by_url = collections.Counter(), collections.Counter()
    stack: list[dict] = []
    busy = 0.0

    def overlap(a: float, b: float) -> float:
        return max(0.0, min(b, end) - max(a, start))

    for span in spans:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= span["ts"]:
            stack.pop()
        if not stack and span["name"] == "RunTask":
            busy += overlap(span["ts"], span["ts"] + span["dur"])
        if stack:
            stack[-1].setdefault("_children", []).append(span)
        stack.append(span)
    for span in spans:
        activity = ACTIVITY.get(span["name"])
        if activity is None:
            continue
        own = overlap(span["ts"], span["ts"] + span["dur"])
        for child in span.get("_children", []):
            if ACTIVITY.get(child["name"]) is not None:
                own -= overlap(child["ts"], child["ts"] + child["dur"])
        by_activity[activity] += own
        data = (span.get("args") or {}).get("data") or {}
        if activity in ("compile", "run script") and data.get("url"):
            by_url[data["url"].rsplit("/", 1)[-1]] += own
    return {
        "window": round((end - start) / 1000),
        "busy": round(busy / 1000),
        "idle": round((end - start - busy) / 1000),
        "by_activity": {k: round(v / 1000) for k, v in by_activity.most_common() if v >= 1000},
        "by_script_entry": {k: round(v / 1000) for k, v in by_url.most_common(8)},
    }


def samples_by_script(events: list[dict], pid: int, window: tuple[float, float]) -> dict:
    """V8's CPU samples in the window, by the script of the sampled function (ms)."""
    nodes, counts = {}, collections.Counter()
    clock: dict[str, float] = {}
    interval = []
    for event in sorted((e for e in events if e.get("pid") == pid), key=lambda e: e.get("ts", 0)):
        data = (event.get("args") or {}).get("data") or {}
        if event.get("name") == "Profile":
            clock[event["id"]] = data.get("startTime", event["ts"])
        elif event.get("name") == "ProfileChunk":
            profile = data.get("cpuProfile", {})
            for node in profile.get("nodes", []):
                frame = node.get("callFrame", {})
                url = frame.get("url", "").rsplit("/", 1)[-1]
                nodes[node["id"]] = url or f"({frame.get('functionName', '') or 'program'})"
            now = clock.get(event["id"], event["ts"])
            for sample, delta in zip(profile.get("samples", []), data.get("timeDeltas", [])):
                now += delta
                interval.append(delta)
                if window[0] <= now <= window[1]:
                    counts[nodes.get(sample, "?")] += 1
            clock[event["id"]] = now
    step = sorted(interval)[len(interval) // 2] if interval else 0  # µs per sample
    return {name: round(n * step / 1000) for name, n in counts.most_common(10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", default=str(REPO))
    parser.add_argument("--target", default="/inspect?arch=cnn", help="the page, from the root")
    parser.add_argument("--text", default="93,322", help="the text whose paint is waited for")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    for _ in range(args.repeat):
        report = record(Path(args.checkout), args.target, args.text, args.timeout)
        report["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
        print(json.dumps(report, indent=1), flush=True)


if __name__ == "__main__":
    main()
