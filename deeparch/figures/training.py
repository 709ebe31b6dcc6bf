"""Pure plotting functions: training logs in, plotly figures out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

# A calm qualitative palette shared by every figure, so a loss term keeps its colour across charts.
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D")
NOT_METRICS = ("epoch", "step")  # counters in a per-epoch row, not quantities to plot
# The discriminator's mean outputs a GAN logs next to its losses: probabilities, drawn on their own
# 0-1 axis so they do not flatten the loss curves.
PROBABILITY_TERMS = {"d_x": "D(x) real", "d_g_z": "D(G(z)) fake"}
MAX_EPOCH_TICKS = 12  # more labelled epochs than this overlap on a half-width chart
MAX_POINTS_PER_TRACE = 1000  # a chart is a few hundred pixels wide; more points only cost time


def _thin(points: Sequence[Sequence[float]], max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of every k-th point, so at most about max_points remain; the last is kept.

    Numpy arrays, not lists: plotly validates and serialises them without a per-element loop,
    which keeps a live chart cheap for the thread that draws it (and so for the training thread).
    """
    if len(points) == 0:
        return np.zeros(0), np.zeros(0)
    array = np.asarray(points, dtype=float)  # (n, 2): step, value
    if len(array) > max_points:
        stride = -(-len(array) // max_points)
        last = array[-1:]
        array = array[::stride]
        if array[-1, 0] != last[0, 0]:
            array = np.concatenate([array, last])
    return array[:, 0], array[:, 1]


def charted(
    traces: Sequence[go.Scatter | go.Heatmap],
    title: str,
    x_title: str,
    y_title: str,
    height: int,
    xaxis: Mapping[str, Any] | None = None,
    yaxis: Mapping[str, Any] | None = None,
    **layout: Any,
) -> go.Figure:
    """The traces in a figure with the charts' common layout (and any more of it).

    The layout is given before the traces: plotly's update_layout on a figure that holds traces
    relays the change to them, which made the live loss chart 12 ms to build against 3 ms this
    way (the same figure), and a class's live panels build it for every student every refresh.
    """
    fig = go.Figure(
        layout=go.Layout(
            title={"text": title, "x": 0.0, "xanchor": "left"},
            height=height,
            margin={"l": 50, "r": 50, "t": 40, "b": 90},
            # Below the axis: a long legend (a GAN's six validation metrics) would cover the title.
            legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
            xaxis={"title": {"text": x_title}, **(xaxis or {})},
            yaxis={"title": {"text": y_title}, **(yaxis or {})},
            uirevision="keep",  # keep the student's zoom while the chart refreshes
            **layout,
        )
    )
    fig.add_traces(list(traces))
    return fig


def loss_figure(
    losses: Mapping[str, Sequence[Sequence[float]]],
    title: str = "Training loss per step",
    max_points: int = MAX_POINTS_PER_TRACE,
) -> go.Figure:
    """One line per loss term; `losses` maps a term to [[step, value], ...].

    A term identical to the total "loss" (a task with a single term) is drawn once, as "loss".
    """
    traces = []
    total = losses.get("loss")
    # A GAN's "loss" is d_loss + g_loss, two players' losses added: not a quantity to watch.
    adversarial = "d_loss" in losses and "g_loss" in losses
    has_probabilities = False
    for index, (term, points) in enumerate(losses.items()):
        if term != "loss" and total is not None and points == total:
            continue
        if term == "loss" and adversarial:
            continue
        steps, values = _thin(points, max_points)
        probability = term in PROBABILITY_TERMS
        has_probabilities = has_probabilities or probability
        traces.append(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines",
                name=PROBABILITY_TERMS.get(term, term),
                yaxis="y2" if probability else "y",
                line={"color": PALETTE[index % len(PALETTE)], "width": 1.8,
                      "dash": "dot" if probability else None},
            )
        )  # fmt: skip
    more = {}
    if has_probabilities:
        more["yaxis2"] = {"title": "D output", "overlaying": "y", "side": "right",
                          "showgrid": False, "range": [0, 1.02], "tickmode": "linear",
                          "dtick": 0.25}  # fmt: skip
    return charted(traces, title, "step", "loss", 380, **more)


def epoch_metrics_figure(
    epoch_metrics: Sequence[Mapping[str, float]], title: str = "Per-epoch metrics"
) -> go.Figure:
    """Every metric of every epoch; losses on the left axis, the others (accuracy) on the right."""
    traces = []
    names: list[str] = []
    for row in epoch_metrics:
        names.extend(k for k in row if k not in NOT_METRICS and k not in names)
    has_right_axis, right_values = False, []
    for index, name in enumerate(names):
        epochs = [row["epoch"] for row in epoch_metrics if row.get(name) is not None]
        values = [row[name] for row in epoch_metrics if row.get(name) is not None]
        on_right = "loss" not in name
        has_right_axis = has_right_axis or on_right
        right_values.extend(values if on_right else [])
        traces.append(
            go.Scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=name,
                yaxis="y2" if on_right else "y",
                line={"color": PALETTE[index % len(PALETTE)], "dash": "dot" if on_right else None},
            )
        )
    more = {}
    if has_right_axis:
        right = {"title": "metric", "overlaying": "y", "side": "right", "showgrid": False,
                 "rangemode": "tozero"}  # fmt: skip
        if all(0.0 <= value <= 1.0 for value in right_values):
            # Fractions (accuracy): a fixed 0-100 % axis shows how close to perfect a run gets,
            # and keeps round ticks (plotly otherwise aligns them with the loss axis: 0.072, ...).
            right.update(range=[0, 1.02], tickformat=".0%", tickmode="linear", dtick=0.2)
        more["yaxis2"] = right
    xaxis = _epoch_ticks(len(epoch_metrics))
    return charted(traces, title, "epoch", "loss", 380, xaxis=xaxis, **more)


def _epoch_ticks(epochs: int) -> dict[str, Any]:
    """One tick per epoch while they fit; plotly's own spacing for longer runs."""
    return {"dtick": 1} if epochs <= MAX_EPOCH_TICKS else {}


def spans_decades(
    runs: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], term: str, decades: float = 3.0
) -> bool:
    """Whether one term's positive values span more than `decades` powers of ten across runs:
    a run that blew up (1e16) flattens every other curve on a linear axis."""
    values = [v for losses in runs.values() for _, v in losses.get(term, []) if v > 0]
    return bool(values) and max(values) > 10**decades * min(values)


def compare_figure(
    runs: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    term: str,
    max_points: int = MAX_POINTS_PER_TRACE,
    log_y: bool = False,
) -> go.Figure:
    """One loss term of several runs overlaid; `runs` maps a run label to its losses dict."""
    traces = []
    for index, (label, losses) in enumerate(runs.items()):
        steps, values = _thin(losses.get(term, []), max_points)
        traces.append(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines",
                name=label,
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    y_title = term + (" (log scale)" if log_y else "")
    yaxis = {"type": "log", "exponentformat": "power"} if log_y else None
    return charted(traces, f"{term} per step", "step", y_title, 400, yaxis=yaxis)


def compare_epoch_figure(
    runs: Mapping[str, Sequence[Mapping[str, float]]], metric: str
) -> go.Figure:
    """One per-epoch metric (val_loss, val_accuracy, ...) of several runs overlaid."""
    traces = []
    for index, (label, rows) in enumerate(runs.items()):
        rows = [r for r in rows if r.get(metric) is not None]
        traces.append(
            go.Scatter(
                x=[r["epoch"] for r in rows],
                y=[r[metric] for r in rows],
                mode="lines+markers",
                name=label,
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    if "accuracy" in metric:
        # Accuracy on its whole 0-100 % scale: a run stuck at chance (10 %) stays a flat line
        # low down instead of filling the chart with ticks like 0.0999999992.
        yaxis = {"range": [0, 1.02], "tickformat": ".0%", "tickmode": "linear", "dtick": 0.2}
    else:
        yaxis = {"tickformat": ".4~g"}
    xaxis = _epoch_ticks(max((len(rows) for rows in runs.values()), default=0))
    return charted(traces, f"{metric} per epoch", "epoch", metric, 360, xaxis=xaxis, yaxis=yaxis)
