"""A real Chromium against `streamlit run app.py`: the latent explorer, the conv helper and a
drawn digit."""

from __future__ import annotations

import re
import time

import pytest

from tests.app.browser import ARTIFACTS, BROWSER_TEST, app_tab

SHOTS = ARTIFACTS / "explore"

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def page():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with app_tab("streamlit_explore") as tab:
        # The page's own errors, quoted when a component never draws (a JS exception is silent).
        tab.console_errors = []
        tab.on("console", lambda m: m.type == "error" and tab.console_errors.append(m.text))
        tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
        yield tab


def stop_current_job(tab, min_step: int) -> None:
    """Let the job reach `min_step`, then stop it from the sidebar so its model stays put."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    status = tab.get_by_text(re.compile(r"^running · step \d+/"))
    deadline = time.monotonic() + 240
    while True:
        text = status.first.inner_text() if status.count() else ""
        match = re.search(r"step (\d+)/", text)
        if match and int(match.group(1)) >= min_step:
            break
        assert time.monotonic() < deadline, f"training did not reach step {min_step}: {text!r}"
        time.sleep(1.0)
    done = tab.get_by_text(re.compile(r"^(stopped|finished) · step")).first
    for _attempt in range(3):  # the sidebar re-renders every second: a click can hit a stale button
        stop = tab.get_by_test_id("stSidebar").get_by_role("button", name="Stop")
        if stop.count():
            stop.first.click()
        try:
            done.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            continue
    done.wait_for(timeout=20_000)


# Reads a canvas's pixels into one number (inside the component's shadow root).
CANVAS_HASH = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 4) hash = (Math.imul(hash, 31) + data[i]) >>> 0;
  return hash;
}"""


def open_explore_page(tab, page_name: str, arch: str, min_step: int) -> None:
    """An exploration page on a briefly trained model (started here unless the session has one)."""
    tab.get_by_test_id("stSidebarNav").get_by_text(page_name).click()
    start = tab.get_by_role("button", name=re.compile(rf"^Train {arch} on mnist"))
    tab.get_by_text(re.compile(r"^Showing job|Nothing of that kind")).first.wait_for()
    if start.count():
        start.click()
        stop_current_job(tab, min_step=min_step)


def open_latent_explorer(tab):
    """The Latent space page's browser explorer on a briefly trained 2-D VAE."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    open_explore_page(tab, "Latent space", "vae", min_step=60)
    title = tab.locator(".da-lat-title")
    try:
        title.wait_for()
    except PlaywrightTimeout:
        tab.screenshot(path=SHOTS / "latent_not_drawn.png", full_page=True)
        main = tab.get_by_test_id("stMain").inner_text()
        raise AssertionError(
            f"the latent explorer drew nothing; the page's errors: {tab.console_errors}; "
            f"its text: {main[:1500]!r}"
        ) from None
    # The z sliders start at the median validation mean; read where, from the title.
    deadline = time.monotonic() + 60
    while not (start := re.search(r"^decode\((-?[\d.]+), (-?[\d.]+)\)", title.inner_text())):
        assert time.monotonic() < deadline, f"no decode(z1, z2) title: {title.inner_text()!r}"
        time.sleep(0.25)
    return tab.locator(".da-lat-decoded"), float(start.group(1)), float(start.group(2))


def test_latent_slider_changes_the_decoded_image(page):
    decoded, z1, z2 = open_latent_explorer(page)
    decoded.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "latent_before.png")
    before = decoded.screenshot(path=SHOTS / "decoded_before.png")
    slider = page.locator(".da-lat-z1")  # the explorer's z1, not the grid-range sliders
    slider.focus()
    key = "ArrowRight" if z1 < 2 else "ArrowLeft"  # 20 steps of 0.05: z1 moves by 1.00
    for _ in range(20):
        slider.press(key)
    z1 += 1.0 if key == "ArrowRight" else -1.0
    moved_title = f"decode({z1:.2f}, {z2:.2f})"
    page.locator(".da-lat-title").filter(has_text=moved_title).wait_for()
    after = decoded.screenshot(path=SHOTS / "decoded_after.png")
    page.screenshot(path=SHOTS / "latent_after.png")
    assert before != after


def test_a_drag_over_the_latent_scatter_repaints_the_decode_on_every_move(page):
    decoded, _, _ = open_latent_explorer(page)
    scatter = page.locator(".da-lat-scatter")
    scatter.scroll_into_view_if_needed()
    box = scatter.bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    seen = [decoded.evaluate(CANVAS_HASH)]
    titles = []
    for k in range(1, 13):  # 12 moves of 12 px down and to the right, button held
        page.mouse.move(x + 12 * k, y + 12 * k)
        seen.append(decoded.evaluate(CANVAS_HASH))
        titles.append(page.locator(".da-lat-title").inner_text())
        if k == 6:
            page.screenshot(path=SHOTS / "latent_dragging.png")
    page.mouse.up()
    assert all(a != b for a, b in zip(seen, seen[1:])), seen  # a new picture at every move
    assert len(set(titles)) == len(titles)  # and a new z
    # Released, the point reaches the server: its own sliders start there.
    released = re.match(r"decode\((-?[\d.]+), (-?[\d.]+)\)", titles[-1])
    z1, z2 = (float(v) for v in released.groups())
    time.sleep(1.0)  # the rerun the release starts
    page.get_by_text("answer in the browser").first.click()
    server = page.get_by_test_id("stPlotlyChart").filter(has_text=re.compile(r"decode\(")).first
    server.wait_for()
    deadline = time.monotonic() + 60
    while not (shown := re.search(r"decode\((-?[\d.]+), (-?[\d.]+)\)", server.inner_text())):
        assert time.monotonic() < deadline, "the server-drawn decode has no title"
        time.sleep(0.25)
    assert float(shown.group(1)) == pytest.approx(z1, abs=0.01)
    assert float(shown.group(2)) == pytest.approx(z2, abs=0.01)
    page.screenshot(path=SHOTS / "latent_server_path.png")
    page.get_by_text("answer in the browser").first.click()  # back to the browser explorer
    page.locator(".da-lat-title").wait_for()


def test_conv_helper_transposed_mode_marks_what_one_input_writes(page):
    page.get_by_test_id("stSidebarNav").get_by_text("Inspect").click()
    page.get_by_role("tab", name="Convolution arithmetic").click()
    page.get_by_role("button", name="upsampler 2 → 12").click()
    page.get_by_text("output size: 12 × 12").wait_for()
    canvas = page.locator(".da-conv-canvas")
    caption = page.locator(".da-conv-caption")
    caption.filter(has_text="input (0, 0) writes").wait_for()
    assert canvas.get_attribute("data-highlighted") == "64"  # the 8x8 kernel's worth
    assert "output rows 0–7, columns 0–7" in caption.inner_text()
    # The input's sliding cell, moved with the component's own sliders.
    page.locator(".da-conv-r").fill("1")
    page.locator(".da-conv-c").fill("1")
    caption.filter(has_text="input (1, 1) writes").wait_for()
    assert "output rows 4–11, columns 4–11: 64 cells" in caption.inner_text()
    # Measured after the sliders: focusing one may scroll the page (on CI the corner below
    # was then off the canvas and the pointer pointed at nothing).
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # Pointing at an output cell where two windows overlap names both inputs' rows.
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2)
    caption.filter(has_text="output (11, 11)").wait_for()
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.55)
    caption.filter(has_text=re.compile(r"^output \(\d+, \d+\) adds up")).wait_for()
    page.screenshot(path=SHOTS / "conv_transposed.png")


def open_feature_maps(tab) -> None:
    """The Feature maps page on a briefly trained cnn (started here unless the session has one)."""
    open_explore_page(tab, "Feature maps", "cnn", min_step=30)


# The canvas is a third-party component that mounts late on a busy 2-core machine; one retry.
@pytest.mark.flaky(reruns=1)
def test_drawn_digit_gets_a_prediction(page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    open_feature_maps(page)
    page.get_by_text("draw a digit").click()
    page.get_by_text("Draw a digit on the canvas").wait_for()
    canvas = page.locator("canvas").last
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None and box["width"] >= 200
    prediction = page.get_by_test_id("stPlotlyChart").filter(has_text="prediction:").first
    x, y = box["x"] + box["width"] / 2, box["y"] + 40
    for _attempt in range(3):  # fabric.js may miss a stroke while the component is still mounting
        page.mouse.move(x, y)
        time.sleep(0.5)
        page.mouse.down()
        for k in range(1, 31):  # a "1": a slightly slanted stroke down the middle
            page.mouse.move(x - k * 0.6, y + k * 5, steps=2)
        page.mouse.up()
        try:
            prediction.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            page.screenshot(path=SHOTS / "features_missed_stroke.png")
    page.get_by_text("Output of every conv layer, before its activation").wait_for()
    time.sleep(1.0)
    page.screenshot(path=SHOTS / "features_drawn.png")
    assert re.search(r"prediction: \d \(\d+%\)", prediction.inner_text())


def test_uploaded_picture_is_classified_and_a_broken_file_explained(page, tmp_path):
    from PIL import Image, ImageDraw

    paper = Image.new("L", (300, 400), 255)  # a dark "1" on white paper, like a photo
    ImageDraw.Draw(paper).line([(150, 60), (140, 340)], fill=0, width=28)
    photo = tmp_path / "one.png"
    paper.save(photo)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")

    open_feature_maps(page)
    page.get_by_text("upload a picture").click()
    chooser = page.locator("input[type=file]")
    chooser.set_input_files(str(broken))
    page.get_by_text(
        re.compile(r"broken.png could not be read as a picture: it is damaged or not an image")
    ).wait_for()
    page.screenshot(path=SHOTS / "features_broken_upload.png")
    chooser.set_input_files(str(photo))
    prediction = page.get_by_test_id("stPlotlyChart").filter(has_text="prediction:").first
    prediction.wait_for()
    time.sleep(1.0)
    page.screenshot(path=SHOTS / "features_uploaded.png")
    assert re.search(r"prediction: \d \(\d+%\)", prediction.inner_text())
