"""What the Lessons page shows of a lesson: its outcome's curves and images as figures (the
explore views' own figure functions), the live curves of its runs, and its links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from deeparch import share
from deeparch.engine.handle import JobHandle
from deeparch.figures import explore as explore_figures
from deeparch.figures import training as training_figures
from deeparch.figures import training_views
from deeparch.lessons.registry import Lesson, Outcome, Prediction


def series_figures(outcome: Outcome) -> list[go.Figure]:
    """One curves figure per series of the outcome, its x axis titled by Outcome.series_x; a log
    axis when the values span decades."""
    figures = []
    for title, curves in outcome.series.items():
        curves = dict(curves)
        x_title = outcome.series_x[title]
        x_values = curves.pop(x_title, None)
        values = np.concatenate([np.asarray(v, dtype=float) for v in curves.values()] or [[]])
        positive = values[np.isfinite(values) & (values > 0)]
        log_y = len(positive) > 0 and positive.max() / positive.min() > 1e3
        figures.append(
            explore_figures.curves_figure(
                curves,
                x_title,
                title.split(" (")[0],
                title=title,
                log_y=bool(log_y),
                x_values=x_values,
            )  # fmt: skip
        )
    return figures


def image_figures(outcome: Outcome, columns: int = 12) -> list[go.Figure]:
    return [
        explore_figures.image_grid_figure(np.asarray(images), columns=columns, title=title)
        for title, images in outcome.images.items()
    ]


def weight_histogram_figures(jobs: Mapping[str, JobHandle]) -> list[go.Figure]:
    """Each run's first weight layer over time: the Train page's histogram view, per run."""
    figures = []
    for label, job in jobs.items():
        snapshots = job.snapshot().get("snapshots") or []
        layers = training_views.layer_names(snapshots[-1] if snapshots else None)
        if layers:
            figure = training_views.histogram_over_time_figure(snapshots, layers[0])
            figure.update_layout(title=f"{label}: {layers[0]} over time")
            figures.append(figure)
    return figures


VIEWS = {"weight_histograms": weight_histogram_figures}


def view_figures(lesson: Lesson, jobs: Mapping[str, JobHandle]) -> list[go.Figure]:
    """The Train views the lesson asks for (Lesson.views), drawn from its runs."""
    return [figure for view in lesson.views for figure in VIEWS[view](jobs)]


def live_figure(jobs: Mapping[str, JobHandle]) -> go.Figure | None:
    """The training loss of every run of a lesson so far, overlaid (the Compare page's figure)."""
    if not jobs:
        return None
    runs = {label: job.snapshot().get("losses", {}) for label, job in jobs.items()}
    return training_figures.compare_figure(runs, "loss")


def lesson_link(base_url: str, lesson: Lesson) -> str:
    """The teacher's link that opens this lesson on the Lessons page."""
    return share.link(base_url, share.encode_lesson(lesson.name))


def setup_link(base_url: str, lesson: Lesson) -> str | None:
    """A link to Train with the lesson's one-click setup filled in (None without one)."""
    if lesson.setup is None:
        return None
    setup = dict(lesson.setup)
    arch, dataset = setup.pop("arch"), setup.pop("dataset", None)
    arch_values = setup.pop("arch_config", {})
    return share.link(base_url, share.encode(arch, dataset, arch_values, setup))


def comparison_link(base_url: str, lesson: Lesson, budget: str = "full") -> str | None:
    """One link to every run of the lesson, to train and compare side by side."""
    configs = lesson.runs(budget)
    if len(configs) < 2:
        return None
    return share.link(base_url, share.encode_runs([c.to_dict() for c in configs.values()]))


def answer_text(prediction: Prediction, answer: Any) -> str:
    if answer is None:
        return "—"
    if prediction.kind == "shape":
        return "(" + ", ".join(str(n) for n in answer) + ")"
    if prediction.kind == "number" and isinstance(answer, int | float):
        return f"{int(answer):,}" if float(answer).is_integer() else f"{answer:.3g}"
    return str(answer)
