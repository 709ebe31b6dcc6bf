"""A classifier's confusion matrix as a clickable heatmap, and the examples of one of its cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from deeparch.figures.explore import curves_figure, image_grid_figure

CONFUSION_SIDE_PX = 460  # the square plot's side: ten classes get cells of about 36 pixels
CONFUSION_MARGIN = {"l": 70, "r": 20, "t": 50, "b": 60}
# Plotly heatmaps fire no click while the chart can select (plotly/plotly.js#7685), so each cell
# also holds an almost invisible square marker, which a click selects like any scatter point.
CLICK_MARKER_FILL = 0.85  # of the cell's side the marker covers
CLICK_MARKER_OPACITY = 0.01  # invisible to the eye; fully transparent markers take no clicks


def class_labels(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names:
        return [str(name) for name in class_names]
    return [str(i) for i in range(num_classes)]


def most_confused_cell(confusion: np.ndarray) -> tuple[int, int] | None:
    """(true, predicted) of the largest off-diagonal count, the first on a tie; None if no error."""
    off_diagonal = np.array(confusion, dtype=np.int64)
    np.fill_diagonal(off_diagonal, 0)
    if off_diagonal.max(initial=0) == 0:
        return None
    true_class, predicted = np.unravel_index(int(np.argmax(off_diagonal)), off_diagonal.shape)
    return int(true_class), int(predicted)


def confusion_figure(
    confusion: np.ndarray,
    class_names: Sequence[str] | None = None,
    selected: tuple[int, int] | None = None,
    title: str = "Confusion matrix",
) -> go.Figure:
    """Counts of (true row, predicted column); the diagonal is right. Clicking a cell selects the
    scatter point at its centre (trace 1), whose customdata is [true, predicted]."""
    confusion = np.asarray(confusion, dtype=np.int64)
    k = confusion.shape[0]
    names = class_labels(k, class_names)
    # Each row as a share of its true class, so a rare class's errors show as strongly as a
    # common one's; the count is the text in the cell.
    row_totals = confusion.sum(axis=1, keepdims=True)
    shares = confusion / np.where(row_totals > 0, row_totals, 1)
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=list(range(k)),
            y=list(range(k)),
            text=confusion,
            texttemplate="%{text}",
            customdata=np.stack([np.broadcast_to(row_totals, (k, k)), confusion], axis=-1),
            hovertemplate="true %{y}, predicted %{x}: %{customdata[1]} of %{customdata[0]}"
            "<extra></extra>",
            colorscale="Blues",
            zmin=0.0,
            zmax=1.0,
            showscale=False,
        )
    )
    rows, cols = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    cell_px = (CONFUSION_SIDE_PX - CONFUSION_MARGIN["t"] - CONFUSION_MARGIN["b"]) / max(k, 1)
    fig.add_trace(
        go.Scatter(
            x=cols.ravel(),
            y=rows.ravel(),
            mode="markers",
            marker={"symbol": "square", "size": CLICK_MARKER_FILL * cell_px, "color": "#000000",
                    "opacity": CLICK_MARKER_OPACITY},
            customdata=np.stack([rows.ravel(), cols.ravel()], axis=-1),
            hoverinfo="skip",
            showlegend=False,
            name="cells",
        )
    )  # fmt: skip
    if selected is not None:
        true_class, predicted = selected
        fig.add_shape(
            type="rect", x0=predicted - 0.5, x1=predicted + 0.5, y0=true_class - 0.5,
            y1=true_class + 0.5, line={"color": "#E45756", "width": 3},
        )  # fmt: skip
    ticks = {"tickmode": "array", "tickvals": list(range(k)), "ticktext": names}
    fig.update_xaxes(title="predicted class", side="bottom", constrain="domain", **ticks)
    fig.update_yaxes(title="true class", autorange="reversed", scaleanchor="x", **ticks)
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        width=CONFUSION_SIDE_PX,
        height=CONFUSION_SIDE_PX,
        margin=CONFUSION_MARGIN,
        plot_bgcolor="#ffffff",
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def selected_cell(points: Sequence[dict]) -> tuple[int, int] | None:
    """(true, predicted) of the clicked cell from a chart's selected points, or None."""
    for point in points:
        custom = point.get("customdata")
        if point.get("curve_number") == 1 and custom is not None and len(custom) == 2:
            return int(custom[0]), int(custom[1])
    return None


def cell_examples_figure(examples: np.ndarray, kind: str, title: str = "") -> go.Figure | None:
    """One confusion cell's examples as the data's own kind shows them: a row of images, the
    sequences overlaid, or the 2-D points; None for token ids (shown as text instead)."""
    examples = np.asarray(examples, dtype=np.float32)
    if kind == "image":
        return image_grid_figure(examples, columns=max(1, len(examples)), title=title, height=180)
    if kind == "sequence":
        features = examples.reshape(len(examples), examples.shape[1], -1)[..., 0]  # (N, T)
        curves = {f"example {i + 1}": row for i, row in enumerate(features)}
        return curves_figure(curves, "time step t", "x_t", title=title, height=260)
    if kind == "points":
        fig = go.Figure(go.Scatter(x=examples[:, 0], y=examples[:, 1], mode="markers"))
        fig.update_xaxes(title="x1")
        fig.update_yaxes(title="x2")
        fig.update_layout(title=title, height=260, margin={"l": 40, "r": 10, "t": 40, "b": 40})
        return fig
    return None
