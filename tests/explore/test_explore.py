"""The exploration computations: feature maps, uploads, latent decodes, GANs, sequences, PCA."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import PCA
from torch import nn

from deeparch.data.info import EXAMPLE_INFO
from deeparch.errors import ConfigError
from deeparch.explore import autoencoders as ae
from deeparch.explore import latent
from deeparch.explore import sequences as seq
from deeparch.explore import views as explore
from deeparch.explore.images import (
    conv_layer_names,
    decode_upload,
    inspect_image,
    preprocess_image,
)
from deeparch.models import create_model

IMAGE_INFO = EXAMPLE_INFO["image"]
SEQUENCE_INFO = EXAMPLE_INFO["sequence"]


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


# ---------------------------------------------------------------- feature maps
def test_inspect_image_records_every_conv_layer_like_an_independent_forward():
    model, _ = create_model("cnn", {}, IMAGE_INFO)
    image = torch.rand(1, 28, 28)
    result = inspect_image(model, image)
    assert (
        result.layer_names
        == conv_layer_names(model)
        == [
            "features.conv1",
            "features.conv2",
            "features.conv3",
        ]
    )
    conv1 = model.features.conv1
    expected = nn.functional.conv2d(image[None], conv1.weight, conv1.bias)[0].detach().numpy()
    np.testing.assert_allclose(result.feature_maps["features.conv1"], expected, atol=1e-5)
    # The maps are the conv's own output, before the ReLU that follows it (the page says so and
    # draws them red/blue): negative values are kept, and the ReLU of them is what act1 passes on.
    assert (result.feature_maps["features.conv1"] < 0).any()
    with torch.no_grad():
        after_relu = model.features.act1(model.features.conv1(image[None]))[0].numpy()
    np.testing.assert_allclose(np.maximum(result.feature_maps["features.conv1"], 0), after_relu)
    assert result.feature_maps["features.conv2"].shape == (64, 11, 11)
    assert result.first_filters.shape == (32, 1, 3, 3)
    with torch.no_grad():
        probabilities = torch.softmax(model(image[None]), dim=1)[0].numpy()
    np.testing.assert_allclose(result.probabilities, probabilities, atol=1e-6)
    assert result.predicted_class == int(probabilities.argmax())
    # Hooks are gone and the mode is restored.
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert model.training


def test_inspect_image_works_for_alexnet_inception_and_resnet():
    for arch in ("alexnet", "inception", "resnet"):
        model, _ = create_model(arch, {}, IMAGE_INFO)
        result = inspect_image(model, torch.rand(1, 28, 28))
        assert len(result.layer_names) == len(conv_layer_names(model)) >= 2
        assert result.probabilities.shape == (10,)
        assert abs(float(result.probabilities.sum()) - 1.0) < 1e-5


# ---------------------------------------------------------------- uploads and drawings
def test_canvas_drawing_becomes_a_centred_mnist_like_digit():
    drawing = np.zeros((224, 224, 4), dtype=np.uint8)
    drawing[20:120, 30:50] = (255, 255, 255, 255)  # a white bar in the top-left corner
    tensor = preprocess_image(drawing, (1, 28, 28), invert="no")
    assert tensor.shape == (1, 28, 28)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    rows, cols = np.where(tensor[0].numpy() > 0.1)
    assert rows.max() - rows.min() + 1 == 20  # the longer side is scaled to 20 pixels
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1  # centred vertically
    assert abs((cols.min() + cols.max()) / 2 - 13.5) <= 1  # and horizontally


def test_dark_ink_on_paper_is_inverted_automatically():
    light_on_dark = np.zeros((100, 100), dtype=np.uint8)
    light_on_dark[30:70, 45:55] = 255
    dark_on_light = 255 - light_on_dark
    picture = decode_upload(png_bytes(dark_on_light))
    auto = preprocess_image(picture, (1, 28, 28))
    reference = preprocess_image(Image.fromarray(light_on_dark), (1, 28, 28), invert="no")
    torch.testing.assert_close(auto, reference, atol=1e-6, rtol=0)


def test_grey_paper_becomes_a_black_background():
    # A photo: grey paper (value 200) with darker ink (40); after inversion the paper is 55/255,
    # which would leave a grey box around the digit. The background is stretched to 0, ink to 1.
    paper = np.full((100, 100), 200, dtype=np.uint8)
    paper[30:70, 45:55] = 40
    tensor = preprocess_image(decode_upload(png_bytes(paper)), (1, 28, 28))[0].numpy()
    ink = tensor > 0.5
    assert ink.sum() > 0
    assert float(tensor[~ink].max()) < 0.35  # only the resampled edges of the stroke
    assert float(np.median(tensor)) == 0.0
    assert float(tensor.max()) == pytest.approx(1.0, abs=0.02)


def test_upload_converted_to_colour_input():
    rgb = np.zeros((50, 60, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    tensor = preprocess_image(decode_upload(png_bytes(rgb, "JPEG")), (3, 32, 32))
    assert tensor.shape == (3, 32, 32)
    assert float(tensor[0].mean()) > 0.9 and float(tensor[2].mean()) < 0.1


def test_bad_uploads_are_config_errors():
    with pytest.raises(ConfigError) as empty:
        decode_upload(b"")
    assert empty.value.field == "upload"
    with pytest.raises(ConfigError, match="notes.png could not be read as a picture") as bad:
        decode_upload(b"not an image at all", "notes.png")
    assert "damaged or not a picture" in bad.value.hint
    with pytest.raises(ConfigError, match="GIF"):
        decode_upload(png_bytes(np.zeros((8, 8), dtype=np.uint8), "GIF"))
    with pytest.raises(ConfigError, match="at most 5 MB"):
        decode_upload(b"\x89PNG" + bytes(6 * 1024 * 1024))
    with pytest.raises(ConfigError, match="at most 2048 x 2048"):
        decode_upload(png_bytes(np.zeros((1, 4100 * 4100 // 1), dtype=np.uint8)))
    with pytest.raises(ConfigError) as invert:
        preprocess_image(np.zeros((8, 8)), (1, 28, 28), invert="maybe")
    assert invert.value.field == "invert"


# ---------------------------------------------------------------- VAE latent space
@pytest.fixture(scope="module")
def vae_2d():
    torch.manual_seed(0)
    model, _ = create_model("vae", {"latent_dim": 2}, IMAGE_INFO)
    return model.eval()


def test_latent_grid_reads_like_a_plot():
    points = latent.latent_grid_points(-1.5, 1.5, 3)  # (9, 2)
    assert points.shape == (9, 2)
    np.testing.assert_allclose(points[0], [-1.5, 1.5])  # top left: z1 low, z2 high
    np.testing.assert_allclose(points[2], [1.5, 1.5])
    np.testing.assert_allclose(points[8], [1.5, -1.5])
    with pytest.raises(ConfigError):
        latent.latent_grid_points(1.0, -1.0, 5)
    with pytest.raises(ConfigError):
        latent.latent_grid_points(-1.0, 1.0, 1)


def test_decode_grid_equals_decoding_each_point(vae_2d):
    grid = latent.decode_grid(vae_2d, -1.0, 1.0, 4)
    assert grid.shape == (4, 4, 1, 28, 28)
    with torch.no_grad():
        corner = vae_2d.decode(torch.tensor([[1.0, -1.0]]))[0].numpy()  # bottom right
    np.testing.assert_allclose(grid[3, 3], corner, atol=1e-6)


def test_moving_a_latent_slider_changes_only_the_decoded_image(vae_2d):
    before = latent.decode(vae_2d, np.array([0.0, 0.0]))
    after = latent.decode(vae_2d, np.array([1.5, 0.0]))
    again = latent.decode(vae_2d, np.array([0.0, 0.0]))
    assert before.shape == (1, 1, 28, 28)
    assert np.abs(before - after).max() > 1e-4
    np.testing.assert_array_equal(before, again)
    with pytest.raises(ConfigError):
        latent.decode(vae_2d, np.zeros(3))


def test_interpolation_ends_at_the_two_images_means(vae_2d):
    images = torch.rand(2, 1, 28, 28)
    lambdas, strip = latent.interpolate_images(vae_2d, images[0], images[1], 5)
    np.testing.assert_allclose(lambdas, [0, 0.25, 0.5, 0.75, 1])
    with torch.no_grad():
        mu, _ = vae_2d.encode(images)
        ends = vae_2d.decode(mu).numpy()
    np.testing.assert_allclose(strip[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], ends[1], atol=1e-5)


def test_projection_of_means_matches_sklearn_pca():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(200, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])
    projection = latent.project_means(means)
    reference = PCA(n_components=2).fit(means)
    centred = projection.points - projection.points.mean(axis=0)
    expected = reference.transform(means)
    for axis in range(2):  # principal axes are defined up to sign
        sign = np.sign(centred[:, axis] @ expected[:, axis])
        np.testing.assert_allclose(sign * centred[:, axis], expected[:, axis], atol=1e-4)
    np.testing.assert_allclose(projection.explained, reference.explained_variance_ratio_, 1e-5)
    two_d = latent.project_means(means[:, :2])
    np.testing.assert_allclose(two_d.points, means[:, :2], atol=1e-5)  # a 2-D latent as it is


# ---------------------------------------------------------------- GANs
def test_conditional_gan_class_choice_changes_the_samples():
    model, _ = create_model("cgan", {}, IMAGE_INFO)
    threes = latent.samples_of_class(model, 3, n=4, seed=7)
    sevens = latent.samples_of_class(model, 7, n=4, seed=7)
    assert threes.shape == (4, 1, 28, 28)
    assert threes.min() >= 0.0 and threes.max() <= 1.0
    assert np.abs(threes - sevens).max() > 1e-4
    np.testing.assert_array_equal(threes, latent.samples_of_class(model, 3, n=4, seed=7))
    with pytest.raises(ConfigError):
        latent.samples_of_class(model, 10)


def test_noise_walk_ends_at_each_seeds_sample():
    model, _ = create_model("mlp_gan", {}, IMAGE_INFO)
    walk = latent.interpolate_noise(model, 1, 2, steps=4)
    assert walk.shape == (4, 1, 28, 28)
    first = latent.generate(model, latent.fixed_noise(model, 1, 1))[0]
    last = latent.generate(model, latent.fixed_noise(model, 1, 2))[0]
    np.testing.assert_allclose(walk[0], first, atol=1e-6)
    np.testing.assert_allclose(walk[-1], last, atol=1e-6)
    with pytest.raises(ConfigError):
        latent.samples_of_class(model, 0)  # not conditional


# ---------------------------------------------------------------- sequences
def test_gradient_per_step_equals_autograd_on_the_raw_input():
    model, _ = create_model("rnn", {"hidden_size": 16}, SEQUENCE_INFO)
    x, y = torch.randn(5, 40, 1), torch.randint(0, 10, (5,))
    norms = seq.gradient_norm_per_step(model, x, y)
    raw = x.clone().requires_grad_(True)  # float sequences: embed is the identity
    nn.functional.cross_entropy(model(raw), y, reduction="sum").backward()
    expected = raw.grad.norm(dim=2).mean(dim=0).numpy()
    assert norms.shape == (40,)
    np.testing.assert_allclose(norms, expected, rtol=1e-5)


def test_hidden_trace_is_the_classifiers_hidden_state():
    model, _ = create_model("gru", {"hidden_size": 12}, SEQUENCE_INFO)
    x = torch.randn(40, 1)
    trace = seq.hidden_trace(model, x)
    assert trace.shape == (40, 12)
    with torch.no_grad():
        _, hidden = model.classify_embedded(x[None], return_hidden=True)
    np.testing.assert_allclose(trace, hidden[0].numpy(), atol=1e-6)


def test_brief_training_lowers_the_loss_and_speed_counts_samples():
    torch.manual_seed(0)
    short = dataclasses.replace(SEQUENCE_INFO, input_shape=(8, 1), num_classes=2)
    model, _ = create_model("lstm", {"hidden_size": 8}, short)
    x = torch.randn(64, 8, 1)
    y = (x[:, -1, 0] > 0).long()  # learnable from the last step
    losses = seq.train_steps(model, x, y, steps=40, batch_size=32, lr=2e-2)
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    with pytest.raises(ConfigError):
        seq.build_sequence_model("transformer", "mnist1d")


def test_measured_speed_reports_its_model_and_steps():
    result = seq.measure_training_speed("rnn (tanh)", "mnist_rows", steps=3, batch_size=8)
    model = seq.build_sequence_model("rnn (tanh)", "mnist_rows")
    assert result.parameters == sum(p.numel() for p in model.parameters())
    assert (result.steps, result.batch_size) == (3, 8)
    assert result.samples_per_s == pytest.approx(3 * 8 / result.seconds)
    assert result.torch_threads == torch.get_num_threads()


def test_speed_measurement_runs_whole_chunks_until_its_minimum_time():
    result = seq.measure_training_speed("gru", "mnist1d", steps=2, batch_size=4, min_seconds=0.05)
    assert result.steps % 2 == 0 and result.steps >= 2
    assert result.seconds >= 0.05
    assert result.samples_per_s == pytest.approx(result.steps * 4 / result.seconds)
    with pytest.raises(ConfigError) as error:
        seq.measure_training_speed("gru", "mnist1d", min_seconds=-1.0)
    assert error.value.field == "min_seconds"


# ---------------------------------------------------------------- PCA vs autoencoders
def test_pca_matches_sklearn_and_beats_any_linear_autoencoder_on_its_data():
    torch.manual_seed(0)
    x = torch.rand(300, 1, 8, 8) * torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    flat = x.reshape(300, -1).numpy()
    pca = ae.PCAModel(x, 5)
    ours = pca.decode(pca.encode(x), (1, 8, 8)).reshape(300, -1).numpy()
    reference = PCA(n_components=5).fit(flat)
    theirs = reference.inverse_transform(reference.transform(flat))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # Eckart-Young: no rank-5 affine map reconstructs the training data better than PCA.
    info = dataclasses.replace(IMAGE_INFO, input_shape=(1, 8, 8))
    linear = ae.build_autoencoder("linear autoencoder", 5, info)
    ae.train_autoencoder(linear, x, steps=50, batch_size=64, lr=1e-2)
    with torch.no_grad():
        linear_error = float(((linear(x) - x) ** 2).mean())
    assert float(((ours - flat) ** 2).mean()) <= linear_error + 1e-7


def test_compare_reconstruction_reports_each_method():
    x = torch.rand(120, 1, 8, 8)
    info = dataclasses.replace(IMAGE_INFO, input_shape=(1, 8, 8))
    small = ae.compare_reconstruction(x[:100], x[100:], info, code_size=2, steps=5, examples=4)
    large = ae.compare_reconstruction(x[:100], x[100:], info, code_size=30, steps=5, examples=4)
    assert set(small.errors) == set(ae.METHODS)
    assert small.originals.shape == (4, 1, 8, 8)
    assert small.reconstructions["PCA"].shape == (4, 1, 8, 8)
    assert len(small.train_losses["nonlinear autoencoder"]) == 5
    assert large.errors["PCA"] < small.errors["PCA"]  # more components, less error
    with pytest.raises(ConfigError) as error:
        ae.compare_reconstruction(x[:100], x[100:], info, code_size=0)
    assert error.value.field == "code_size"


# ---------------------------------------------------------------- choosing jobs
class FakeJob:
    def __init__(self, job_id: str, arch: str, task: str) -> None:
        self.id, self.arch, self.task_name = job_id, arch, task

    def snapshot(self) -> dict:
        return {
            "id": self.id,
            "arch": self.arch,
            "dataset": "mnist",
            "state": "running",
            "step": 3,
            "task": self.task_name,
        }


def test_views_pick_only_the_jobs_they_can_show():
    jobs = [
        FakeJob("a", "cnn", "classify"),
        FakeJob("b", "mlp", "classify"),
        FakeJob("c", "vae", "vae"),
        FakeJob("d", "resnet", "classify"),
    ]
    assert [j.id for j in explore.suitable_jobs("features", jobs)] == ["a", "d"]
    assert [j.id for j in explore.suitable_jobs("latent", jobs)] == ["c"]
    assert explore.suitable_jobs("gan", jobs) == []
    # U-Nets denoise like autoencoders, but the Autoencoders view draws images: not unet1d.
    denoisers = [
        FakeJob("e", "unet2d", "denoise"),
        FakeJob("f", "unet1d", "denoise"),
        FakeJob("g", "conv_autoencoder", "reconstruct"),
    ]
    assert [j.id for j in explore.suitable_jobs("autoencoders", jobs + denoisers)] == ["e", "g"]
    assert explore.job_label(jobs[0]) == "a: cnn on mnist (running, step 3)"
    with pytest.raises(ConfigError):
        explore.view_spec("nowhere")


def test_starter_configs_name_registered_architectures():
    from deeparch.models import get_arch

    for view, spec in explore.VIEWS.items():
        arch = get_arch(spec.starter["arch"])
        assert explore.job_fits(view, arch.name, arch.task)


def test_smoothing_is_a_trailing_mean_and_curves_come_from_snapshots():
    values = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(explore.smooth(values, 2), [1.0, 2.0, 4.0, 6.0])
    steps, losses = explore.loss_curve({"losses": {"d_loss": [[1, 0.5], [2, 0.25]]}}, "d_loss")
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_array_equal(losses, [0.5, 0.25])
    assert len(explore.loss_curve({"losses": {}}, "g_loss")[0]) == 0


def test_smoothed_curves_name_each_logged_term_and_leave_out_the_rest():
    losses = {"d_loss": [[1, 1.0], [2, 3.0], [3, 5.0]], "g_loss": [[1, 2.0], [2, 0.0], [3, 1.0]]}
    snap = {"losses": losses}
    names = {"d_loss": "discriminator", "g_loss": "generator", "d_x": "D(x)"}
    curves, steps = explore.smoothed_curves(snap, names)
    assert list(curves) == ["discriminator", "generator"]  # d_x was never logged
    np.testing.assert_allclose(curves["discriminator"], [1.0, 2.0, 3.0])  # trailing means
    np.testing.assert_allclose(curves["generator"], [2.0, 1.0, 1.0])
    np.testing.assert_array_equal(steps, [1, 2, 3])
    assert explore.smoothed_curves({"losses": {}}, names) == ({}, None)


def test_bench_explore_reports_every_budgeted_view(capsys):
    from deeparch.bench import explore as bench_explore

    calls = []
    assert bench_explore.median_ms(lambda: calls.append(1), repeats=3, warmup=2) >= 0.0
    assert len(calls) == 5
    code = bench_explore.main(["--repeats", "1", "--sequence-steps", "0", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(bench_explore.BUDGETS_MS) <= set(report["median_ms"])
    assert code == (1 if report["over_budget"] else 0)


def test_mean_before_averages_the_window_ending_at_a_step():
    steps = np.arange(1, 101)
    values = steps * 0.01
    assert explore.mean_before(steps, values, 50, window=10) == pytest.approx(
        np.mean(np.arange(41, 51) * 0.01)
    )
    assert explore.mean_before(steps, values, 0) is None
    assert explore.mean_before(np.zeros(0), np.zeros(0), 10) is None


# ---- latent space fixes
def test_grid_range_follows_the_validation_means():
    # A conv_vae after two epochs: z1 over -3..2, z2 over 1..3.5 (the fixed -1.5..1.5 decoded
    # noise in its lower half). Percentiles 2 and 98, widened 10% each side, rounded outwards.
    z1, z2 = np.linspace(-3.0, 2.0, 101), np.linspace(1.0, 3.5, 101)
    assert latent.grid_range(np.c_[z1, z2]) == ((-3.4, 2.4), (0.8, 3.7))
    # All means squeezed into -0.2..0.6: at least 1 wide around their centre.
    squeezed = np.c_[np.linspace(-0.2, 0.6, 101), np.linspace(-0.2, 0.6, 101)]
    assert latent.grid_range(squeezed) == ((-0.3, 0.7), (-0.3, 0.7))
    # Beyond the range control's bound: shifted inside it, keeping its width.
    far = np.c_[np.linspace(9.0, 10.0, 101), np.linspace(-20.0, 20.0, 101)]
    assert latent.grid_range(far, bound=6.0) == ((4.8, 6.0), (-6.0, 6.0))
    with pytest.raises(ConfigError, match="means"):
        latent.grid_range(np.zeros((5, 3)))


def test_latent_grid_takes_a_z2_range_of_its_own(vae_2d):
    points = latent.latent_grid_points(-3.0, 1.0, 3, z2_range=(1.0, 4.0))
    np.testing.assert_allclose(points[0], [-3.0, 4.0])  # top left
    np.testing.assert_allclose(points[4], [-1.0, 2.5])
    np.testing.assert_allclose(points[8], [1.0, 1.0])  # bottom right
    with pytest.raises(ConfigError, match="z2 range"):
        latent.latent_grid_points(-1.0, 1.0, 3, z2_range=(2.0, 2.0))
    grid = latent.decode_grid(vae_2d, -3.0, 1.0, 3, (1.0, 4.0))
    corner = latent.decode(vae_2d, np.array([1.0, 1.0]))[0]
    np.testing.assert_allclose(grid[2, 2], corner, atol=1e-6)


def test_grid_figure_puts_each_cell_at_its_latent_point():
    import base64

    from deeparch.figures.explore import latent_grid_figure

    side, size = 4, 5
    values = np.arange(side * side, dtype=np.float32) / (side * side)
    grid = np.broadcast_to(values[:, None, None, None], (side * side, 1, size, size))
    grid = grid.reshape(side, side, 1, size, size)  # cell k filled with values[k]
    z1_range, z2_range = (-2.0, 1.0), (0.5, 3.5)
    figure = latent_grid_figure(grid, z1_range, z2_range, "grid")
    heatmap, layout = figure.data[0], figure.layout
    png = base64.b64decode(heatmap.source.removeprefix("data:image/png;base64,"))
    z = np.asarray(Image.open(io.BytesIO(png)))  # row 0 drawn at the bottom of an upward axis
    points = latent.latent_grid_points(*z1_range, side, z2_range)
    for k, (z1, z2) in enumerate(points):
        column = (z1 - heatmap.x0) / heatmap.dx  # pixel indices of the point
        row = (z2 - heatmap.y0) / heatmap.dy
        assert column == pytest.approx(k % side * (size + 1) + 2)  # the cell's centre pixel
        assert z[round(row), round(column)] == round(values[k] * 255)
    assert (layout.xaxis.title.text, layout.yaxis.title.text) == ("z1", "z2")
    assert layout.yaxis.autorange is True  # not reversed: z2 grows upwards, as on the scatter
    # Square pixels although the axes' spans differ.
    assert layout.yaxis.scaleratio == pytest.approx(heatmap.dx / heatmap.dy)


def test_scatter_gives_each_class_its_own_colour_and_outlines_the_grid():
    from deeparch.figures.explore import latent_scatter_figure

    labels = np.repeat(np.arange(10), 3)
    points = np.random.default_rng(0).normal(size=(30, 2))
    names = tuple(f"class {i}" for i in range(10))
    figure = latent_scatter_figure(
        points, labels, (0.0, 0.0), class_names=names, region=((-1.0, 2.0), (0.5, 3.0))
    )
    classes = figure.data[:10]
    assert [trace.name for trace in classes] == list(names)  # one legend entry per class
    colours = [trace.marker.color for trace in classes]
    assert len(set(colours)) == 10
    # Clearly distinct: every pair at least 60 apart in RGB (0-255 per channel).
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=float)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert distances[np.triu_indices(10, 1)].min() > 60
    (box,) = figure.layout.shapes
    assert (box.x0, box.x1, box.y0, box.y1) == (-1.0, 2.0, 0.5, 3.0)


def test_interpolation_figure_frames_both_originals_with_their_labels():
    from deeparch.figures.explore import interpolation_figure

    originals = np.stack([np.full((1, 4, 4), 0.1), np.full((1, 4, 4), 0.9)])
    strip = np.full((3, 1, 4, 4), 0.5)
    figure = interpolation_figure(originals, strip, [0.0, 0.5, 1.0], ("#5: 3", "#1: 7"))
    z = np.asarray(figure.data[0].z)
    assert z.shape == (4, 5 * 5 - 1)  # originals at both ends of the three decodes
    assert z[0, 0] == pytest.approx(0.1) and z[0, -1] == pytest.approx(0.9)
    assert z[0, 5] == pytest.approx(0.5)
    texts = [note.text for note in figure.layout.annotations]
    assert texts == ["#5: 3", "λ 0.00", "λ 0.50", "λ 1.00", "#1: 7"]
    assert len(figure.layout.shapes) == 2  # the two originals framed


def test_latent_space_heading_uses_the_right_article():
    headings = {d: latent.latent_space_heading(d) for d in (2, 4, 8, 11, 16, 18, 80, 128)}
    assert headings == {
        2: "The 2-D latent space",
        4: "A 4-D latent space",
        8: "An 8-D latent space",
        11: "An 11-D latent space",
        16: "A 16-D latent space",
        18: "An 18-D latent space",
        80: "An 80-D latent space",
        128: "A 128-D latent space",
    }


# ---- features and GAN fixes
def test_blank_or_transparent_picture_is_refused_with_a_reason():
    from deeparch.explore.images import UploadError

    transparent = np.zeros((40, 40, 4), dtype=np.uint8)  # every pixel alpha 0
    white = np.full((40, 40), 255, dtype=np.uint8)
    for name, array in (("empty.png", transparent), ("white.png", white)):
        picture = decode_upload(png_bytes(array), name)
        with pytest.raises(UploadError) as error:
            preprocess_image(picture, (1, 28, 28), name=name)
        assert str(error.value).startswith(f"{name} shows no digit: it is blank")
        assert error.value.field == "upload"
    # Photo noise on empty paper is no digit either; a faint but real stroke is.
    rng = np.random.default_rng(0)
    paper = (200 + rng.integers(-3, 4, size=(60, 60))).astype(np.uint8)
    with pytest.raises(UploadError):
        preprocess_image(decode_upload(png_bytes(paper)), (1, 28, 28))
    paper[20:40, 28:32] = 150
    assert float(preprocess_image(decode_upload(png_bytes(paper)), (1, 28, 28)).max()) > 0.9


def test_dark_digit_on_a_transparent_background_is_kept():
    # Drawing apps save black strokes on transparency: composited over black, the digit vanished.
    drawing = np.zeros((60, 60, 4), dtype=np.uint8)
    drawing[10:50, 26:34] = (0, 0, 0, 255)
    tensor = preprocess_image(decode_upload(png_bytes(drawing)), (1, 28, 28))[0].numpy()
    reference = np.zeros((60, 60), dtype=np.uint8)
    reference[10:50, 26:34] = 255
    expected = preprocess_image(Image.fromarray(reference), (1, 28, 28), invert="no")[0].numpy()
    np.testing.assert_allclose(tensor, expected, atol=1e-6)


def test_upload_messages_name_the_file_and_what_to_upload():
    with pytest.raises(ConfigError) as huge:
        decode_upload(b"\x89PNG" + bytes(6_800_000), "photo.png")
    assert str(huge.value) == (
        "photo.png is 6.8 MB; upload a PNG or JPEG of at most 5 MB "
        "(a photo of one digit needs far less: crop or shrink it)"
    )
    with pytest.raises(ConfigError) as bmp:
        decode_upload(png_bytes(np.zeros((8, 8), dtype=np.uint8), "BMP"), "scan.png")
    assert str(bmp.value).startswith("scan.png is a BMP file; upload a PNG or JPEG")
    with pytest.raises(ConfigError) as empty:
        decode_upload(b"", "nothing.jpg")
    assert str(empty.value) == "nothing.jpg is empty (0 bytes); upload a PNG or JPEG picture"
    for error in (huge, bmp, empty):
        assert "is not allowed" not in str(error.value) and error.value.field == "upload"


# ---- sequences fixes
def test_forget_bias_one_makes_the_lstm_keep_73_percent_of_its_cell_per_step():
    model = seq.build_sequence_model("lstm (forget bias 1)", seq.REMEMBER_FIRST_INFO)
    lstm = model.rnn
    zero_input = torch.zeros(1, 1, 1)
    zero_state = torch.zeros(1, 1, lstm.hidden_size)
    with torch.no_grad():  # one step from c = 1 and from c = 0: the difference is f_t * 1
        _, (_, kept) = lstm(zero_input, (zero_state, torch.ones_like(zero_state)))
        _, (_, fresh) = lstm(zero_input, (zero_state, zero_state))
    forget_gate = (kept - fresh).flatten()
    np.testing.assert_allclose(forget_gate, torch.sigmoid(torch.tensor(1.0)), rtol=1e-5)
    plain = seq.build_sequence_model("lstm", seq.REMEMBER_FIRST_INFO).rnn
    assert torch.equal(plain.weight_hh_l0, lstm.weight_hh_l0)  # only the bias differs


def test_remember_first_labels_are_the_sign_of_the_first_value():
    x, y = seq.remember_first_data(100, seed=3)
    assert x.shape == (100, 40, 1) and y.shape == (100,)
    assert torch.equal(y, (x[:, 0, 0] > 0).long())
    again, _ = seq.remember_first_data(100, seed=3)
    assert torch.equal(x, again)
    info, x_train, _, x_val, _ = seq.gradient_task(seq.REMEMBER_FIRST)
    assert info.input_shape == (40, 1) and info.num_classes == 2
    assert (len(x_train), len(x_val)) == seq.REMEMBER_FIRST_SIZES
    with pytest.raises(ConfigError) as error:
        seq.gradient_task("moons")
    assert str(error.value) == (
        "dataset='moons' is not allowed: one of remember_first, mnist1d, mnist_rows"
    )


def test_only_the_lstm_with_forget_bias_one_gets_the_gradient_to_t0():
    """The page's claim, measured: at init and after 300 steps of remember-the-first-value.

    Whether the forget-bias-one LSTM then also learns the task in 300 steps depends on the seed
    and the machine (here 69%, 55% and 52% for seeds 0-2; on CI's machine seed 0's gradient at
    t = 0 came out 180 times smaller than here), so only the gradient and the plain LSTM's
    chance accuracy are asserted; the page says so.
    """
    labels = ("rnn (tanh)", "lstm", "lstm (forget bias 1)")
    fresh = seq.compare_gradient_norms(seq.REMEMBER_FIRST, labels, 0)
    assert fresh.norms["lstm (forget bias 1)"][0] > 1e3 * fresh.norms["lstm"][0]
    assert fresh.norms["lstm"][0] < 1e-8 and fresh.norms["rnn (tanh)"][0] < 1e-8
    trained = seq.compare_gradient_norms(seq.REMEMBER_FIRST, labels[1:], 300)
    # seeds 0-3 at 300 and 600 steps: 8e3 to 3e9 times the plain LSTM's
    assert trained.norms["lstm (forget bias 1)"][0] > 1e3 * trained.norms["lstm"][0]
    assert trained.norms["lstm"][0] < 1e-8
    assert trained.val_accuracy["lstm"] < 0.56 and 0.45 < trained.chance < 0.55


# ---- slider start (lead)
def test_sliders_start_at_the_median_mean_on_the_slider_step():
    means = np.array([[0.0, 1.0], [0.2, 3.0], [1.0, 3.9]])
    np.testing.assert_allclose(latent.slider_start(means), [0.2, 3.0])
    np.testing.assert_allclose(latent.slider_start(np.array([[0.03, -0.07]])), [0.05, -0.05])
