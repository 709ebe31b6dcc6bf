"""The figures of what training shows: numbers in, the same numbers in the traces."""

import numpy as np

from deeparch.figures import training_views as views


def boundary(k=3, size=5):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(k), size=(size, size))
    return {
        "xs": np.linspace(-1, 1, size),
        "ys": np.linspace(-2, 2, size),
        "probabilities": probabilities,
        "predicted": probabilities.argmax(axis=2),
        "points": rng.normal(size=(12, 2)),
        "labels": np.arange(12) % k,
    }


def test_the_decision_regions_shade_each_predicted_class_and_show_every_point():
    data = boundary()
    fig = views.decision_boundary_figure(data, ("a", "b", "c"))
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    scatters = [t for t in fig.data if t.type == "scatter"]
    assert len(heatmaps) == len(scatters) == 3
    for label, heatmap in enumerate(heatmaps):
        z = np.asarray(heatmap.z, dtype=float)
        shown = ~np.isnan(z)
        assert np.array_equal(shown, data["predicted"] == label)
        assert np.allclose(z[shown], data["probabilities"].max(axis=2)[shown])
    assert sum(len(t.x) for t in scatters) == 12
    assert [t.name for t in scatters] == ["a", "b", "c"]


def snapshots_with_layers(steps, grad=True):
    out = []
    for step in steps:
        counts = np.full((2, 4), float(step))
        edges = np.tile(np.linspace(-1, 1, 5), (2, 1))
        out.append(
            {
                "step": step,
                "layers": {
                    "names": ["fc1.weight", "fc2.weight"],
                    "trainable": np.array([True, grad]),
                    "weight_counts": counts,
                    "weight_edges": edges,
                    "grad_counts": counts if grad else np.full((2, 4), np.nan),
                    "grad_edges": edges,
                    "weight_norm": np.array([1.0, 2.0]),
                    "grad_norm": np.array([0.1 * step, 0.2 * step if grad else np.nan]),
                },
            }
        )
    return out


def test_histograms_over_time_are_one_curve_per_snapshot_at_bin_centres():
    snapshots = snapshots_with_layers([10, 20, 30])
    series = views.histogram_series(snapshots, "fc2.weight")
    assert [step for step, _, _ in series] == [10, 20, 30]
    assert np.allclose(series[0][1], [-0.75, -0.25, 0.25, 0.75])
    fig = views.histogram_over_time_figure(snapshots, "fc2.weight", "grad")
    assert [list(t.y) for t in fig.data] == [[10.0] * 4, [20.0] * 4, [30.0] * 4]


def test_many_snapshots_are_thinned_to_the_most_curves_first_and_last_kept():
    series = views.histogram_series(snapshots_with_layers(range(1, 41)), "fc1.weight")
    assert len(series) == views.MAX_HISTOGRAM_CURVES
    assert (series[0][0], series[-1][0]) == (1, 40)


def test_gradient_norms_per_layer_and_a_frozen_layer_left_out():
    fig = views.gradient_norms_figure(snapshots_with_layers([1, 2], grad=False))
    assert [t.name for t in fig.data] == ["fc1.weight"]
    assert list(fig.data[0].x) == [1, 2] and np.allclose(fig.data[0].y, [0.1, 0.2])
    assert (
        views.histogram_series(snapshots_with_layers([1], grad=False), "fc2.weight", "grad") == []
    )
