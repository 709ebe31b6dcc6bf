"""Every widget a page draws keeps the student's value across a page switch (issue 12, "Pages
that remember"): set a value, go to another page, come back, the value is still there."""

from __future__ import annotations

import re
import time

import pytest
import streamlit as st

from deeparch.engine import classroom
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import get_manager
from pages._shared import KEPT_KEY
from tests.app.test_explore_pages import new_owner, trained_job
from tests.app.test_explore_pages import open_page as open_owned_page

# The widget kinds that hold a value the student chose (buttons and uploads hold none); pills
# are a button_group.
VALUE_WIDGETS = (
    "text_input", "number_input", "selectbox", "radio", "slider", "select_slider",
    "multiselect", "checkbox", "toggle", "text_area", "button_group",
)  # fmt: skip
# Widgets that come back another way than keep(), and why.
KEPT_OTHERWISE = {
    # the fallback's z sliders start from the latent point the page chose last (its explorer's
    # point, in session state), so they follow the browser's explorer too
    r"lat_z\d+": "the chosen latent point",
    r"teacher_password": "never kept: a password is not sent back to the browser",
}
AWAY = "pages/home.py"
TEACHER_PAGE = "pages/teacher.py"  # listed only when the class settings set a password
PASSWORD = "kept widgets"

# page -> the short run it shows (None: the page needs none). The explore pages draw their
# widgets only with a run of their kind.
TINY = {"max_steps": 3, "snapshot_every": 2}
PAGE_RUNS = {
    "pages/home.py": None,
    "pages/inspect.py": None,
    "pages/train.py": None,
    "pages/lessons.py": None,
    "pages/compare.py": {"arch": "mlp", "arch_config": {"hidden_sizes": (8,)}, **TINY},
    "pages/features.py": {"arch": "cnn", "dataset": "mnist", **TINY},
    "pages/latent.py": {
        "arch": "vae", "dataset": "mnist", "arch_config": {"latent_dim": 2}, **TINY,
    },
    "pages/gan_studio.py": {"arch": "cgan", "dataset": "mnist", "max_steps": 10},
    "pages/sequences.py": {"arch": "gru", "dataset": "mnist_rows", **TINY},
    "pages/autoencoders.py": {"arch": "denoising_autoencoder", "dataset": "mnist", **TINY},
    "pages/forecast.py": {
        "arch": "forecaster", "dataset": "sines", "arch_config": {"hidden_size": 8}, **TINY,
    },
    "pages/language.py": {
        "arch": "char_lm", "dataset": "topics_chars", "arch_config": {"hidden_size": 16}, **TINY,
    },
    "pages/transduction.py": {
        "arch": "seq2seq", "dataset": "reverse_digits", "arch_config": {"hidden_size": 8}, **TINY,
    },
    "pages/names.py": {
        "arch": "gru", "dataset": "surnames", "arch_config": {"hidden_size": 8}, **TINY,
    },
    "pages/words.py": {"arch": "skipgram", "dataset": "topics_words", **TINY},
    TEACHER_PAGE: None,  # the class's runs and jobs: teacher_class
}  # fmt: skip
# The Teacher page's class: a finished run for the runs side by side, and jobs that train until
# they are stopped for the Stop picker (it lists active jobs only).
CLASS_RUN = {"arch": "mlp", "arch_config": {"hidden_sizes": (4,)}, **TINY}
LONG = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, epochs=200)

# (page, widget kind, key, a value other than its default): the ones a student changes first,
# each page's free-text boxes and pickers among them.
CHANGES = [
    ("pages/gan_studio.py", "selectbox", "gan_class", 3),
    ("pages/gan_studio.py", "number_input", "gan_seed", 5),
    ("pages/gan_studio.py", "number_input", "gan_walk_from", 7),
    ("pages/gan_studio.py", "slider", "gan_walk_steps", 5),
    ("pages/gan_studio.py", "select_slider", "gan_time", 5),
    ("pages/gan_studio.py", "toggle", "gan_instant", False),
    ("pages/language.py", "text_input", "lm_prompt", "Once "),
    ("pages/language.py", "slider", "lm_temperature", 0.3),
    ("pages/language.py", "slider", "lm_length", 60),
    ("pages/language.py", "number_input", "lm_seed", 4),
    ("pages/names.py", "text_input", "nm_name", "Murphy"),
    ("pages/transduction.py", "text_input", "s2s_digits", "12345678"),
    ("pages/words.py", "text_input", "w2v_sentence", "a b c d"),
    ("pages/words.py", "slider", "w2v_window", 1),
    ("pages/words.py", "text_input", "w2v_word", "class"),
    ("pages/features.py", "radio", "feat_source", "draw a digit"),
    ("pages/sequences.py", "selectbox", "seq_speed_data", "mnist1d"),
    ("pages/sequences.py", "slider", "seq_speed_steps", 10),
    ("pages/sequences.py", "select_slider", "seq_batch", 32),
    ("pages/latent.py", "checkbox", "lat_range_follow", False),
    ("pages/latent.py", "slider", "lat_z1", 0.5),
    ("pages/latent.py", "slider", "lat_side", 12),
    ("pages/compare.py", "toggle", "compare_only_different", True),
    ("pages/lessons.py", "selectbox", "lessons_pick", "optimisers"),
    ("pages/lessons.py", "radio", "lessons_guess_optimisers", "Adam"),
    ("pages/inspect.py", "radio", "conv_mode", "pooling"),
    ("pages/inspect.py", "radio", "conv_dims", "1-D"),
    ("pages/inspect.py", "number_input", "conv_kernel", 5),
    ("pages/inspect.py", "checkbox", "conv_ceil_mode", True),
    ("pages/train.py", "selectbox", "train_cfg_optimizer", "sgd"),
    ("pages/train.py", "number_input", "train_cfg_momentum", 0.5),
]


@pytest.fixture
def teacher_class(monkeypatch):
    """A class whose settings set a teacher's password, and a student (the owner yielded) with
    a finished run and two jobs that stay active without using the CPU: one paused after its
    first step, one queued behind it (a student trains one job at a time; so the finished run
    comes first). Both jobs are stopped afterwards."""
    monkeypatch.setenv("DEEPARCH_TEACHER_PASSWORD", PASSWORD)
    st.cache_resource.clear()  # the app reads the class settings once per server
    owner = new_owner()
    trained_job(owner, **CLASS_RUN)
    manager = get_manager()
    paused = manager.submit(LONG, owner=owner)
    queued = manager.submit(LONG, owner=owner)
    for _ in range(1200):  # a job can be paused once it trains
        if paused.pause():
            break
        time.sleep(0.05)
    assert paused.wait_paused(60), paused.state
    assert (paused.state, queued.state) == ("paused", "queued")
    yield owner
    for job in (paused, queued):
        job.stop()
        assert job.wait(60)
    st.cache_resource.clear()  # read again without the password (monkeypatch restores it next)


def class_owner(page: str, request) -> str | None:
    """The teacher's class's student for the Teacher page; None (a new session) for the rest."""
    return request.getfixturevalue("teacher_class") if page == TEACHER_PAGE else None


def open_with_its_run(page: str, owner: str | None = None):
    """The page in a new session (of `owner`, else a new one) that owns a short finished run of
    the page's kind; the Teacher page after its password."""
    owner = owner or new_owner()
    fields = PAGE_RUNS[page]
    if fields is not None:
        trained_job(owner, **fields)
    at = open_owned_page(page, owner)
    if page == TEACHER_PAGE:
        at.text_input(key="teacher_password").set_value(PASSWORD)
        next(button for button in at.button if button.label == "Enter").click().run()
    if page == "pages/inspect.py":  # Inspect runs only its open tab: open the conv helper's
        at.session_state["inspect_view"] = "Convolution arithmetic"  # what a tab click sends
    for toggle in at.main.get("toggle"):  # the server-drawn fallback draws every widget
        if toggle.key and toggle.key.endswith("_instant"):
            toggle.set_value(False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def drawn_widgets(at) -> dict:
    """key -> widget, for every value widget in the page's main area (the sidebar's are drawn on
    every page, so they never need keeping)."""
    return {
        widget.key: widget
        for kind in VALUE_WIDGETS
        for widget in at.main.get(kind)
        if widget.key is not None
    }


@pytest.mark.parametrize("page", list(PAGE_RUNS))
def test_every_widget_a_page_draws_is_kept(page, request):
    at = open_with_its_run(page, class_owner(page, request))
    widgets = drawn_widgets(at)
    assert widgets, "the page drew no widget: the run it needs is missing"
    kept = at.session_state[KEPT_KEY]
    forgotten = sorted(
        key
        for key in set(widgets) - set(kept)
        if not any(re.fullmatch(pattern, key) for pattern in KEPT_OTHERWISE)
    )
    assert not forgotten, f"{page} forgets {forgotten} on a page switch"
    before = {key: widget.value for key, widget in widgets.items()}
    at.switch_page(AWAY).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    after = {key: widget.value for key, widget in drawn_widgets(at).items()}
    assert after == before
    assert not any("password" in key for key in at.session_state[KEPT_KEY])  # the Teacher's


def changed_values_stay(at, page: str, changes: list[tuple[str, str, object]]) -> None:
    """Set each (widget kind, key, value), then go to other pages and back: each value stays."""
    for kind, key, value in changes:
        getattr(at, kind)(key=key).set_value(value).run()
        assert not at.exception, [e.value for e in at.exception]
    chosen = {key: getattr(at, kind)(key=key).value for kind, key, _value in changes}
    assert chosen == {key: value for _kind, key, value in changes}
    for away in (AWAY, "pages/compare.py"):  # twice: a second return once lost values
        at.switch_page(away).run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert {key: getattr(at, kind)(key=key).value for kind, key, _v in changes} == chosen


@pytest.mark.parametrize("page", sorted({change[0] for change in CHANGES}))
def test_a_changed_value_stays_after_another_page(page):
    at = open_with_its_run(page)
    changes = [(kind, key, value) for where, kind, key, value in CHANGES if where == page]
    changed_values_stay(at, page, changes)


def test_the_teachers_choices_stay_after_another_page(teacher_class):
    """The job to stop and the configuration shown: their options are the class's jobs and
    runs, so each is changed to an option it did not start at."""
    at = open_with_its_run(TEACHER_PAGE, teacher_class)
    jobs = at.selectbox(key="teacher_stop_pick")  # its options are its values: job labels
    assert len(jobs.options) >= 2, jobs.options  # the paused job and the queued one at least
    configurations = list(classroom.class_runs(get_manager()))  # the picker shows them counted
    assert len(configurations) >= 2, configurations  # the finished run's and the paused job's
    shown = at.selectbox(key="teacher_group").value
    changes = [
        ("selectbox", "teacher_stop_pick", next(o for o in jobs.options if o != jobs.value)),
        ("selectbox", "teacher_group", next(c for c in configurations if c != shown)),
    ]
    changed_values_stay(at, TEACHER_PAGE, changes)
