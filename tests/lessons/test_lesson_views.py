"""The Train views a lesson asks for (Lesson.views) are drawn from its runs' snapshots."""

import pytest
import torch

from deeparch.engine.diagnostics import layer_statistics
from deeparch.lessons import get_lesson, list_lessons, present
from deeparch.lessons.present import VIEWS, view_figures
from deeparch.lessons.registry import Outcome
from deeparch.lessons.runner import run_lesson


class SnapshotsOnly:
    """The part of a JobHandle the views read: snapshot()."""

    def __init__(self, snapshots):
        self._snapshots = snapshots

    def snapshot(self, owner=None):
        return {"snapshots": self._snapshots}


@pytest.mark.parametrize("name", list_lessons())
def test_every_lessons_views_are_known(name):
    assert set(get_lesson(name).views) <= set(VIEWS)


def test_the_weight_histograms_have_a_curve_per_snapshot():
    layer = torch.nn.Linear(3, 2)
    snapshots = []
    for step in (10, 20, 30):
        with torch.no_grad():
            layer.weight.mul_(0.5)
        snapshots.append({"step": step, "layers": layer_statistics(layer)})
    lesson = get_lesson("l1_against_l2")
    assert lesson.views == ("weight_histograms",)
    figures = view_figures(lesson, {"L1": SnapshotsOnly(snapshots), "none": SnapshotsOnly([])})
    assert len(figures) == 1  # a run without snapshots draws nothing
    assert [trace.name for trace in figures[0].data] == ["step 10", "step 20", "step 30"]
    assert figures[0].layout.title.text == "L1: weight over time"


def assert_axes_named(figures) -> None:
    """Every visible axis of every figure has a title that says what it counts."""
    for figure in figures:
        layout = figure.layout
        for axis in (layout.xaxis, layout.yaxis):
            if axis.visible is False:
                continue
            title = (axis.title.text or "").strip()
            assert title and title != "index", (layout.title.text, title)


@pytest.mark.parametrize("name", [n for n in list_lessons() if get_lesson(n).exact])
def test_every_exact_lessons_charts_name_their_axes(name):
    # The lessons that train are checked the same way by test_each_claim_holds_within_its_ci_budget.
    outcome = run_lesson(name, "ci")
    assert_axes_named(present.series_figures(outcome) + present.image_figures(outcome))


def test_a_series_takes_its_x_values_from_the_curve_named_by_its_axis():
    outcome = Outcome(
        "x", True, "v",
        series={"loss per epoch": {"epoch": [1, 2, 4], "val_loss": [3.0, 2.0, 1.5]}},
        series_x={"loss per epoch": "epoch"},
    )  # fmt: skip
    (figure,) = present.series_figures(outcome)
    assert figure.layout.xaxis.title.text == "epoch"
    assert [trace.name for trace in figure.data] == ["val_loss"]
    assert list(figure.data[0].x) == [1, 2, 4]
    with pytest.raises(ValueError, match="no series_x title"):
        Outcome("x", True, "v", series={"loss": {"a": [1.0]}})


def test_the_live_and_view_charts_name_their_axes():
    layer = torch.nn.Linear(3, 2)
    snapshots = [{"step": 10, "layers": layer_statistics(layer)}]
    jobs = {"L1": SnapshotsOnly(snapshots)}
    assert_axes_named(view_figures(get_lesson("l1_against_l2"), jobs))
    assert_axes_named([present.live_figure(jobs)])
