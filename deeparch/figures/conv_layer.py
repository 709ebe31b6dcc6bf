"""The convolution helper's server-drawn picture: a layer's input and output cells and one window.

The same cells as the browser component (pages/_components/conv_window.js) draws, from the same
links (deeparch.introspection.convmath.LayerAxis), for the fallback path and for AppTest.
"""

from __future__ import annotations

import plotly.graph_objects as go

from deeparch.introspection.convmath import LayerAxis

LINKED, CHOSEN, OUTPUT, PADDING, INPUT = "#E45756", "#B03A38", "#DCE6F2", "#EEEEEE", "#FFFFFF"


def chosen_links(axis: LayerAxis, side: str, row: int, column: int, dims: int) -> set:
    """The cells linked to the chosen one: input cells an output reads, or outputs an input feeds.

    2-D cells are (row, column); a 1-D cell is (0, position).
    """
    if side not in ("in", "out"):
        raise ValueError(f"side must be 'in' or 'out', not {side!r}")
    other = axis.inputs_of if side == "out" else axis.outputs_of
    rows = other(row) if dims == 2 else [0]
    return {(r, c) for r in rows for c in other(column)}


def layer_figure(
    axis: LayerAxis, dims: int, side: str = "out", row: int = 0, column: int = 0
) -> go.Figure:
    """Input cells (padding dashed) beside (2-D) or above (1-D) the output cells (crop dashed).

    The chosen cell is dark red and the cells linked to it red: with side "out" an output and the
    input window it reads (the sliding window); with side "in" an input and the outputs it feeds.
    """
    linked = chosen_links(axis, side, row, column, dims)
    chosen = (row if dims == 2 else 0, column)
    (in_low, in_high), (out_low, out_high) = axis.input_span, axis.output_span
    in_cells, out_cells = in_high - in_low, out_high - out_low

    if dims == 2:  # the output grid to the right of the input grid
        in_x, out_x, out_y = 0.0, in_cells + 2.0, 0.0
    else:  # the output row under the input row, both centred
        wide = max(in_cells, out_cells)
        in_x, out_x, out_y = (wide - in_cells) / 2, (wide - out_cells) / 2, -3.0
    shapes = []
    for this_side, span, count, x, y, fill in (
        ("in", axis.input_span, axis.size, in_x, 0.0, INPUT),
        ("out", axis.output_span, axis.out, out_x, out_y, OUTPUT),
    ):
        low, high = span
        marks = linked if this_side != side else set()
        for r in range(low, high) if dims == 2 else range(1):
            for c in range(low, high):
                inside = 0 <= c < count and (dims == 1 or 0 <= r < count)
                color = fill if inside else PADDING
                if (r, c) in marks:
                    color = LINKED
                if this_side == side and (r, c) == chosen:
                    color = CHOSEN
                top = y - (r - low if dims == 2 else 0)
                shapes.append(_cell(x + c - low, top, color, not inside))
    size_text = (lambda n: f"{n}×{n}") if dims == 2 else str
    if axis.padding_left == axis.padding_right:
        pads = f"padding {axis.padding_left}"
    else:
        pads = f"padding {axis.padding_left} left, {axis.padding_right} right"
    transposed = axis.mode == "transposed convolution"
    in_text = f"input {size_text(axis.size)}" + ("" if transposed else f" + {pads}")
    out_text = f"output {size_text(axis.out)}" + (
        " (dashed: cropped)" if transposed and out_cells > axis.out else ""
    )
    height_cells = max(in_cells, out_cells) if dims == 2 else 4
    fig = go.Figure()
    fig.update_layout(
        shapes=shapes,
        annotations=[
            _label(in_x + in_cells / 2, 1.0, in_text),
            _label(out_x + out_cells / 2, 1.0 if dims == 2 else out_y + 1.0, out_text),
        ],
        height=min(120 + 14 * height_cells, 520),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"visible": False, "range": [-0.5, max(in_x + in_cells, out_x + out_cells) + 0.5]},
        yaxis={"visible": False, "range": [-height_cells - 0.5, 1.6], "scaleanchor": "x"},
        showlegend=False,
    )
    return fig


def _cell(x: float, y: float, fill: str, dashed: bool = False) -> dict:
    return {
        "type": "rect", "x0": x, "x1": x + 0.95, "y0": y - 0.95, "y1": y, "fillcolor": fill,
        "line": {"color": "#999", "width": 1, "dash": "dot" if dashed else "solid"},
    }  # fmt: skip


def _label(x: float, y: float, text: str) -> dict:
    return {
        "x": x, "y": y, "xref": "x", "yref": "y", "text": text, "showarrow": False,
        "font": {"size": 12}, "xanchor": "center",
    }  # fmt: skip
