"""Every registered lesson opens on the Lessons page from its link: its title, claim, source and
prediction widget drawn from the registry, Run disabled until the student predicts."""

import pytest

from deeparch.figures.text import escape_markdown
from deeparch.lessons import get_lesson, list_lessons
from tests.app.test_pages import open_page

PAGE = "pages/lessons.py"


@pytest.mark.parametrize("name", list_lessons())
def test_each_lesson_renders_from_its_link(name):
    lesson = get_lesson(name)
    at = open_page(PAGE, query={"lesson": name})
    assert at.selectbox(key="lessons_pick").value == name
    assert at.subheader[0].value == escape_markdown(lesson.title)
    assert escape_markdown(lesson.claim) in [m.value for m in at.markdown]
    assert any(escape_markdown(lesson.source) in c.value for c in at.caption)
    key = f"lessons_guess_{name}"
    widget = at.radio(key=key) if lesson.prediction.kind == "choice" else at.text_input(key=key)
    assert widget.label == lesson.prediction.question
    assert at.button(key="lessons_run").disabled  # the prediction comes first
