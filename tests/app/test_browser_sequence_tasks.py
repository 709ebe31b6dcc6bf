"""A real Chromium against `streamlit run app.py`: each sequence-task page starts its model,
shows it training, and is photographed (tests/artifacts/sequence_tasks/)."""

from __future__ import annotations

import re

import pytest

from tests.app.browser import ARTIFACTS, BROWSER_TEST, app_tab
from tests.app.test_browser_explore import stop_current_job

SHOTS = ARTIFACTS / "sequence_tasks"

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def page():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with app_tab("streamlit_sequence_tasks", height=1800) as tab:
        yield tab


# (menu entry, starter architecture, its dataset, steps before the picture, what must show)
PAGES = [
    ("Forecasting", "forecaster", "sines", 40, "stPlotlyChart"),
    ("Language model", "char_lm", "topics_chars", 30, "stCode"),
    ("Encoder-decoder", "seq2seq", "reverse_digits", 60, "stPlotlyChart"),
    ("Surnames", "lstm", "surnames", 150, "stPlotlyChart"),
    ("Word embeddings", "skipgram", "topics_words", 60, "stPlotlyChart"),
]


@pytest.mark.parametrize("title,arch,dataset,steps,shows", PAGES)
def test_the_page_trains_its_model_and_shows_it(page, title, arch, dataset, steps, shows):
    nav = page.get_by_test_id("stSidebarNav")
    more = nav.get_by_text(re.compile(r"^View \d+ more$"))  # the menu folds long sections
    if more.count():
        more.click()
    nav.get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for()
    start = page.get_by_role("button", name=re.compile(rf"^Train {arch} on {dataset}"))
    start.wait_for()
    start.click()
    stop_current_job(page, min_step=steps)
    page.get_by_test_id(shows).first.wait_for()
    # The rerun after the stop redraws the page: wait until the app is idle again.
    page.wait_for_timeout(1500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)
    page.wait_for_timeout(1000)
    assert not page.get_by_test_id("stException").count()
    page.screenshot(path=str(SHOTS / f"{arch}.png"), full_page=True)
