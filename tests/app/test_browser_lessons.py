"""A real Chromium runs lesson 24 (two stages) from its link as a student does, on a server at the
class's ci budget: the prediction, Run, the progress line at stage 1 of 2 (2 of 2 only once the
first has ended), and the verdict, whose numbers are those of the runs the server stored."""

from __future__ import annotations

import re
import time

from deeparch.engine.store import RunStore
from deeparch.lessons import transfer
from tests.app.browser import BROWSER_TEST, chromium, running_app, shoot

pytestmark = BROWSER_TEST

VERDICT = re.compile(r"The claim (held|did not hold) here\.")
DEADLINE_S = 420  # the ci budget's 440 steps on a busy 2-core machine, with the server beside


def test_lesson_24_from_its_link_through_both_stages_to_the_verdict(tmp_path):
    store = tmp_path / "runs"
    env = {"DEEPARCH_LESSON_BUDGET": "ci", "DEEPARCH_RUN_STORE": str(store)}
    with running_app("lessons_freezing", env) as url, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 1400})
        tab.set_default_timeout(120_000)
        tab.goto(f"{url}/lessons?lesson=freezing")
        run = tab.locator(".st-key-lessons_run button").first  # a hidden copy follows it
        run.wait_for()
        assert run.is_disabled()  # the prediction comes first
        tab.get_by_test_id("stRadio").get_by_text(transfer.FROZEN, exact=True).click()
        tab.wait_for_function(
            "() => [...document.querySelectorAll('.st-key-lessons_run button')]"
            ".some((button) => !button.disabled)"
        )
        tab.locator(".st-key-lessons_run button:not([disabled])").first.click()
        progress: list[str] = []
        verdict = tab.get_by_test_id("stMarkdownContainer").filter(has_text=VERDICT)
        deadline = time.monotonic() + DEADLINE_S
        while not verdict.count():
            assert time.monotonic() < deadline, f"no verdict after {DEADLINE_S} s: {progress[-3:]}"
            bars = tab.get_by_test_id("stMain").get_by_test_id("stProgress")  # not the sidebar's
            if bars.count():
                try:
                    progress.append(bars.first.inner_text(timeout=1_000).strip())
                except Exception:  # noqa: BLE001  (the bar went between the count and the read)
                    pass
            tab.wait_for_timeout(500)
        shoot(tab, "lessons_freezing_verdict")
        text = verdict.first.inner_text()
    assert progress, "the page never showed its progress line"
    stages = [re.search(r"stage \d of \d", line) for line in progress]
    stages = [found.group(0) for found in stages if found]
    assert stages and stages[0] == "stage 1 of 2", progress
    assert set(stages) <= {"stage 1 of 2", "stage 2 of 2"}, progress
    assert stages == sorted(stages), progress  # stage 2 once stage 1 had ended, never back
    assert all(f"{transfer.PRETRAINED} finished" in line
               for line in progress if "stage 2 of 2" in line)  # fmt: skip
    # The server stored the student's three runs as they ended; the verdict quotes the two
    # second-stage runs' own final validation accuracy.
    runs = RunStore(store).all_runs()
    assert len(runs) == 3 and {r.summary["state"] for r in runs} == {"finished"}
    stored = sorted(runs, key=lambda r: r.summary["saved_at"])
    pretrained, *second = [r.summary for r in stored]
    assert pretrained["step"] == transfer.PRETRAIN_STEPS["ci"]
    assert pretrained["config"]["classes"] == transfer.FIRST
    assert [s["step"] for s in second] == [transfer.TRANSFER_STEPS["ci"]] * 2
    frozen = next(s for s in second if s["config"]["freeze"] == "features")
    scratch = next(s for s in second if not s["config"]["freeze"])
    for summary in (frozen, scratch):
        assert f"{summary['final_metrics']['val_accuracy']:.1%}" in text, text
    assert text.index(f"{frozen['final_metrics']['val_accuracy']:.1%}") < text.index(
        f"{scratch['final_metrics']['val_accuracy']:.1%}"
    )  # the frozen run's first, as the verdict words it
