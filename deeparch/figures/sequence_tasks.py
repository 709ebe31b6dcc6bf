"""Figures of the sequence tasks: a forecast against the truth, prediction as each character is
read, accuracy per output position, and a 2-D map of word vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from deeparch.figures.explore import CLASS_COLOURS, _layout


def forecast_figure(
    series: np.ndarray, one_step: np.ndarray, forecast: np.ndarray, title: str = ""
) -> go.Figure:
    """One window (T,): the truth, the one-step-ahead predictions (each from the true values
    before it) and the forecast over the last len(forecast) steps (from its own predictions)."""
    steps, horizon = len(series), len(forecast)
    t = np.arange(steps)
    context_end = steps - horizon
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=t,
            y=series,
            mode="lines+markers",
            name="truth",
            line=dict(color="black"),
            marker=dict(size=4),
        )
    )
    # one_step[t] predicts series[t + 1]: drawn at t + 1, where its truth is.
    fig.add_trace(
        go.Scatter(
            x=t[1:],
            y=one_step[:-1],
            mode="lines",
            name="one step ahead",
            line=dict(color=CLASS_COLOURS[0], dash="dot"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=t[context_end:],
            y=forecast,
            mode="lines+markers",
            name=f"forecast ({horizon} steps)",
            line=dict(color=CLASS_COLOURS[3], width=3),
        )
    )
    fig.add_vrect(
        x0=context_end - 0.5,
        x1=steps - 0.5,
        fillcolor="gray",
        opacity=0.12,
        line_width=0,
        annotation_text="horizon",
        annotation_position="top left",
    )
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="value")
    return _layout(fig, title, 340)


def prefix_figure(
    prefixes: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str], title: str = ""
) -> go.Figure:
    """Probabilities (L, K) after each prefix of a name ("B", "Ba", ...) as a heatmap."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    fig = go.Figure(
        go.Heatmap(
            z=probabilities.T,
            x=list(range(1, len(prefixes) + 1)),
            y=list(class_names),
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            colorbar=dict(title="p", len=0.8),
            text=np.round(probabilities.T * 100).astype(int).astype(str),
            texttemplate="%{text}",
            hovertemplate="after %{customdata}: %{y} %{z:.0%}<extra></extra>",
            customdata=np.array([list(prefixes)] * len(class_names)),
        )
    )
    fig.update_xaxes(
        title="letters read", tickvals=list(range(1, len(prefixes) + 1)), ticktext=list(prefixes)
    )
    fig.update_yaxes(autorange="reversed")  # the first language on top, as in the legend
    return _layout(fig, title, 60 + 28 * len(class_names))


def word_map_figure(
    xy: np.ndarray, words: Sequence[str], highlighted: Sequence[str] = (), title: str = ""
) -> go.Figure:
    """Words at their 2-D coordinates (PCA of their vectors); highlighted ones in colour."""
    xy = np.asarray(xy, dtype=np.float32)
    marked = set(highlighted)
    colours = [CLASS_COLOURS[3] if word in marked else "#7f7f7f" for word in words]
    sizes = [14 if word in marked else 9 for word in words]
    fig = go.Figure(
        go.Scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="text",
            text=list(words),
            textfont=dict(color=colours, size=sizes),
            hoverinfo="text",
        )
    )
    fig.update_xaxes(title="principal component 1", zeroline=False)
    fig.update_yaxes(title="principal component 2", zeroline=False)
    return _layout(fig, title, 520)
