"""A real Chromium: a click on a confusion-matrix cell shows that cell's examples, and a stroke
that starts in the drawing canvas's top-right corner counts, with nothing over the canvas."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.app import test_browser_explore as explore
from tests.app.browser import ARTIFACTS, BROWSER_TEST

SHOTS = ARTIFACTS / "results"

pytestmark = BROWSER_TEST

# The page position of the centre of confusion cell (row, column), from plotly's own axes.
CELL_CENTRE_JS = """([row, column]) => {
  const chart = document.querySelector('.st-key-train_confusion_chart .js-plotly-plot');
  const box = chart.getBoundingClientRect();
  const xa = chart._fullLayout.xaxis, ya = chart._fullLayout.yaxis;
  return [box.left + xa._offset + xa.l2p(column), box.top + ya._offset + ya.l2p(row)];
}"""
# Width in pixels of the examples chart's image row (28 px per digit, 1 px between).
EXAMPLES_WIDTH_JS = """() => {
  const chart = document.querySelector('.st-key-train_cell_examples .js-plotly-plot');
  const z = chart && chart._fullData[0].z;
  return z ? z[0].length : -1;
}"""


# The exploration tests' tab on a server of its own (a module-scoped fixture, one per module).
page = explore.page


def base_url(tab) -> str:
    parts = urlsplit(tab.url)
    return f"{parts.scheme}://{parts.netloc}"


def test_a_click_on_a_confusion_cell_shows_its_examples(page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{base_url(page)}/train?arch=mlp&hidden_sizes=16&epochs=1")
    start = page.locator(".st-key-train_start button")
    start.wait_for(timeout=180_000)  # the Train page's first run on a busy 2-core machine
    start.click()
    finished = page.locator('[data-testid="stMetricValue"]').filter(has_text="finished")
    finished.wait_for(timeout=180_000)
    page.locator(".st-key-train_confusion_chart .js-plotly-plot").wait_for()
    page.get_by_text("final validation accuracy").wait_for()
    page.get_by_text(re.compile(r"^true \d, predicted \d: \d+ of the 500")).wait_for()
    page.locator(".st-key-train_confusion_chart").scroll_into_view_if_needed()
    for row, column in ((3, 3), (7, 2)):
        x, y = page.evaluate(CELL_CENTRE_JS, [row, column])
        page.mouse.move(x, y)  # plotly finds the point under the pointer on hover, then clicks it
        page.wait_for_timeout(300)
        page.mouse.click(x, y)
        caption = page.get_by_text(re.compile(rf"^true {row}, predicted {column}: \d+ of the 500"))
        caption.wait_for()
        count = int(re.search(r": (\d+) of", caption.inner_text()).group(1))
        if count:
            page.wait_for_function(
                f"({EXAMPLES_WIDTH_JS})() === {min(count, 8) * 29 - 1}", timeout=30_000
            )
        page.screenshot(path=SHOTS / f"confusion_cell_{row}_{column}.png", full_page=True)


def test_a_stroke_from_the_canvas_top_right_corner_counts_and_nothing_overlaps(page):
    page.goto(base_url(page))
    page.get_by_test_id("stSidebarNav").wait_for()
    explore.open_feature_maps(page)
    page.get_by_text("draw a digit").click()
    canvas = page.locator("canvas.da-draw-canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None and box["width"] == 224
    radio = page.get_by_test_id("stRadio").first.bounding_box()
    clear = page.get_by_role("button", name="Clear").bounding_box()
    assert radio["y"] + radio["height"] <= box["y"]  # the input choice ends above the canvas
    assert clear["y"] >= box["y"] + box["height"]  # the only control is below it
    # What lies under the canvas's corners is the canvas itself (no invisible toolbar).
    corners = [(box["width"] - 2, 2), (2, 2), (box["width"] - 2, box["height"] - 2)]
    for dx, dy in corners:
        hit = page.evaluate(
            """([x, y]) => {
                let el = document.elementFromPoint(x, y);
                while (el && el.shadowRoot) {
                  const inner = el.shadowRoot.elementFromPoint(x, y);
                  if (!inner || inner === el) break;
                  el = inner;
                }
                return el ? el.className : null;
            }""",
            [box["x"] + dx, box["y"] + dy],
        )
        assert hit == "da-draw-canvas", (dx, dy, hit)
    # A stroke that starts 2 px from the top-right corner, at once (no hover first).
    x, y = box["x"] + box["width"] - 2, box["y"] + 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 31):
        page.mouse.move(x - k * 3, y + k * 6, steps=2)
    page.mouse.up()
    assert page.locator(".da-draw").get_attribute("data-strokes") == "1"
    prediction = page.get_by_test_id("stPlotlyChart").filter(has_text="prediction:").first
    prediction.wait_for()
    assert re.search(r"prediction: \d \(\d+%\)", prediction.inner_text())
    page.get_by_text("1 stroke").wait_for()
    page.screenshot(path=SHOTS / "drawn_from_the_corner.png", full_page=True)
    page.get_by_role("button", name="Clear").click()
    page.get_by_text("Draw a digit on the canvas to see what the network makes of it.").wait_for()
