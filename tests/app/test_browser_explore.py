"""A real Chromium against `streamlit run app.py`: a latent slider and a drawn digit."""

from __future__ import annotations

import re
import time

import pytest

from tests.app.browser import ARTIFACTS, CHROMIUM, chromium, chromium_available, running_app

SHOTS = ARTIFACTS / "explore"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def page():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_app("streamlit_explore") as url, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(url)
        tab.get_by_test_id("stSidebarNav").wait_for()
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


def test_latent_slider_changes_the_decoded_image(page):
    page.get_by_test_id("stSidebarNav").get_by_text("Latent space").click()
    page.get_by_role("button", name=re.compile(r"^Train vae on mnist")).click()
    stop_current_job(page, min_step=60)
    decoded = page.get_by_test_id("stPlotlyChart").filter(has_text=re.compile(r"decode\(")).first
    decoded.wait_for()
    # The sliders start at the median validation mean; read where, from the chart's title.
    # The chart may be attached before it is drawn (inner text still empty): wait for the title.
    deadline = time.monotonic() + 60
    while not (start := re.search(r"decode\((-?[\d.]+), (-?[\d.]+)\)", decoded.inner_text())):
        assert time.monotonic() < deadline, f"no decode(z1, z2) title: {decoded.inner_text()!r}"
        time.sleep(0.25)
    z1, z2 = float(start.group(1)), float(start.group(2))
    time.sleep(1.0)  # let plotly finish drawing
    page.screenshot(path=SHOTS / "latent_before.png")
    before = decoded.screenshot(path=SHOTS / "decoded_before.png")
    slider = page.locator(".st-key-lat_z1").get_by_role("slider")  # not the grid-range sliders
    slider.focus()
    key = "ArrowRight" if z1 < 2 else "ArrowLeft"  # 20 steps of 0.05: z1 moves by 1.00
    for _ in range(20):
        slider.press(key)
    z1 += 1.0 if key == "ArrowRight" else -1.0
    moved_title = f"decode({z1:.2f}, {z2:.2f})"
    moved = page.get_by_test_id("stPlotlyChart").filter(has_text=moved_title).first
    moved.wait_for()
    time.sleep(1.0)  # let plotly finish drawing the new heatmap
    after = moved.screenshot(path=SHOTS / "decoded_after.png")
    page.screenshot(path=SHOTS / "latent_after.png")
    assert before != after


def open_feature_maps(tab) -> None:
    """The Feature maps page on a briefly trained cnn (started here unless the session has one)."""
    tab.get_by_test_id("stSidebarNav").get_by_text("Feature maps").click()
    start = tab.get_by_role("button", name=re.compile(r"^Train cnn on mnist"))
    tab.get_by_text(re.compile(r"^Showing job|Nothing of that kind")).first.wait_for()
    if start.count():
        start.click()
        stop_current_job(tab, min_step=30)


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
