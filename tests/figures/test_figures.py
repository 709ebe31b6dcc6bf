"""Tests for deeparch.figures.training: the figures hold exactly the data they were given."""

import plotly.graph_objects as go

from deeparch.figures import training as viz


def test_loss_figure_has_one_trace_per_term_with_every_point():
    losses = {"total": [[1, 2.0], [2, 1.5], [3, 1.2]], "kl": [[1, 0.5], [2, 0.4], [3, 0.3]]}
    fig = viz.loss_figure(losses)
    assert isinstance(fig, go.Figure)
    assert [trace.name for trace in fig.data] == ["total", "kl"]
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[1].y) == [0.5, 0.4, 0.3]


def test_loss_figure_thins_long_curves_and_keeps_the_last_point():
    points = [[step, 1.0 / step] for step in range(1, 10_001)]
    fig = viz.loss_figure({"loss": points}, max_points=500)
    xs = list(fig.data[0].x)
    assert len(xs) <= 501
    assert xs[0] == 1 and xs[-1] == 10_000
    assert xs == sorted(xs)


def test_epoch_metrics_figure_puts_accuracy_on_the_right_axis():
    rows = [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.7},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.85},
    ]
    fig = viz.epoch_metrics_figure(rows)
    by_name = {trace.name: trace for trace in fig.data}
    assert set(by_name) == {"train_loss", "val_loss", "val_accuracy"}
    assert by_name["val_accuracy"].yaxis == "y2"
    assert by_name["val_loss"].yaxis == "y"
    assert list(by_name["val_accuracy"].y) == [0.7, 0.85]
    assert list(by_name["train_loss"].x) == [1, 2]


def test_loss_figure_draws_a_term_equal_to_the_total_once():
    points = [[1, 2.0], [2, 1.0]]
    fig = viz.loss_figure({"loss": points, "cross_entropy": list(points), "kl": [[1, 0.1]]})
    assert [trace.name for trace in fig.data] == ["loss", "kl"]


def test_epoch_metrics_figure_leaves_out_counters():
    rows = [{"epoch": 1, "step": 62, "val_loss": 0.8}, {"epoch": 2, "step": 124, "val_loss": 0.6}]
    assert [trace.name for trace in viz.epoch_metrics_figure(rows).data] == ["val_loss"]


def test_epoch_metrics_figure_skips_missing_values():
    rows = [{"epoch": 1, "val_loss": 0.8}, {"epoch": 2, "val_loss": 0.6, "val_accuracy": 0.9}]
    by_name = {trace.name: trace for trace in viz.epoch_metrics_figure(rows).data}
    assert list(by_name["val_accuracy"].x) == [2]


def test_compare_figures_overlay_one_trace_per_run():
    runs = {"a": {"loss": [[1, 1.0], [2, 0.5]]}, "b": {"loss": [[1, 2.0]], "kl": [[1, 0.1]]}}
    fig = viz.compare_figure(runs, "loss")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[1].y) == [2.0]
    epochs = {"a": [{"epoch": 1, "val_accuracy": 0.5}], "b": [{"epoch": 1, "val_loss": 1.0}]}
    fig = viz.compare_epoch_figure(epochs, "val_accuracy")
    assert list(fig.data[0].y) == [0.5] and list(fig.data[1].y) == []
    assert list(fig.layout.yaxis.range) == [0, 1.02]  # accuracy on its whole scale


def test_a_run_that_blew_up_switches_the_comparison_to_a_log_axis():
    calm = {"loss": [[1, 2.3], [2, 0.4]]}
    blown = {"loss": [[1, 2.3], [2, 3e16]]}
    assert not viz.spans_decades({"a": calm}, "loss")
    assert viz.spans_decades({"a": calm, "b": blown}, "loss")
    log_figure = viz.compare_figure({"a": calm, "b": blown}, "loss", log_y=True)
    assert log_figure.layout.yaxis.type == "log"
    assert viz.compare_figure({"a": calm}, "loss").layout.yaxis.type is None


def test_epoch_metrics_figure_fixes_a_fraction_axis_at_0_to_100_percent():
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_accuracy": 0.5 + e / 100} for e in (1, 2)]
    fig = viz.epoch_metrics_figure(rows)
    assert tuple(fig.layout.yaxis2.range) == (0, 1.02)
    assert fig.layout.yaxis2.tickformat == ".0%"
    # A metric above 1 (a VAE's summed reconstruction) keeps an automatic axis.
    rows = [{"epoch": 1, "train_loss": 190.0, "val_reconstruction": 156.8}]
    assert viz.epoch_metrics_figure(rows).layout.yaxis2.range is None


def test_epoch_ticks_stay_one_per_epoch_only_while_they_fit():
    short = [{"epoch": e, "train_loss": 1.0} for e in range(1, 4)]
    long = [{"epoch": e, "train_loss": 1.0} for e in range(1, viz.MAX_EPOCH_TICKS + 5)]
    assert viz.epoch_metrics_figure(short).layout.xaxis.dtick == 1
    assert viz.epoch_metrics_figure(long).layout.xaxis.dtick is None


def test_gan_loss_figure_drops_the_summed_loss_and_puts_d_outputs_on_a_0_1_axis():
    losses = {
        "loss": [[1, 2.0], [2, 2.2]],
        "d_loss": [[1, 1.3], [2, 1.1]],
        "g_loss": [[1, 0.7], [2, 1.1]],
        "d_x": [[1, 0.6], [2, 0.7]],
        "d_g_z": [[1, 0.4], [2, 0.3]],
    }
    fig = viz.loss_figure(losses)
    names = [trace.name for trace in fig.data]
    assert names == ["d_loss", "g_loss", "D(x) real", "D(G(z)) fake"]
    assert [trace.yaxis for trace in fig.data] == ["y", "y", "y2", "y2"]
    assert tuple(fig.layout.yaxis2.range) == (0, 1.02)


def test_every_drawing_is_written_and_every_architecture_finds_one(tmp_path):
    from deeparch.figures import diagrams
    from deeparch.figures.layer_drawing import layer_stack_drawing
    from deeparch.introspection.table import summarize
    from deeparch.models import get_arch, list_archs

    written = {path.stem for path in diagrams.write_all(tmp_path)}
    assert written == set(diagrams.DRAWERS)
    # Every family of the syllabus has a hand-made drawing; a family added later may have none,
    # and Home draws its layer table instead.
    hand_drawn = {"mlp", "cnn", "inception", "resnet", "rnn", "qrnn", "tcn", "autoencoder",
                  "vae", "unet", "gan"}  # fmt: skip
    for arch in list_archs():
        asset = diagrams.asset_for(arch, get_arch(arch).family, tmp_path)
        if get_arch(arch).family in hand_drawn:
            assert asset in (tmp_path / f"{arch}.svg", tmp_path / f"{get_arch(arch).family}.svg")
        else:
            assert asset is None and layer_stack_drawing(summarize(arch)).startswith("<svg")
    # The most different architectures have a drawing of their own, not their family's.
    own = {"lstm", "gru", "cgan", "dcgan", "alexnet", "unet1d", "sparse_autoencoder"}
    assert own <= written
    assert all((tmp_path / f"{name}.svg").read_text().startswith("<svg") for name in own)


def test_the_assets_folder_is_the_repositorys():
    from deeparch.figures.diagrams import ASSETS_DIR

    assert ASSETS_DIR.name == "assets" and (ASSETS_DIR / "mlp.svg").exists()
