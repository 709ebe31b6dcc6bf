"""The Train views a lesson asks for (Lesson.views) are drawn from its runs' snapshots."""

import pytest
import torch

from deeparch.engine.diagnostics import layer_statistics
from deeparch.lessons import get_lesson, list_lessons
from deeparch.lessons.present import VIEWS, view_figures


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
