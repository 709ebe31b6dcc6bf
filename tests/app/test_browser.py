"""A real Chromium drives `streamlit run app.py`: train, watch the loss, pause, stop, inspect."""

import time
from urllib.parse import parse_qs, quote, urlparse

import pytest

from tests.app.browser import (
    BROWSER_TEST,
    COUNT_POINTS_JS,
    chromium,
    running_app,
    shoot,
)

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def server_url():
    with running_app("streamlit") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def wait_for_points(page, more_than: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = page.evaluate(COUNT_POINTS_JS)
        if count > more_than:
            return count
        page.wait_for_timeout(200)
    raise AssertionError(f"the loss chart never held more than {more_than} points")


def state_metric(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="state").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_a_first_visit_straight_to_a_page_still_runs_the_router(server_url, page):
    # First test of the module, so the server is fresh: Streamlit used to run pages/train.py on
    # its own here (old pages/ directory mode), without app.py's job sidebar.
    page.goto(f"{server_url}/train?arch=cnn&epochs=3")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Your jobs").wait_for()
    assert sidebar.get_by_role("link", name="Feature maps").count() == 1
    assert sidebar.get_by_role("link", name="shared").count() == 0  # pages/_shared.py
    from playwright.sync_api import expect

    # expect() retries: the first script run may still be replaced by the router's rerun.
    expect(page.locator(".st-key-train_arch input")).to_have_value("cnn", timeout=30_000)
    expect(page.locator(".st-key-train_cfg_epochs input")).to_have_value("3", timeout=30_000)


FIRST_ROW = ("mlp", "logistic_regression", "softmax_regression")  # the registry's first three


def test_home_gallery_renders(server_url, page):
    page.goto(server_url)
    page.get_by_role("button", name="Inspect").first.wait_for()
    # Home draws its heading first and its cards as the script reaches them: wait for each.
    page.get_by_text("93,322").first.wait_for()  # the card of Chollet's convnet (cnn)
    # The cards of the first row are equally tall and their buttons line up, although their
    # summaries have different lengths.
    cards = [page.locator(f".st-key-home_card_{arch}") for arch in FIRST_ROW]
    buttons = [card.get_by_role("button", name="Inspect") for card in cards]
    for button in buttons:
        button.wait_for()
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")  # the run ended
    heights = {round(card.bounding_box()["height"]) for card in cards}
    button_tops = {round(button.bounding_box()["y"]) for button in buttons}
    assert len(heights) == 1 and len(button_tops) == 1, (heights, button_tops)
    shoot(page, "home")


def test_train_mlp_watch_the_loss_pause_and_stop(server_url, page):
    # The share link sets 200 epochs, so the run lasts long enough to watch, pause and stop.
    page.goto(f"{server_url}/train?arch=mlp&epochs=200")
    start = page.locator(".st-key-train_start button")
    start.wait_for()
    start.click()
    first = wait_for_points(page, 0)
    page.wait_for_timeout(1500)
    second = wait_for_points(page, first)
    assert second > first
    shoot(page, "train_running")

    page.locator(".st-key-train_pause button").click()
    page.locator(".st-key-train_resume button").wait_for()
    assert state_metric(page) == "paused"
    page.wait_for_timeout(1000)  # the step under way when Pause was pressed still lands
    paused_points = page.evaluate(COUNT_POINTS_JS)
    page.wait_for_timeout(1500)
    assert page.evaluate(COUNT_POINTS_JS) == paused_points  # nothing trains while paused
    page.get_by_role("button", name="Download checkpoint (.zip)").wait_for()  # paused: savable
    shoot(page, "train_paused")

    page.locator(".st-key-train_stop button").click()
    page.locator('[data-testid="stMetricValue"]').filter(has_text="stopped").wait_for()
    page.get_by_role("button", name="Download checkpoint (.zip)").wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("stopped").count() >= 1
    shoot(page, "train_stopped")

    # Compare overlays the session's runs.
    page.get_by_role("link", name="Compare").click()
    page.locator(".st-key-compare_loss_chart").wait_for()
    assert page.get_by_text("mlp on mnist").count() >= 1
    shoot(page, "compare")

    # The address bar (?job=<id>) opened in another browser (its own cookies, so another
    # owner) shows the job read-only while the job is in memory, and hands over no control.
    job_id = parse_qs(urlparse(page.url).query)["job"][0]
    stranger = page.context.browser.new_context(viewport={"width": 1400, "height": 2000})
    try:
        other = stranger.new_page()
        other.set_default_timeout(60_000)
        other.goto(f"{server_url}/train?job={job_id}")
        read_only = other.get_by_text("Another session's job, shown read-only")
        other.get_by_text("Press Start to train").or_(read_only).first.wait_for()
        assert other.locator(".st-key-train_stop button").count() == 0
        other.get_by_text("No training jobs yet").wait_for()  # none of the owner's jobs
        shoot(other, "train_read_only")
    finally:
        stranger.close()


def test_a_share_link_shows_what_it_did_not_use_as_written(server_url, page):
    from playwright.sync_api import expect

    note = "**bold** [click](http://evil.example) <b>x</b> www.evil.example x@evil.example"
    page.goto(f"{server_url}/train?arch=mlp&hidden_sizes=1%206&epochs=3&note={quote(note)}")
    expect(page.locator(".st-key-train_cfg_epochs input")).to_have_value("3", timeout=30_000)
    alerts = page.get_by_test_id("stAlert")
    expect(alerts.filter(has_text="hidden_sizes='1 6' is not allowed")).to_have_count(1)
    shown = alerts.filter(has_text="note=")
    shown.wait_for()
    text = shown.inner_text().replace("\u2060", "")  # the word joiner that stops autolinks
    assert f"note={note!r} is not a setting: mlp has hidden_sizes" in text
    assert shown.locator("a, strong, b").count() == 0  # no link, no bold: Markdown is code
    assert page.locator(".st-key-train_mlp_hidden_sizes input").input_value() == "500,200,100"
    shoot(page, "train_share_link_problems")


def test_a_downloaded_checkpoint_uploads_again_and_a_harmful_zip_is_explained(
    server_url, page, tmp_path
):
    import io
    import zipfile

    from playwright.sync_api import expect

    page.goto(f"{server_url}/train?arch=mlp&hidden_sizes=8&max_steps=5")
    page.locator(".st-key-train_start button").click()
    download_button = page.get_by_role("button", name="Download checkpoint (.zip)")
    download_button.wait_for()
    with page.expect_download() as download:
        download_button.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert sorted(name.rsplit(".", 1)[1] for name in archive.namelist()) == [
            "json",
            "safetensors",
        ]
    upload = page.locator(".st-key-train_upload input[type=file]")
    upload.set_input_files(str(saved))
    expect(page.get_by_test_id("stAlert").filter(has_text="Loaded mlp")).to_contain_text(
        f"({saved.name}); compare it on the Compare page"
    )
    evil = tmp_path / "evil_*run*.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../w.safetensors", b"x")
    evil.write_bytes(buffer.getvalue())
    # A file is read once: after a load the uploader is a new widget (train_upload_1), empty.
    page.locator(".st-key-train_upload_1 input[type=file]").set_input_files(str(evil))
    refused = page.get_by_test_id("stAlert").filter(has_text="Could not load")
    expect(refused).to_have_text(
        "Could not load evil_*run*.zip: it holds '../w.safetensors', a path or a hidden name; "
        "zip the checkpoint's files themselves, without folders"
    )
    shoot(page, "train_upload_refused")


def test_inspect_shows_its_counts_and_subtotals_as_text_in_a_fresh_tab(server_url, page):
    # Markdown, which Streamlit's first script draws: a fresh tab painted st.metric's count in
    # the frame the layer table's code arrived (README: Waiting for a page).
    page.goto(f"{server_url}/inspect?arch=cnn")
    count = page.get_by_test_id("stMarkdownContainer").filter(has_text="mult-adds per sample")
    count.wait_for()
    assert count.inner_text().startswith("93,322 parameters · 93,322 trainable · ")
    cells = page.get_by_test_id("stMarkdownContainer").locator("table td")
    cells.first.wait_for()
    assert cells.all_inner_texts() == [
        "features", f"{320 + 18_496 + 36_928:,}", "59.7%",
        "classifier", f"{36_928 + 650:,}", "40.3%",
    ]  # fmt: skip
    page.get_by_test_id("stDataFrame").locator("canvas").first.wait_for()
    assert page.get_by_test_id("stDataFrame").count() == 1  # the layer table, clickable
    assert page.get_by_test_id("stMetric").count() == 0


def test_inspect_click_a_row_opens_the_layer(server_url, page):
    page.goto(f"{server_url}/inspect?arch=cnn")
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    page.wait_for_timeout(1000)  # the grid draws on a canvas after it mounts
    box = grid.bounding_box()
    row_height = 35
    # The selection column is at the left; row 1 (conv1) sits one row below the header.
    page.mouse.click(box["x"] + 12, box["y"] + row_height * 1.5)
    page.get_by_text("weight shape").first.wait_for()
    assert page.get_by_text("32x(1x3x3)+32 = 320").count() >= 1
    shoot(page, "inspect_layer")

    page.get_by_role("tab", name="Diagram").click()
    assert_graph_renders(page, "inspect_diagram")
    page.get_by_role("tab", name="Convolution arithmetic").click()
    page.get_by_role("button", name="stride 2: 10 → 3").click()
    page.get_by_text("output size: 3 × 3").wait_for()
    shoot(page, "inspect_conv_arithmetic")


def assert_graph_renders(page, name: str, min_nodes: int = 3) -> None:
    """Graphviz (compiled to WebAssembly in the browser) turned the DOT into an SVG of nodes."""
    nodes = page.locator(".st-key-inspect_diagram svg g.node")
    nodes.first.wait_for()
    assert nodes.count() >= min_nodes
    assert page.locator(".st-key-inspect_diagram svg g.edge text").count() > 0  # shapes
    # The main area scrolls inside the page, so a full-page shot ends at the viewport: make the
    # viewport as tall as the drawing (a ResNet's is ~4,500 px) to see all of it in the shot.
    box = page.locator(".st-key-inspect_diagram").bounding_box()
    width = page.viewport_size["width"]
    page.set_viewport_size(
        {"width": width, "height": min(int(box["y"] + box["height"]) + 80, 8000)}
    )
    shoot(page, name)


@pytest.mark.parametrize(
    "arch, joint, joints_collapsed",
    # resnet's adds and inception's cats lie inside the repeated blocks; unet's cats between them
    [("resnet", "add", 0), ("inception", "cat dim=1", 0), ("unet2d", "cat dim=1", 2)],
)
def test_inspect_diagram_draws_skips_branches_and_bridges(
    server_url, page, arch, joint, joints_collapsed
):
    page.goto(f"{server_url}/inspect?arch={arch}")
    page.get_by_role("tab", name="Diagram").click()
    assert_graph_renders(page, f"inspect_graph_{arch}", min_nodes=15)
    graph = page.locator(".st-key-inspect_diagram svg")
    assert graph.locator("g.node", has_text=joint).count() >= 2
    assert graph.locator("g.cluster").count() >= 4  # a frame per block
    expanded = graph.locator("g.node").count()
    page.get_by_text("collapse repeated blocks").click()
    page.wait_for_function(
        "n => document.querySelectorAll('.st-key-inspect_diagram svg g.node').length < n",
        arg=expanded,
    )
    assert graph.locator("g.node", has_text=joint).count() == joints_collapsed
    shoot(page, f"inspect_graph_{arch}_collapsed")
