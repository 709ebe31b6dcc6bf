"""Pure plotting functions for what training shows: the decision regions of a 2-D classifier
(as TensorFlow Playground draws them), a layer's weight or gradient histograms over time, and
per-layer gradient norms. Snapshot payloads (numbers) in, plotly figures out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from deeparch.figures.training import PALETTE, charted

MAX_HISTOGRAM_CURVES = 12  # more curves than this on one chart are a smear


def _tint(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha:.2f})"


def _line(x: Any, y: Any, name: str, colour: str, markers: bool = False) -> go.Scatter:
    mode = "lines+markers" if markers else "lines"
    return go.Scatter(x=x, y=y, mode=mode, name=name, line={"color": colour})


def decision_boundary_figure(
    boundary: Mapping[str, Any], class_names: Sequence[str] = (), title: str = "Decision regions"
) -> go.Figure:
    """The predicted class on the grid, shaded by the model's confidence, with the points on
    top, coloured by their true class (a point on the wrong colour is misclassified)."""
    xs, ys = np.asarray(boundary["xs"]), np.asarray(boundary["ys"])
    probabilities = np.asarray(boundary["probabilities"])
    predicted = np.asarray(boundary["predicted"])
    k = probabilities.shape[2]
    names = list(class_names) or [str(i) for i in range(k)]
    traces = []
    confidence = probabilities.max(axis=2)
    for label in range(k):
        # One heatmap per class: its cells where it is predicted, opacity from the confidence.
        z = np.where(predicted == label, confidence, np.nan)
        colour = PALETTE[label % len(PALETTE)]
        traces.append(
            go.Heatmap(
                x=xs,
                y=ys,
                z=z,
                zmin=1.0 / k,
                zmax=1.0,
                colorscale=[[0.0, _tint(colour, 0.05)], [1.0, _tint(colour, 0.55)]],
                showscale=False,
                hovertemplate=f"{names[label]}: p=%{{z:.2f}}<extra></extra>",
                name=names[label],
            )
        )
    points, labels = np.asarray(boundary["points"]), np.asarray(boundary["labels"])
    for label in range(k):
        chosen = points[labels == label]
        traces.append(
            go.Scatter(
                x=chosen[:, 0],
                y=chosen[:, 1],
                mode="markers",
                name=names[label],
                marker={
                    "color": PALETTE[label % len(PALETTE)],
                    "size": 6,
                    "line": {"color": "white", "width": 0.5},
                },
            )
        )
    return charted(traces, title, "x1", "x2", 420, yaxis={"scaleanchor": "x", "scaleratio": 1})


def histogram_series(
    snapshots: Sequence[Mapping[str, Any]], layer: str, kind: str = "weight"
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(step, bin centres, counts) of one layer's `kind` (weight or grad) histogram in each
    snapshot that has it, oldest first; at most MAX_HISTOGRAM_CURVES, evenly spread."""
    series = []
    for snapshot in snapshots:
        layers = snapshot.get("layers")
        if not layers or layer not in layers["names"]:
            continue
        row = layers["names"].index(layer)
        counts = np.asarray(layers[f"{kind}_counts"])[row]
        edges = np.asarray(layers[f"{kind}_edges"])[row]
        if not np.isfinite(counts).all():
            continue  # no gradient yet (before the first step, or a frozen layer)
        series.append((int(snapshot.get("step", 0)), (edges[:-1] + edges[1:]) / 2, counts))
    if len(series) > MAX_HISTOGRAM_CURVES:
        picks = np.linspace(0, len(series) - 1, MAX_HISTOGRAM_CURVES).round().astype(int)
        series = [series[i] for i in picks]
    return series


def histogram_over_time_figure(
    snapshots: Sequence[Mapping[str, Any]], layer: str, kind: str = "weight"
) -> go.Figure:
    """One curve per snapshot of the layer's histogram, light (early) to dark (late), as
    TensorBoard's overlay of histograms: whether weights spread, shrink or saturate."""
    series = histogram_series(snapshots, layer, kind)
    traces = []
    for index, (step, centres, counts) in enumerate(series):
        shade = 0.15 + 0.85 * (index + 1) / len(series)
        colour = _tint(PALETTE[0] if kind == "weight" else PALETTE[1], shade)
        traces.append(_line(centres, counts, f"step {step}", colour))
    what = "weights" if kind == "weight" else "gradients"
    return charted(traces, f"{layer}: {what} over time", "value", "count", 320)


def gradient_norms_figure(snapshots: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Each layer's gradient norm at every snapshot (log scale): vanishing gradients show as
    early layers far below late ones (Glorot & Bengio 2010)."""
    norms: dict[str, dict[int, float]] = {}  # layer -> step -> norm
    for snapshot in snapshots:
        layers = snapshot.get("layers")
        for name, value in zip(
            layers["names"] if layers else (), layers["grad_norm"] if layers else (), strict=True
        ):
            norms.setdefault(name, {})[int(snapshot.get("step", 0))] = float(value)
    traces = []
    for index, (name, by_step) in enumerate(norms.items()):
        steps = sorted(by_step)
        values = [by_step[step] for step in steps]
        if not np.isfinite(values).any():
            continue  # a frozen layer has no gradient
        traces.append(_line(steps, values, name, PALETTE[index % len(PALETTE)], markers=True))
    log_axis = {"type": "log"}
    return charted(traces, "Gradient norm per layer", "step", "||gradient||", 320, yaxis=log_axis)


def layer_names(snapshot: Mapping[str, Any] | None) -> list[str]:
    """The layers a snapshot has statistics for, in the model's order."""
    if not snapshot or not snapshot.get("layers"):
        return []
    return list(snapshot["layers"]["names"])
