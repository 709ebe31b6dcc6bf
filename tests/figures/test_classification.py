"""The confusion-matrix figure: counts as written, rows as shares, one click marker per cell."""

import numpy as np

from deeparch.figures.classification import (
    cell_examples_figure,
    confusion_figure,
    most_confused_cell,
    selected_cell,
)

CONFUSION = np.array([[5, 1, 0], [3, 2, 0], [0, 0, 0]])


def test_the_heatmap_holds_the_counts_and_each_row_as_a_share():
    figure = confusion_figure(CONFUSION, ["a", "b", "c"], selected=(1, 0))
    heatmap, markers = figure.data
    np.testing.assert_array_equal(np.asarray(heatmap.text), CONFUSION)
    shares = np.asarray(heatmap.z)
    np.testing.assert_allclose(shares[:2].sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(shares[1], [0.6, 0.4, 0.0])
    np.testing.assert_array_equal(shares[2], [0, 0, 0])  # a class with no examples
    assert len(markers.x) == len(markers.y) == 9
    assert list(markers.text[:3]) == ["5 of 6", "1 of 6", "0 of 6"]
    assert list(figure.layout.xaxis.ticktext) == ["a", "b", "c"]
    frame = figure.layout.shapes[0]  # the chosen cell's frame: true 1, predicted 0
    assert (frame.x0, frame.x1, frame.y0, frame.y1) == (-0.5, 0.5, 0.5, 1.5)


def test_the_most_confused_cell_and_a_click():
    assert most_confused_cell(CONFUSION) == (1, 0)
    assert most_confused_cell(np.diag([3, 4])) is None
    points = [{"curve_number": 0, "x": 2, "y": 2}, {"curve_number": 1, "x": 0, "y": 1}]
    assert selected_cell(points) == (1, 0)  # the marker (trace 1), x = predicted, y = true
    assert selected_cell([{"curve_number": 0, "x": 1, "y": 1}]) is None


def test_cell_examples_are_drawn_as_their_kind():
    images = np.random.default_rng(0).random((3, 1, 28, 28))
    assert np.asarray(cell_examples_figure(images, "image").data[0].z).shape == (28, 3 * 29 - 1)
    sequences = np.zeros((2, 40, 1))
    assert len(cell_examples_figure(sequences, "sequence").data) == 2
    assert len(cell_examples_figure(np.zeros((4, 2)), "points").data[0].x) == 4
    assert cell_examples_figure(np.zeros((2, 64)), "tokens") is None
