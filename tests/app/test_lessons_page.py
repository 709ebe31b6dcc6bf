"""The Lessons page: a link opens a lesson, the prediction comes first, the verdict beside it."""

import base64
import json
import logging

import numpy as np
import torch

from deeparch.engine.manager import get_manager
from deeparch.lessons import transfer
from tests.app.test_pages import open_page, run_until

PAGE = "pages/lessons.py"


def texts(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_a_link_opens_a_lesson_and_the_verdict_follows_the_prediction():
    at = open_page(PAGE, query={"lesson": "counting_parameters"})
    assert at.selectbox(key="lessons_pick").value == "counting_parameters"
    assert at.button(key="lessons_run").disabled  # no prediction yet
    at.text_input(key="lessons_guess_counting_parameters").input("93,000").run()
    assert not at.button(key="lessons_run").disabled
    at.button(key="lessons_run").click().run()
    assert not at.exception
    shown = texts(at)
    assert "The claim held here." in shown
    assert "not this time" in shown  # 93,000 is not 93,322
    assert "`93,322`" in shown


def test_a_bad_guess_and_an_unknown_lesson_say_what_is_wrong():
    at = open_page(PAGE, query={"lesson": "resdual_learning"})
    assert any("did you mean 'residual\\_learning'" in w.value for w in at.warning)
    at.selectbox(key="lessons_pick").set_value("lstm_states").run()
    at.text_input(key="lessons_guess_lstm_states").input("(1, one, 64)").run()
    assert any("a shape such as" in e.value for e in at.error)
    assert at.button(key="lessons_run").disabled


def test_run_trains_through_the_engine_in_the_background_as_this_session():
    at = open_page(PAGE, query={"lesson": "l1_against_l2"})
    at.radio(key="lessons_guess_l1_against_l2").set_value("L1").run()
    at.button(key="lessons_run").click().run()
    assert not at.exception
    owner = at.session_state["deeparch_owner"]
    jobs = [job for job in get_manager().jobs(owner=owner) if job.arch == "softmax_regression"]
    try:
        assert len(jobs) == 3  # L1, L2 and none, queued or training: the rerun did not wait
        run_until(at, lambda a: any(c.proto.spec for c in a.get("plotly_chart")), attempts=20)
    finally:
        for job in jobs:
            job.stop("test over")


def test_train_offers_the_run_as_a_script_and_a_notebook():
    at = open_page("pages/train.py", query={"arch": "mlp", "dataset": "digits", "epochs": "1"})
    at.button(key="train_start").click().run()
    run_until(
        at, lambda a: any(b.label == "PyTorch script (.py)" for b in a.get("download_button"))
    )
    labels = [b.label for b in at.get("download_button")]
    assert "Notebook (.ipynb)" in labels


def test_the_counting_lesson_counts_any_layer_with_the_students_numbers():
    at = open_page(PAGE, query={"lesson": "counting_parameters"})
    at.selectbox(key="lessons_formula_kind").set_value("Conv2d").run()
    at.number_input(key="lessons_formula_Conv2d_in_channels").set_value(32).run()
    at.number_input(key="lessons_formula_Conv2d_out_channels").set_value(64).run()
    assert "`64x(32x3x3)+64 = 18,496 parameters`" in texts(at)


def plain(text: str) -> str:
    """Text the page escaped as Markdown, as the student reads it."""
    return text.replace("\\", "")


def numbers(values) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array (base64 of the numbers, plotly 6 on)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values if values is not None else [])


def test_the_two_stage_lesson_trains_its_stages_in_turn_and_judges_their_numbers(
    monkeypatch, caplog
):
    """Lesson 24 as a student runs it, at the class's ci budget: the link, the prediction, Run,
    then the page followed until the verdict; both stages' runs are the student's, the second
    starts after the first has ended, and the verdict's numbers are the runs' own."""
    monkeypatch.setenv("DEEPARCH_LESSON_BUDGET", "ci")  # ClassSettings.lesson_budget
    caplog.set_level(logging.INFO, logger="deeparch.engine.state")  # every job's state moves
    pretrained, frozen, scratch = transfer.PRETRAINED, transfer.FROZEN, transfer.SCRATCH
    at = open_page(PAGE, query={"lesson": "freezing"})
    at.radio(key="lessons_guess_freezing").set_value(frozen).run()
    at.button(key="lessons_run").click().run()
    assert not at.exception
    progress = []  # the progress line at each look, as the student reads it

    def verdict_shown(page) -> bool:
        progress.extend(plain(bar.proto.text) for bar in page.get("progress"))
        assert not page.exception and not page.error, [e.value for e in page.error]
        return "claim held here." in texts(page) or "claim did not hold here." in texts(page)

    run_until(at, verdict_shown, attempts=900, pause=0.5)
    run = at.session_state["lessons_runs"]["freezing"]
    jobs = run.jobs
    assert list(jobs) == [pretrained, frozen, scratch]
    owner = at.session_state["deeparch_owner"]
    assert {job.owner for job in jobs.values()} == {owner}  # both stages: the student's own
    # The manager's own handles (stored runs ended are EndedRuns there: the lesson keeps no more).
    assert set(jobs.values()) <= set(get_manager().jobs(owner=owner))
    # The page said which stage trained: stage 1 while the pretraining did, stage 2 (when a look
    # fell in its few seconds) only with the pretraining finished.
    stages = [line.split(",")[0] for line in progress]
    assert stages[0] == "stage 1 of 2" and set(stages) <= {"stage 1 of 2", "stage 2 of 2"}
    assert stages == sorted(stages), progress  # never back to stage 1
    assert all(f"{pretrained} finished" in line for line in progress if line.startswith("stage 2"))
    # The engine's own record of state moves: the second stage's runs started after the first's
    # ended (submitted once it had, they could not start before).
    moves = [(r.args[0], str(r.args[1])) for r in caplog.records if r.msg == "job %s %s: %s"]
    ended = moves.index((jobs[pretrained].id, "finished"))
    assert moves.index((jobs[pretrained].id, "running")) < ended
    for label in (frozen, scratch):
        assert moves.index((jobs[label].id, "running")) > ended, label
    # The verdict's numbers are the runs' own final metrics.
    outcome = run.outcome
    finals = {label: job.snapshot()["final_metrics"] for label, job in jobs.items()}
    accuracy = {label: finals[label]["val_accuracy"] for label in (frozen, scratch)}
    assert outcome.measured["val_accuracy"] == accuracy
    assert {label: r["final_metrics"] for label, r in outcome.runs.items()} == finals
    assert {label: r["stage"] for label, r in outcome.runs.items()} == {
        pretrained: 1, frozen: 2, scratch: 2,
    }  # fmt: skip
    steps = [transfer.PRETRAIN_STEPS["ci"]] + [transfer.TRANSFER_STEPS["ci"]] * 2
    assert [outcome.runs[label]["steps"] for label in jobs] == steps
    models = {label: job.model_copy() for label, job in jobs.items()}
    trainable = {frozen: sum(p.numel() for p in models[frozen].classifier.parameters()),
                 scratch: sum(p.numel() for p in models[scratch].parameters())}  # fmt: skip
    assert outcome.measured["trainable"] == trainable
    shown = plain(texts(at))
    held = "The claim held here." if outcome.held else "The claim did not hold here."
    assert held in shown
    for label in (frozen, scratch):
        assert f"{accuracy[label]:.1%}" in shown and f"{trainable[label]:,}" in shown
    assert outcome.held is (accuracy[frozen] > accuracy[scratch] + transfer.MARGIN)
    marks = [m.value for m in at.markdown]  # beside the prediction, frozen: right or not
    assert (":green[right]" if outcome.answer == frozen else ":red[not this time]") in marks
    # The frozen run's features are the pretrained run's, exactly; the head is its own.
    taken = models[frozen].features.state_dict()
    for name, tensor in models[pretrained].features.state_dict().items():
        assert torch.equal(taken[name], tensor), name
    # The live chart draws the loss of every run of both stages, each a curve of its steps.
    charts = [json.loads(chart.proto.spec)["data"] for chart in at.get("plotly_chart")]
    curves = [{trace.get("name"): len(numbers(trace.get("x"))) for trace in traces}
              for traces in charts]  # fmt: skip
    assert {pretrained: steps[0], frozen: steps[1], scratch: steps[2]} in curves
