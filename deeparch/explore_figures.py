"""Plotly figures for the exploration views: image grids, feature maps, latent scatters, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

GRAY = [[0.0, "black"], [1.0, "white"]]
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
    probabilities: np.ndarray, class_names: Sequence[str] | None = None, height: int = 280
) -> go.Figure:
    """Bar chart of class probabilities, the most likely class highlighted."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    names = list(class_names) if class_names else [str(i) for i in range(len(probabilities))]
    best = int(np.argmax(probabilities))
    colours = ["#d62728" if i == best else "#1f77b4" for i in range(len(probabilities))]
    fig = go.Figure(go.Bar(x=names, y=probabilities, marker_color=colours))
    fig.update_yaxes(range=[0, 1], title="probability")
    fig.update_xaxes(type="category", title="class")
    return _layout(fig, f"prediction: {names[best]} ({probabilities[best]:.0%})", height)


def latent_scatter_figure(
    points: np.ndarray,
    labels: np.ndarray | None = None,
    marker: tuple[float, float] | None = None,
    axis_titles: tuple[str, str] = ("z1", "z2"),
    title: str = "",
    height: int = 420,
) -> go.Figure:
    """Scatter of 2-D latent points coloured by label, with an optional cross at `marker`."""
    points = np.asarray(points, dtype=np.float32)
    fig = go.Figure()
    if labels is None:
        fig.add_trace(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", name="means"))
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            chosen = labels == value
            fig.add_trace(
                go.Scattergl(
                    x=points[chosen, 0],
                    y=points[chosen, 1],
                    mode="markers",
                    marker=dict(size=4, opacity=0.6),
                    name=str(value),
                )
            )
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
    return _layout(fig, title, height)


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
