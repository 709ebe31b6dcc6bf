"""A real Chromium: Train -> Compare -> Train leaves the form as the student set it."""

import pytest

from tests.app.browser import BROWSER_TEST, chromium, running_app, shoot

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def page():
    with running_app("streamlit-remember") as url, chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 2000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/train")
        yield page
        context.close()


def form(page) -> dict:
    """What the student sees in the form: the architecture, one of its fields, training ones."""
    values = {"arch": page.locator(".st-key-train_arch input").input_value()}
    values["channels"] = page.locator(".st-key-train_cnn_channels input").input_value()
    for name in ("lr", "epochs", "seed"):
        values[name] = page.locator(f".st-key-train_cfg_{name} input").input_value()
    return values


def open_in_menu(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).click()


def test_train_compare_train_leaves_the_form_unchanged(page):
    from playwright.sync_api import expect

    page.locator(".st-key-train_arch input").click()
    page.keyboard.type("cnn")
    page.keyboard.press("Enter")
    expect(page.locator(".st-key-train_cfg_epochs input")).to_have_value("5")  # cnn's default
    for name, value in (("train_cnn_channels", "8,16"), ("train_cfg_seed", "7")):
        box = page.locator(f".st-key-{name} input")
        box.fill(value)
        box.press("Enter")
        expect(box).to_have_value(value)
    page.wait_for_timeout(500)  # the rerun of the last entry
    chosen = form(page)
    assert chosen == {
        "arch": "cnn",
        "channels": "8,16",
        "lr": "1.00e-3",
        "epochs": "5",
        "seed": "7",
    }
    for visit in range(2):  # the second return once showed the generic epochs=2
        open_in_menu(page, "Compare")
        page.get_by_role("heading", name="Compare runs").wait_for()
        open_in_menu(page, "Train")
        expect(page.locator(".st-key-train_cnn_channels input")).to_have_value("8,16")
        assert form(page) == chosen, visit
        shoot(page, f"train_after_compare_{visit + 1}")
    page.get_by_role("button", name="Share these settings").click()
    link = page.locator('[data-testid="stPopoverBody"] code').inner_text()
    assert "arch=cnn" in link and "channels=8,16" in link and "seed=7" in link
    assert "epochs" not in link
