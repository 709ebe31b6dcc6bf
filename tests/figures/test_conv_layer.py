"""The convolution helper's server-drawn cells: the window, the padding and a transposed crop."""

import pytest

from deeparch.figures.conv_layer import CHOSEN, LINKED, PADDING, chosen_links, layer_figure
from deeparch.introspection.convmath import layer_axis


def fills(fig) -> list[str]:
    return [shape.fillcolor for shape in fig.layout.shapes]


@pytest.mark.parametrize(
    "size,kernel,stride,padding,dilation",
    [(3, 2, 1, 0, 1), (5, 3, 1, 1, 1), (10, 5, 2, 0, 1), (7, 3, 2, 1, 2)],
)
def test_the_last_output_rows_window_ends_where_the_kernel_reaches(
    size, kernel, stride, padding, dilation
):
    axis = layer_axis("convolution", size, kernel, stride, padding, dilation)
    out = axis.out
    fig = layer_figure(axis, 2, "out", out - 1, 0)
    padded = size + 2 * padding
    assert len(fig.layout.shapes) == padded**2 + out**2
    window = [s for s in fig.layout.shapes[: padded**2] if s.fillcolor == LINKED]
    assert len(window) == kernel * kernel
    # Rows count down from 0 at the top of the padded input.
    assert max(-s.y1 for s in window) == (out - 1) * stride + dilation * (kernel - 1)
    dashed = [s for s in fig.layout.shapes[: padded**2] if s.line.dash == "dot"]
    assert len(dashed) == padded**2 - size**2  # the padding, red where the window reads it
    assert {s.fillcolor for s in dashed} <= {PADDING, LINKED}
    assert fills(fig)[padded**2 :].count(CHOSEN) == 1
    assert f"output {out}×{out}" in [a.text for a in fig.layout.annotations]


def test_one_dimensional_causal_window_draws_one_row_each():
    axis = layer_axis("convolution", 12, 3, dilation=2, causal=True)
    fig = layer_figure(axis, 1, "out", 0, 7)
    assert len(fig.layout.shapes) == (12 + 4) + 12
    assert chosen_links(axis, "out", 0, 7, 1) == {(0, 3), (0, 5), (0, 7)}
    assert fills(fig).count(LINKED) == 3
    assert "input 12 + padding 4 left, 0 right" in [a.text for a in fig.layout.annotations]


def test_transposed_window_shows_the_cropped_cells_dashed():
    axis = layer_axis("transposed convolution", 3, 3, stride=2, padding=1)
    assert axis.out == 5 and axis.output_span == (-1, 6)
    fig = layer_figure(axis, 2, "in", 0, 0)
    outputs = fig.layout.shapes[9:]
    assert len(outputs) == 7 * 7
    assert sum(s.line.dash == "dot" for s in outputs) == 7 * 7 - 5 * 5
    assert fills(fig)[9:].count(LINKED) == 9  # input (0, 0) writes rows and columns -1..1
    assert "output 5×5 (dashed: cropped)" in [a.text for a in fig.layout.annotations]
