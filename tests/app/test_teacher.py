"""The Teacher page: listed only with a password, shown only after it is entered; every session's
jobs with Stop on any, the class's runs side by side, the settings and the server's use."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import TEACHER, get_manager

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse"
STUDENT = "5" * 32
LONG = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, epochs=200)
TINY = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, max_steps=4)


def app_with(monkeypatch, password: str) -> AppTest:
    monkeypatch.setenv("DEEPARCH_TEACHER_PASSWORD", password)
    st.cache_resource.clear()  # the app reads the class settings once per server
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


@pytest.fixture(autouse=True)
def _fresh_settings():
    yield
    st.cache_resource.clear()


def test_without_a_password_there_is_no_teacher_page(monkeypatch):
    at = app_with(monkeypatch, "")
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/teacher.py")


def test_the_teacher_sees_every_job_and_stops_any_after_the_password(monkeypatch):
    at = app_with(monkeypatch, PASSWORD)
    manager = get_manager()
    manager.set_label(STUDENT, "Ada")
    finished = manager.submit(TINY, owner=STUDENT)
    assert finished.wait(60)
    running = manager.submit(LONG, owner="6" * 32)
    at.switch_page("pages/teacher.py").run()
    assert not at.dataframe  # nothing before the password
    at.text_input(key="teacher_password").set_value("wrong")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["That is not the teacher's password."]
    assert not at.dataframe
    at.text_input(key="teacher_password").set_value(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    jobs = at.dataframe[0].value
    assert running.id in jobs.index
    # The header line is drawn with the job table (one fragment): its counts are the table's.
    header = next(m.value for m in at.markdown if "training or paused" in m.value)
    training = sum(state != "queued" for state in jobs["state"])
    assert f"{training} job(s) training or paused, {len(jobs) - training} queued" in header
    usage = at.dataframe[1].value
    assert f"{int(float(usage.loc['jobs in memory', 'now']))} in memory" in header
    assert jobs.loc[running.id, "architecture"] == "mlp"
    names = at.selectbox(key="teacher_group").options
    assert any("mlp on" in name for name in names)
    settings = at.dataframe[-1].value
    assert settings.loc["teacher_password", "value"] == "set"  # never the password itself
    at.selectbox(key="teacher_stop_pick").set_value(
        next(o for o in at.selectbox(key="teacher_stop_pick").options if running.id[-6:] in o)
    )
    at.button(key="teacher_stop").click().run()
    assert running.wait(60)
    assert running.state == "stopped" and "stopped by the teacher" in running.reason


def test_compare_lists_runs_that_left_memory_for_the_store(monkeypatch):
    at = app_with(monkeypatch, "")
    owner = at.session_state["deeparch_owner"]
    manager = get_manager()
    jobs = []
    for _ in range(manager.runs_in_memory + 1):
        jobs.append(manager.submit(TINY, owner=owner))
        assert jobs[-1].wait(60) and jobs[-1].state == "finished"
    assert len(manager.jobs(owner=owner)) == manager.runs_in_memory  # the oldest is on disk
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    options = at.multiselect(key="compare_runs").options
    assert len(options) == len(jobs)
    assert [o for o in options if o.endswith("(stored)")] == [
        o for o in options if jobs[0].id[-6:] in o
    ]


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_an_invalid_class_setting_is_one_clear_error_on_the_page(monkeypatch, value):
    monkeypatch.setenv("DEEPARCH_MAX_JOBS", value)
    at = app_with(monkeypatch, "")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    assert errors[0].startswith("The server's class settings are invalid: DEEPARCH\\_MAX\\_JOBS=")
    assert "an integer from" in errors[0]


def test_stop_on_a_job_that_left_memory_meanwhile_says_it_is_unknown(monkeypatch):
    at = app_with(monkeypatch, PASSWORD)
    manager = get_manager()
    running = manager.submit(LONG, owner="7" * 32)
    another = manager.submit(LONG, owner="8" * 32)
    at.switch_page("pages/teacher.py").run()
    at.text_input(key="teacher_password").set_value(PASSWORD)
    at.button[0].click().run()
    at.selectbox(key="teacher_stop_pick").set_value(
        next(o for o in at.selectbox(key="teacher_stop_pick").options if running.id[-6:] in o)
    )
    manager.remove(running.id, TEACHER)  # gone between drawing the table and the click
    at.button(key="teacher_stop").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "no job with this id is in memory" in errors[0]
    assert "known jobs" not in errors[0]
    assert another.is_active()  # Stop never falls on the job listed next
    manager.stop(another.id, TEACHER)
    assert another.wait(60)
