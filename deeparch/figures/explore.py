"""Plotly figures for the exploration views: image grids, feature maps, latent scatters, curves."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import qualitative

GRAY = [[0.0, "black"], [1.0, "white"]]
# Ten clearly different colours, one per class (d3's category10). Set on each trace: Streamlit's
# theme otherwise recolours traces with a palette whose ten colours pair up (1/6, 4/9/7, 0/3).
CLASS_COLOURS = qualitative.D3
# Diverging scale for filters and activations, whose sign matters.
DIVERGING = "RdBu_r"


def _layout(fig: go.Figure, title: str, height: int, width: int | None = None) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        width=width,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        template="plotly_white",
    )
    return fig


def tile_images(
    images: np.ndarray, columns: int, pad: int = 1, pad_value: float = 0.5
) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows*(H+pad)-pad, columns*(W+pad)-pad[, 3]) array.

    One channel gives a 2-D array; three channels an (H, W, 3) RGB array.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        images = images[:, None]
    count, channels, height, width = images.shape
    rows = max(1, -(-count // columns))
    canvas = np.full(
        (channels, rows * (height + pad) - pad, columns * (width + pad) - pad),
        pad_value,
        dtype=np.float32,
    )
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = row * (height + pad), col * (width + pad)
        canvas[:, top : top + height, left : left + width] = images[index]
    return canvas[0] if channels == 1 else canvas.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)


def image_figure(
    image: np.ndarray,
    title: str = "",
    height: int = 300,
    zmin: float = 0.0,
    zmax: float = 1.0,
    colorscale: str | list = GRAY,
) -> go.Figure:
    """One 2-D array as a heatmap with square pixels, or an (H, W, 3) array in [0, 1] as colour."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3):
        image = image.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        trace = go.Image(z=(np.clip(image, 0, 1) * 255).astype(np.uint8))
    else:
        trace = go.Heatmap(z=image, zmin=zmin, zmax=zmax, colorscale=colorscale, showscale=False)
    fig = go.Figure(trace)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False, constrain="domain")
    return _layout(fig, title, height)


def image_grid_figure(
    images: np.ndarray, columns: int = 10, title: str = "", height: int = 300
) -> go.Figure:
    """A grid of (N, C, H, W) images in [0, 1]."""
    return image_figure(tile_images(images, columns), title, height)


def feature_map_figure(maps: np.ndarray, title: str = "", columns: int = 8, height: int = 400):
    """Every channel of one layer's activations (channels, h, w), each scaled to its own range."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = (maps - low) / np.where(span > 0, span, 1.0)  # per-channel [0, 1]
    return image_figure(tile_images(scaled[:, None], columns, pad_value=1.0), title, height)


def filters_figure(filters: np.ndarray, title: str = "", columns: int = 8, height: int = 300):
    """First-layer filters (out, in, k, k): input channels averaged, symmetric colour range."""
    kernels = np.asarray(filters, dtype=np.float32).mean(axis=1)  # (out, k, k)
    bound = float(np.abs(kernels).max()) or 1.0
    scaled = kernels / bound  # in [-1, 1]
    grid = tile_images(scaled[:, None], columns, pad_value=0.0)
    return image_figure(grid, title, height, zmin=-1.0, zmax=1.0, colorscale=DIVERGING)


def probabilities_figure(
    probabilities: np.ndarray,
    class_names: Sequence[str] | None = None,
    height: int = 280,
    note: str = "",
) -> go.Figure:
    """Bar chart of class probabilities, the most likely class highlighted; `note` (a caution
    such as "unlike the training data") follows the prediction in the title."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    names = list(class_names) if class_names else [str(i) for i in range(len(probabilities))]
    best = int(np.argmax(probabilities))
    colours = ["#d62728" if i == best else "#1f77b4" for i in range(len(probabilities))]
    fig = go.Figure(go.Bar(x=names, y=probabilities, marker_color=colours))
    fig.update_yaxes(range=[0, 1], title="probability")
    fig.update_xaxes(type="category", title="class")
    title = f"prediction: {names[best]} ({probabilities[best]:.0%})"
    return _layout(fig, f"{title} · {note}" if note else title, height)


def png_data_uri(image: np.ndarray) -> str:
    """An (H, W) or (H, W, 3) array in [0, 1] as a PNG data URI, for go.Image(source=...)."""
    pixels = (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255).round()
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def latent_grid_figure(
    grid: np.ndarray,
    z1_range: tuple[float, float],
    z2_range: tuple[float, float],
    title: str = "",
    height: int = 520,
) -> go.Figure:
    """A decoded latent grid (side, side, C, H, W) on z1/z2 axes in latent units.

    Each cell's centre sits at the latent point it decodes (latent_grid_points' layout: z2
    decreases down the rows), so the ticks read like the scatter of the means beside it. The
    picture travels as a PNG: as numbers a 20x20 grid is 2 MB, resent on every slider move.
    """
    grid = np.asarray(grid, dtype=np.float32)
    side, _, _channels, height_px, width_px = grid.shape
    pad = 1
    canvas = tile_images(grid.reshape(side * side, *grid.shape[2:]), side, pad)
    # Latent units per pixel: one cell step over one cell (its pixels and the padding line).
    dx = (z1_range[1] - z1_range[0]) / (side - 1) / (width_px + pad)
    dy = (z2_range[1] - z2_range[0]) / (side - 1) / (height_px + pad)
    # On an upward y axis an image's row 0 is drawn at the bottom: flip the canvas so the
    # bottom row (z2 low) comes first. The first cell's centre pixel, (W-1)/2 pixels in,
    # sits at the ranges' low ends.
    trace = go.Image(
        source=png_data_uri(canvas[::-1]),
        x0=z1_range[0] - (width_px - 1) / 2 * dx,
        dx=dx,
        y0=z2_range[0] - (height_px - 1) / 2 * dy,
        dy=dy,
        hovertemplate="z1 %{x:.2f}<br>z2 %{y:.2f}<extra></extra>",
    )
    fig = go.Figure(trace)
    axis = dict(showgrid=False, zeroline=False, ticks="outside")
    fig.update_xaxes(title="z1", constrain="domain", **axis)
    # Square pixels: a z2 unit spans dx/dy times the screen length of a z1 unit.
    fig.update_yaxes(
        title="z2", autorange=True, scaleanchor="x", scaleratio=dx / dy, constrain="domain",
        **axis,
    )  # fmt: skip
    fig = _layout(fig, title, height)
    fig.update_layout(margin=dict(l=50, b=40))
    return fig


def latent_scatter_figure(
    points: np.ndarray,
    labels: np.ndarray | None = None,
    marker: tuple[float, float] | None = None,
    axis_titles: tuple[str, str] = ("z1", "z2"),
    title: str = "",
    height: int = 420,
    class_names: Sequence[str] | None = None,
    region: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> go.Figure:
    """Scatter of 2-D latent points, one colour and legend entry per label.

    `marker`: a cross at the decoded z; `region`: ((x_low, x_high), (y_low, y_high)) outlined,
    the part of the space the decoded grid shows.
    """
    points = np.asarray(points, dtype=np.float32)
    fig = go.Figure()
    if labels is None:
        fig.add_trace(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", name="means"))
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            chosen = labels == value
            index = int(value) if np.issubdtype(labels.dtype, np.integer) else len(fig.data)
            name = class_names[index] if class_names and 0 <= index < len(class_names) else value
            fig.add_trace(
                go.Scattergl(
                    x=points[chosen, 0],
                    y=points[chosen, 1],
                    mode="markers",
                    marker=dict(
                        size=4, opacity=0.7, color=CLASS_COLOURS[index % len(CLASS_COLOURS)]
                    ),
                    name=str(name),
                )
            )
    if region is not None:
        (x_low, x_high), (y_low, y_high) = region
        fig.add_shape(
            type="rect", x0=x_low, x1=x_high, y0=y_low, y1=y_high,
            line=dict(color="gray", dash="dash", width=1),
            label=dict(text="grid", textposition="top left", font=dict(size=10, color="gray")),
        )  # fmt: skip
    if marker is not None:
        fig.add_trace(
            go.Scatter(
                x=[marker[0]],
                y=[marker[1]],
                mode="markers",
                marker=dict(symbol="x", size=12, color="black"),
                name="decoded z",
            )
        )
    fig.update_xaxes(title=axis_titles[0])
    fig.update_yaxes(title=axis_titles[1])
    fig = _layout(fig, title, height)
    fig.update_layout(legend=dict(itemsizing="constant"))  # legend dots larger than the points
    return fig


def interpolation_figure(
    originals: np.ndarray,
    strip: np.ndarray,
    lambdas: Sequence[float],
    end_labels: tuple[str, str],
    title: str = "",
    height: int = 200,
) -> go.Figure:
    """Two originals (2, C, H, W) framed at the ends of a decoded strip (steps, C, H, W).

    Each column is captioned: the originals with `end_labels` (e.g. "#5: 3"), the decodes
    with their lambda.
    """
    originals = np.asarray(originals, dtype=np.float32)
    strip = np.asarray(strip, dtype=np.float32)
    images = np.concatenate([originals[:1], strip, originals[1:2]])  # (steps + 2, C, H, W)
    columns = len(images)
    fig = image_figure(tile_images(images, columns), title, height)
    width_px, height_px, pad = images.shape[-1], images.shape[-2], 1
    captions = [end_labels[0], *(f"λ {value:.2f}" for value in lambdas), end_labels[1]]
    for column, caption in enumerate(captions):
        centre = column * (width_px + pad) + (width_px - 1) / 2
        fig.add_annotation(
            x=centre, y=1.0, xref="x", yref="paper", yanchor="bottom", text=caption,
            showarrow=False, font=dict(size=11),
        )  # fmt: skip
    for column in (0, columns - 1):  # frame the originals: they are data, not decodes
        left = column * (width_px + pad) - 0.5
        fig.add_shape(
            type="rect", x0=left, x1=left + width_px, y0=-0.5, y1=height_px - 0.5,
            line=dict(color=CLASS_COLOURS[1], width=3),
        )  # fmt: skip
    fig.update_layout(margin=dict(t=(40 if title else 10) + 25))
    return fig


def curves_figure(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    x_title: str,
    y_title: str,
    title: str = "",
    log_y: bool = False,
    x_values: Sequence[float] | None = None,
    height: int = 360,
    hline: float | None = None,
) -> go.Figure:
    """Several named curves on one plot (gradient norms per step, losses, D outputs)."""
    fig = go.Figure()
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        xs = np.asarray(x_values) if x_values is not None else np.arange(1, len(values) + 1)
        fig.add_trace(go.Scatter(x=xs[: len(values)], y=values, mode="lines", name=name))
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dash", line_color="gray")
    fig.update_xaxes(title=x_title)
    # Powers of ten, not SI prefixes: "1f" for 1e-15 means nothing to a student.
    fig.update_yaxes(
        title=y_title, type="log" if log_y else "linear", exponentformat="power" if log_y else "B"
    )
    return _layout(fig, title, height)


def hidden_heatmap_figure(hidden: np.ndarray, title: str = "", height: int = 360) -> go.Figure:
    """Hidden state over time (T, H) as a heatmap: time across, units down."""
    hidden = np.asarray(hidden, dtype=np.float32)
    bound = float(np.abs(hidden).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=hidden.T, zmin=-bound, zmax=bound, colorscale=DIVERGING, colorbar=dict(len=0.8)
        )
    )
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="hidden unit")
    return _layout(fig, title, height)


def bar_figure(
    values: Mapping[str, float], y_title: str, title: str = "", height: int = 320
) -> go.Figure:
    """One bar per name (samples/s per cell type, reconstruction error per method)."""
    names = list(values)
    numbers = [float(values[name]) for name in names]
    # Large numbers (samples/s) with thousands separators, small ones (errors) to 3 digits.
    labels = [f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in numbers]
    fig = go.Figure(go.Bar(x=names, y=numbers, text=labels, textposition="outside"))
    # Headroom above the tallest bar so its label is not clipped.
    fig.update_yaxes(title=y_title, range=[0, max([*numbers, 0.0]) * 1.15 or 1.0])
    return _layout(fig, title, height)


def sequence_figure(sequence: np.ndarray, title: str = "", height: int = 260) -> go.Figure:
    """One input sequence (T, F): a line for a single feature, a heatmap for several."""
    sequence = np.asarray(sequence, dtype=np.float32)
    if sequence.ndim == 1:
        sequence = sequence[:, None]
    if sequence.shape[1] == 1:
        fig = go.Figure(go.Scatter(y=sequence[:, 0], mode="lines+markers", name="x_t"))
        fig.update_xaxes(title="time step t")
    else:
        fig = go.Figure(go.Heatmap(z=sequence, colorscale=GRAY, showscale=False))
        fig.update_yaxes(autorange="reversed", title="time step t")
        fig.update_xaxes(title="feature")
    return _layout(fig, title, height)
