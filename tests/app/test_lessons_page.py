"""The Lessons page: a link opens a lesson, the prediction comes first, the verdict beside it."""

from deeparch.engine.manager import get_manager
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
