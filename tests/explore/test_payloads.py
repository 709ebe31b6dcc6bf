"""What the browser components receive: packs, the latent explorer, interpolation and GAN walks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeparch.data.info import EXAMPLE_INFO
from deeparch.errors import ConfigError
from deeparch.explore import latent
from deeparch.explore.payload import pack, to_uint8, unpack
from deeparch.models import create_model

IMAGE_INFO = EXAMPLE_INFO["image"]


def untrained(arch: str, **overrides):
    torch.manual_seed(0)  # a test's own model: no job shares this process's generator here
    model, _ = create_model(arch, overrides, IMAGE_INFO)
    return model.eval()


def some_means(dims: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0.5, 1.2, (n, dims)).astype(np.float32), rng.integers(0, 10, n)


def test_packs_round_trip_and_follow_one_another():
    grid = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    weights = np.linspace(-1, 1, 7, dtype=np.float32)
    shared = pack({"name": "job@5"}, {"grid": grid, "weights": weights})
    blob = pack({"start": [0.5, -1.0]}) + shared
    (session, none), (header, arrays) = unpack(blob)
    assert session == {"start": [0.5, -1.0]} and none == {}
    assert header == {"name": "job@5"}
    assert np.array_equal(arrays["grid"], grid) and np.array_equal(arrays["weights"], weights)
    assert blob.endswith(shared)  # the shared part is byte-for-byte the same


def test_pack_refuses_what_a_browser_cannot_read():
    with pytest.raises(ConfigError, match="float64"):
        pack({}, {"x": np.zeros(3)})
    with pytest.raises(ConfigError, match="a pack starting"):
        unpack(b"nope" + bytes(8))


def test_to_uint8_rounds_and_puts_channels_last():
    images = np.array([[[[0.0, 0.5, 1.0, 2.0]]]], dtype=np.float32)  # (1, 1, 1, 4)
    assert to_uint8(images).tolist() == [[[[0], [128], [255], [255]]]]


def mlp_forward(layers, z: np.ndarray) -> np.ndarray:
    """What common.js computes, in numpy."""
    for weight, bias, activation in layers:
        z = z @ weight.T + bias
        if activation == "relu":
            z = np.maximum(z, 0)
        elif activation == "sigmoid":
            z = 1 / (1 + np.exp(-z))
        elif activation == "tanh":
            z = np.tanh(z)
    return z


@pytest.mark.parametrize("latent_dim,hidden", [(2, (400,)), (20, (64, 32))])
def test_a_dense_vaes_decoder_goes_to_the_browser_as_its_layers(latent_dim, hidden):
    model = untrained("vae", latent_dim=latent_dim, hidden_sizes=hidden)
    layers = latent.mlp_layers(model)
    assert [act for _, _, act in layers] == ["relu"] * len(hidden) + ["sigmoid"]
    z = np.random.default_rng(1).normal(size=(5, latent_dim)).astype(np.float32)
    expected = latent.decode(model, z).reshape(5, -1)
    assert np.abs(mlp_forward(layers, z) - expected).max() < 1e-5


def test_a_convolutional_or_too_large_decoder_stays_on_the_server():
    assert latent.mlp_layers(untrained("conv_vae", latent_dim=2)) is None
    assert latent.mlp_layers(untrained("vae", latent_dim=2, hidden_sizes=(2048,))) is None


def test_explorer_payload_of_a_dense_vae_holds_its_weights_in_order():
    model = untrained("vae", latent_dim=2)
    means, labels = some_means(2)
    header, arrays = latent.explorer_payload(
        model, means, labels, IMAGE_INFO.class_names, (1, 28, 28), "j", 5
    )
    assert header["mode"] == "mlp" and "grid" not in arrays
    assert [(x["in"], x["out"]) for x in header["layers"]] == [(2, 400), (400, 784)]
    w1, b1 = model.decoder.fc1.weight.detach().numpy(), model.decoder.fc1.bias.detach().numpy()
    assert np.array_equal(arrays["weights"][: w1.size].reshape(w1.shape), w1)
    assert np.array_equal(arrays["weights"][w1.size : w1.size + 400], b1)
    assert arrays["weights"].size == 2 * 400 + 400 + 400 * 784 + 784
    assert header["view"] == [list(r) for r in latent.grid_range(means)]
    assert np.allclose(arrays["points"], means) and arrays["labels"].tolist() == labels.tolist()
    assert header["start"] == latent.slider_start(means).tolist()
    assert header["axis_titles"] == ["z1", "z2"] and len(header["colours"]) == 10


def test_explorer_grid_of_a_conv_vae_holds_the_decode_at_each_grid_point():
    model = untrained("conv_vae", latent_dim=2, capacity=4)
    means, labels = some_means(2)
    header, arrays = latent.explorer_payload(model, means, labels, (), (1, 28, 28), "j", 5, side=8)
    assert header["mode"] == "grid" and "weights" not in arrays
    (z1_low, z1_high), (z2_low, z2_high) = latent.grid_range(means)
    assert header["grid"] == {"side": 8, "z1": [z1_low, z1_high], "z2": [z2_low, z2_high]}
    grid = arrays["grid"]
    assert grid.shape == (64, 28, 28, 1) and grid.dtype == np.uint8
    # Row 0 is the top (z2 high), column 7 the right (z1 high): the picture reads like a plot.
    corner = np.array([[z1_high, z2_high]], dtype=np.float32)
    assert np.array_equal(grid[7], to_uint8(latent.decode(model, corner))[0])
    bottom_left = np.array([[z1_low, z2_low]], dtype=np.float32)
    assert np.array_equal(grid[7 * 8], to_uint8(latent.decode(model, bottom_left))[0])


def test_full_explorer_grid_is_about_three_megabytes():
    model = untrained("conv_vae", latent_dim=2, capacity=2)
    means, labels = some_means(2)
    header, arrays = latent.explorer_payload(model, means, labels, (), (1, 28, 28), "j", 5)
    assert header["grid"]["side"] == latent.EXPLORER_SIDE == 64
    assert len(pack(header, arrays)) == pytest.approx(64 * 64 * 784, rel=0.01)  # 3.2 MB


def test_a_larger_latent_explorer_scatters_principal_components():
    model = untrained("vae", latent_dim=6, hidden_sizes=(32,))
    means, labels = some_means(6)
    header, arrays = latent.explorer_payload(model, means, labels, (), (1, 28, 28), "j", 5)
    assert header["mode"] == "mlp" and header["axis_titles"][0].startswith("PC1 (")
    projection = latent.project_means(means)
    assert np.allclose(arrays["axes"], projection.axes) and arrays["means"].shape == (200, 6)
    assert (
        latent.explorer_payload(
            untrained("conv_vae", latent_dim=4, capacity=2),
            means[:, :4],
            labels,
            (),
            (1, 28, 28),
            "x",
            1,
        )
        is None
    )


def test_explorer_step_follows_snapshots_while_training():
    snapshot = {"step": 137, "snapshots": [{"step": 50}, {"step": 100}]}
    assert latent.explorer_step(snapshot, active=True) == 100
    assert latent.explorer_step(snapshot, active=False) == 137
    assert latent.explorer_step({"step": 7, "snapshots": []}, active=True) == 0


def test_interpolation_payload_decodes_every_hundredth_of_the_way():
    model = untrained("vae", latent_dim=2, hidden_sizes=(16,))
    images = torch.rand(2, 1, 28, 28)
    header, arrays = latent.interpolation_payload(model, images[0], images[1], "j", 5)
    assert header["name"] == "j@5" and len(header["lambdas"]) == 101
    assert header["lambdas"][:3] == [0.0, 0.01, 0.02] and header["sets"] == []
    frames = arrays["frames"]
    assert frames.shape == (1, 101, 28, 28, 1)
    means = latent.encode_means(model, images)
    halfway = latent.decode(model, (means[0] + means[1]) / 2)
    assert np.abs(frames[0, 50].astype(int) - to_uint8(halfway)[0]).max() <= 1
    assert np.array_equal(arrays["ends"], to_uint8(images.numpy()))


def test_gan_payload_has_every_class_walk_and_samples():
    model = untrained("cgan")
    header, arrays = latent.gan_payload(model, list(IMAGE_INFO.class_names), 0, 1, 2, "j", 5)
    assert header["sets"] == [str(i) for i in range(10)]
    assert arrays["frames"].shape == (10, 65, 28, 28, 1)
    assert arrays["samples"].shape == (10, 16, 28, 28, 1)
    three = latent.samples_of_class(model, 3, 16, 0)
    assert np.array_equal(arrays["samples"][3], to_uint8(three))
    walk = latent.noise_line(model, 1, 2, 65, 3)
    assert np.array_equal(arrays["frames"][3], to_uint8(walk))
    plain, plain_arrays = latent.gan_payload(untrained("mlp_gan"), [], 0, 1, 2, "j", 5)
    assert plain["sets"] == [] and plain_arrays["frames"].shape[0] == 1
    assert "samples" not in plain_arrays
    assert header["samples_title"] == "16 samples of class {set} (weights of step 5)"
