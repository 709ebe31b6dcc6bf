"""Class settings: environment over file over defaults; a bad value is one clear error."""

import pytest

from deeparch.config import field_specs
from deeparch.errors import ConfigError
from deeparch.lessons.registry import BUDGETS
from deeparch.settings import ClassSettings, load_settings


def test_defaults_without_any_setting():
    settings = load_settings({})
    assert settings == ClassSettings()
    assert (settings.jobs_per_student, settings.heartbeat_s, settings.backend) == (
        1,
        60.0,
        "threads",
    )


def test_environment_wins_over_the_file(tmp_path):
    path = tmp_path / "class.toml"
    path.write_text('[class]\nmax_running = 3\nteacher_password = "owl"\nmax_epochs = 50\n')
    settings = load_settings({"DEEPARCH_SETTINGS": str(path), "DEEPARCH_MAX_RUNNING": "5"})
    assert (settings.max_running, settings.teacher_password, settings.max_epochs) == (5, "owl", 50)
    assert settings.to_dict()["teacher_password"] == "set"  # never the password itself


def test_the_lessons_budget_is_one_of_the_lessons_own():
    assert load_settings({}).lesson_budget == "full"  # what the Lessons page runs by default
    assert load_settings({"DEEPARCH_LESSON_BUDGET": "ci"}).lesson_budget == "ci"
    choices = next(s.choices for s in field_specs(ClassSettings) if s.name == "lesson_budget")
    assert tuple(choices) == BUDGETS


def test_the_old_variable_name_still_works():
    assert load_settings({"DEEPARCH_MAX_JOBS": "4"}).max_running == 4


@pytest.mark.parametrize(
    ("environ", "field", "allowed"),
    [
        ({"DEEPARCH_MAX_JOBS": "abc"}, "DEEPARCH_MAX_JOBS", "an integer from 1 to 1024"),
        ({"DEEPARCH_MAX_JOBS": "0"}, "DEEPARCH_MAX_JOBS", "an integer from 1 to 1024"),
        ({"DEEPARCH_MAX_JOBS": "-1"}, "DEEPARCH_MAX_JOBS", "an integer from 1 to 1024"),
        ({"DEEPARCH_MAX_RUNNING": "-1"}, "DEEPARCH_MAX_RUNNING", "an integer from 0 to 1024"),
        ({"DEEPARCH_SLICE_S": "-0.1"}, "DEEPARCH_SLICE_S", "a number from 0 to 60"),
        ({"DEEPARCH_QUEUE_PER_STUDENT": "x"}, "DEEPARCH_QUEUE_PER_STUDENT", "an integer from 0"),
        ({"DEEPARCH_HEARTBEAT_S": "abc"}, "DEEPARCH_HEARTBEAT_S", "a number from 0 to 86400"),
        ({"DEEPARCH_JOBS_PER_STUDENT": "0"}, "DEEPARCH_JOBS_PER_STUDENT", "an integer from 1"),
        ({"DEEPARCH_BACKEND": "spark"}, "DEEPARCH_BACKEND", "one of 'threads', 'ray'"),
        ({"DEEPARCH_LESSON_BUDGET": "quick"}, "DEEPARCH_LESSON_BUDGET", "one of 'ci', 'full'"),
        ({"DEEPARCH_SETTINGS": "/no/such.toml"}, "DEEPARCH_SETTINGS", "an existing TOML file"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(environ, field, allowed):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}=") and allowed in str(raised.value)


def test_a_bad_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "class.toml"
    path.write_text("[class]\nmax_epoch = 5\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"DEEPARCH_SETTINGS": str(path)})
    assert raised.value.field == f"{path}: max_epoch" and "max_epochs" in str(raised.value)
    path.write_text("[class\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"DEEPARCH_SETTINGS": str(path)})
    assert "a readable TOML file" in str(raised.value)
    path.write_text("[class]\nmax_depth = 0\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"DEEPARCH_SETTINGS": str(path)})
    assert raised.value.field == f"{path}: max_depth"
