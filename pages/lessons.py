"""Lessons: a claim of the course, the student's prediction, the experiment live, the verdict."""

import streamlit as st

from deeparch import share
from deeparch.engine.config import TrainConfig
from deeparch.errors import ConfigError
from deeparch.figures.text import code_span, escape_markdown
from deeparch.lessons import get_lesson, list_lessons, present
from deeparch.lessons.counting import FORMULA_LAYERS, layer_formula
from deeparch.lessons.registry import Lesson, parse_number, parse_shape
from deeparch.lessons.runner import LessonRun, run_lesson
from deeparch.settings import load_settings
from pages._shared import keep, keep_fitting, manager, paced_refresh_s, session_owner

RUNS_KEY = "lessons_runs"  # lesson name -> this session's LessonRun
PREDICTIONS_KEY = "lessons_predictions"  # lesson name -> the prediction made before Run
REFRESH_S = 1.0


@st.cache_data(show_spinner="Computing once for the whole class...", max_entries=64)
def exact_outcome(name: str, budget: str):
    """An exact computation gives everyone the same numbers: computed once per server."""
    return run_lesson(name, budget)


def lesson_budget() -> str:
    """The class's budget for lessons: full, or ci for a slow machine or a short class."""
    return load_settings().lesson_budget


def chosen_lesson(names: list[str]) -> str:
    """The lesson in the URL (?lesson=NAME, checked against the registry), else the picker's."""
    linked, problems = share.decode_lesson(st.query_params.to_dict(), names)
    for problem in problems:
        st.warning(f"The link's lesson was not used: {escape_markdown(problem)}")
    if linked is not None and st.session_state.get("lessons_linked") != linked:
        st.session_state["lessons_linked"] = linked
        st.session_state["lessons_pick"] = linked
    return st.selectbox(
        "lesson", names, key=keep_fitting("lessons_pick", lambda name: name in names),
        format_func=lambda name: f"{get_lesson(name).position:g}. {get_lesson(name).title}",
    )  # fmt: skip


def prediction_widget(lesson: Lesson):
    """The student's prediction, parsed; None until it is a valid one."""
    prediction = lesson.prediction
    key = f"lessons_guess_{lesson.name}"
    if prediction.kind == "choice":
        kept = keep_fitting(key, lambda choice: choice in prediction.choices)
        return st.radio(prediction.question, prediction.choices, index=None, key=kept)
    example = "e.g. 1,234" if prediction.kind == "number" else "e.g. (1, 32, 64)"
    text = st.text_input(prediction.question, key=keep(key), placeholder=example)
    if not text:
        return None
    try:
        return parse_number(text) if prediction.kind == "number" else parse_shape(text)
    except ConfigError as error:
        st.error(escape_markdown(str(error)))
        return None


def start(lesson: Lesson, guess) -> None:
    st.session_state.setdefault(PREDICTIONS_KEY, {})[lesson.name] = guess
    if lesson.exact:
        return  # exact_outcome answers from the cache when the page draws it
    runs = st.session_state.setdefault(RUNS_KEY, {})
    previous = runs.get(lesson.name)
    if previous is not None and previous.is_active():
        previous.stop()
    try:
        runs[lesson.name] = LessonRun(lesson, lesson_budget(), manager(), session_owner())
    except ConfigError as error:
        st.error(escape_markdown(str(error)))
        return
    st.rerun()  # the sidebar, drawn before this page, lists the new jobs from the next run on


def verdict(lesson: Lesson, outcome) -> None:
    guess = st.session_state.get(PREDICTIONS_KEY, {}).get(lesson.name)
    right = lesson.prediction.is_right(guess, outcome) if guess is not None else None
    answer = present.answer_text(lesson.prediction, lesson.prediction.right_answer(outcome))
    yours, measured = st.columns(2)
    with yours:
        st.markdown("**Your prediction**")
        shown = present.answer_text(lesson.prediction, guess)
        st.markdown(code_span(shown))
        if right is True:
            st.markdown(":green[right]")
        elif right is False:
            st.markdown(":red[not this time]")
    with measured:
        st.markdown("**Measured here**")
        st.markdown(code_span(answer))
    held = ":green[The claim held here.]" if outcome.held else ":red[The claim did not hold here.]"
    st.markdown(f"{held} {escape_markdown(outcome.verdict)}")
    for figure in present.series_figures(outcome):
        st.plotly_chart(figure)
    for figure in present.image_figures(outcome):
        st.plotly_chart(figure)
    with st.expander("measured numbers"):
        st.json(outcome.measured)


def experiment(lesson: Lesson) -> None:
    """The lesson's run, refreshed on its own while it trains or is judged."""
    if lesson.exact:
        if lesson.name in st.session_state.get(PREDICTIONS_KEY, {}):
            verdict(lesson, exact_outcome(lesson.name, lesson_budget()))
        return
    run = st.session_state.get(RUNS_KEY, {}).get(lesson.name)
    if run is None:
        return
    jobs = run.jobs  # both stages' runs so far (the second appears once the first finished)
    for job in jobs.values():
        job.snapshot(owner=session_owner())  # looking keeps the runs alive
    status = run.status
    if run.is_active():
        stage = f"stage {run.stage} of {run.stages}, " if run.stages > 1 else ""
        st.progress(min(1.0, sum(progress(j) for j in jobs.values()) / max(1, len(jobs))),
                    text=escape_markdown(f"{stage}{status}: " + ", ".join(
                        f"{label} {job.state}" for label, job in jobs.items()) if jobs
                        else status))  # fmt: skip
    figure = present.live_figure(jobs)
    if figure is not None:
        st.plotly_chart(figure, key=f"lessons_live_{lesson.name}")
    if status == "done":
        verdict(lesson, run.outcome)
        for index, figure in enumerate(present.view_figures(lesson, jobs)):
            st.plotly_chart(figure, key=f"lessons_view_{lesson.name}_{index}")
    elif status == "failed":
        st.error(escape_markdown(f"The experiment failed: {run.error}"))
    elif status == "stopped":
        st.warning("Stopped.")
    if st.session_state.get("lessons_last_status") != status:
        st.session_state["lessons_last_status"] = status
        if not run.is_active():
            st.rerun()  # the whole page, so the fragment stops refreshing


def comparison_section() -> None:
    """A teacher's comparison link (?run1.arch=...&run2.arch=...): train the runs side by side."""
    shared, problems = share.decode_runs(st.query_params.to_dict())
    for problem in problems:
        st.warning(f"The link's value was not used: {escape_markdown(problem)}")
    if not shared:
        return
    st.subheader("A comparison from your teacher")
    for index, one in enumerate(shared, start=1):
        values = {**one.arch_values, **one.train_values}
        setting = f"{one.arch} on {one.dataset or 'its default dataset'}"
        if values:
            setting += f" with {values}"
        st.markdown(escape_markdown(f"{index}. {setting}"))
    if st.button("Train them all", key="lessons_compare_start"):
        configs = [TrainConfig.from_dict({"arch": one.arch, "dataset": one.dataset,
                                          "arch_config": one.arch_values, **one.train_values})
                   for one in shared]  # fmt: skip
        try:
            st.session_state["lessons_compare_jobs"] = {
                f"run {i}: {c.arch}": manager().submit(c, owner=session_owner())
                for i, c in enumerate(configs, start=1)
            }
        except ConfigError as error:
            st.error(escape_markdown(str(error)))
    jobs = st.session_state.get("lessons_compare_jobs")
    if jobs:
        live = any(job.is_active() for job in jobs.values())
        st.fragment(compare_live, run_every=paced_refresh_s(REFRESH_S) if live else None)(jobs)
    st.caption("The runs also appear on the Compare page.")
    st.divider()


def compare_live(jobs) -> None:
    for job in jobs.values():
        job.snapshot(owner=session_owner())
    st.plotly_chart(present.live_figure(jobs), key="lessons_compare_live")


def formula_calculator() -> None:
    """Any layer's parameter count with the student's own numbers (a real layer, counted)."""
    with st.expander("Count any layer with your own numbers"):
        kind = st.selectbox("layer", list(FORMULA_LAYERS), key=keep("lessons_formula_kind"))
        columns = st.columns(len(FORMULA_LAYERS[kind]))
        numbers = {}
        for column, (name, (low, high)) in zip(columns, FORMULA_LAYERS[kind].items()):
            key = f"lessons_formula_{kind}_{name}"
            numbers[name] = int(column.number_input(name, low, high, key=keep(key, max(low, 3))))
        try:
            formula, count = layer_formula(kind, numbers)
        except ConfigError as error:
            st.error(escape_markdown(str(error)))
            return
        st.markdown(code_span(f"{formula} parameters"))


def progress(job) -> float:
    snap = job.snapshot()
    total = snap.get("total_steps") or 0
    return min(1.0, (snap.get("step") or 0) / total) if total else 0.0


st.title("Lessons")
st.caption("Each claim of the course as an experiment: predict first, then run it here.")
comparison_section()
names = list_lessons()
lesson = get_lesson(chosen_lesson(names))
st.subheader(escape_markdown(lesson.title))
st.markdown(escape_markdown(lesson.claim))
st.caption(f"Source: {escape_markdown(lesson.source)}")
if lesson.note:
    st.caption(escape_markdown(lesson.note))
guess = prediction_widget(lesson)
if lesson.name == "counting_parameters":
    formula_calculator()
run_col, link_col = st.columns([1, 4])
if run_col.button("Run", key="lessons_run", type="primary", disabled=guess is None,
                  help="Make your prediction first" if guess is None else None):  # fmt: skip
    start(lesson, guess)
with link_col.popover("Links for the class"):
    base = st.context.url or ""
    st.markdown("This lesson:")
    st.code(present.lesson_link(base, lesson), language=None)
    setup = present.setup_link(base.rsplit("/", 1)[0] + "/train", lesson)
    if setup:
        st.markdown("Its one-click setup on Train:")
        st.code(setup, language=None)
    comparison = present.comparison_link(base, lesson, lesson_budget())
    if comparison:
        st.markdown("Its runs, to train side by side:")
        st.code(comparison, language=None)
run = st.session_state.get(RUNS_KEY, {}).get(lesson.name)
active = run is not None and run.is_active()
st.fragment(experiment, run_every=paced_refresh_s(REFRESH_S) if active else None)(lesson)
