"""Tests for the sequence families (rnn, lstm, gru, qrnn, tcn) and the U-Net denoisers."""

from __future__ import annotations

import math

import pytest
import torch

from deeparch.config import field_specs
from deeparch.data.catalogue import load_dataset
from deeparch.data.info import EXAMPLE_INFO, DataInfo
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError
from deeparch.models.qrnn import fo_pool
from deeparch.models.registry import build_config, create_model, get_arch
from deeparch.models.tcn import receptive_field
from deeparch.tasks.reconstruct import corrupt

DIGITS10 = tuple(str(i) for i in range(10))
MNIST1D = DataInfo("mnist1d", "sequence", (40, 1), 10, DIGITS10)
MNIST_ROWS = DataInfo("mnist_rows", "sequence", (28, 28), 10, DIGITS10)
TOKENS = EXAMPLE_INFO["tokens"]  # digits_tokens: (64,), vocab 17
SHORT = DataInfo("short", "sequence", (5, 3), 4)
MNIST = DataInfo("mnist", "image", (1, 28, 28), 10, DIGITS10)
DIGITS = DataInfo("digits", "image", (1, 8, 8), 10, DIGITS10)
CIFAR = DataInfo("cifar10", "image", (3, 32, 32), 10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models


SEQUENCE_ARCHS = ("rnn", "lstm", "gru", "qrnn", "tcn")
GATE_BLOCKS = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent cell


def sample_input(info: DataInfo, batch: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if info.kind == "tokens":
        return torch.randint(0, info.vocab_size, (batch, *info.input_shape), generator=generator)
    return torch.randn(batch, *info.input_shape, generator=generator)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_config_error(excinfo: pytest.ExceptionInfo, field: str, value: object) -> None:
    assert excinfo.value.field == field
    assert excinfo.value.value == value
    assert field in str(excinfo.value) and str(value) in str(excinfo.value)


def expected_hidden_width(name: str, config) -> int:
    directions = 2 if getattr(config, "bidirectional", False) else 1
    return config.hidden_size * directions


# ---------------------------------------------------------------------------- sequence contract


@pytest.mark.parametrize("info", [MNIST1D, MNIST_ROWS, TOKENS], ids=lambda i: i.name)
@pytest.mark.parametrize("name", SEQUENCE_ARCHS)
def test_sequence_shapes_and_forward_equals_classify_embedded(name: str, info: DataInfo) -> None:
    torch.manual_seed(0)
    model, config = create_model(name, {"hidden_size": 12}, info=info)
    model.eval()
    x = sample_input(info)
    steps = info.input_shape[0]
    embedded = model.embed(x)
    width = config.embedding_dim if info.kind == "tokens" else info.input_shape[-1]
    assert embedded.shape == (3, steps, width) and embedded.dtype == torch.float32
    logits, hidden = model.classify_embedded(embedded, return_hidden=True)
    assert logits.shape == (3, 10)
    assert hidden.shape == (3, steps, expected_hidden_width(name, config))
    assert torch.equal(model(x), model.classify_embedded(embedded))
    assert torch.equal(logits, model.classify_embedded(embedded))


@pytest.mark.parametrize("name", SEQUENCE_ARCHS)
def test_embed_is_identity_for_floats_and_a_lookup_for_tokens(name: str) -> None:
    model, _ = create_model(name, info=MNIST1D)
    x = sample_input(MNIST1D)
    assert model.embed(x) is x
    assert model.embedding is None
    token_model, config = create_model(name, {"embedding_dim": 6}, info=TOKENS)
    tokens = sample_input(TOKENS)
    assert tuple(token_model.embedding.weight.shape) == (17, 6)
    assert torch.equal(token_model.embed(tokens), token_model.embedding.weight[tokens])


@pytest.mark.parametrize("name", SEQUENCE_ARCHS)
def test_gradient_reaches_every_step_and_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model, _ = create_model(name, {"hidden_size": 8, "readout": "mean"}, info=TOKENS)
    embedded = model.embed(sample_input(TOKENS)).detach().requires_grad_(True)
    logits = model.classify_embedded(embedded)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    per_step = embedded.grad.norm(dim=2).sum(dim=0)  # (T,)
    assert per_step.shape == (64,) and bool((per_step > 0).all())
    unused = [n for n, p in model.named_parameters() if n != "embedding.weight" and p.grad is None]
    assert unused == []


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "qrnn", "tcn"])
def test_unidirectional_models_are_causal(name: str) -> None:
    torch.manual_seed(0)
    model, _ = create_model(name, {"hidden_size": 10}, info=MNIST1D)
    model.eval()
    x = sample_input(MNIST1D).double()
    model.double()
    cut = 17
    perturbed = x.clone()
    perturbed[:, cut + 1 :] += 5.0
    _, hidden = model.classify_embedded(x, return_hidden=True)
    _, hidden_perturbed = model.classify_embedded(perturbed, return_hidden=True)
    assert torch.equal(hidden[:, : cut + 1], hidden_perturbed[:, : cut + 1])
    assert not torch.allclose(hidden[:, cut + 1], hidden_perturbed[:, cut + 1])


# ---------------------------------------------------------------------------- RNN / LSTM / GRU


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_parameter_count_matches_formula(
    cell: str, num_layers: int, bidirectional: bool
) -> None:
    hidden, inputs, classes = 7, 28, 10
    model, _ = create_model(
        cell,
        {"hidden_size": hidden, "num_layers": num_layers, "bidirectional": bidirectional},
        info=MNIST_ROWS,
    )
    directions = 2 if bidirectional else 1
    blocks = GATE_BLOCKS[cell]
    expected = 0
    for layer in range(num_layers):
        layer_input = inputs if layer == 0 else hidden * directions
        # W_ih (blocks*h x i) + W_hh (blocks*h x h) + two biases (blocks*h each), per direction
        expected += directions * blocks * (hidden * (layer_input + hidden) + 2 * hidden)
    expected += (hidden * directions + 1) * classes  # head
    assert count_params(model) == expected


def test_lstm_parameter_count_published_example() -> None:
    # 4 * (h * (i + h) + 2h) with i = 1, h = 64: 4 * (64 * 65 + 128) = 17,152; head 65 * 10 = 650.
    model, _ = create_model("lstm", {"hidden_size": 64}, info=MNIST1D)
    assert count_params(model.rnn) == 17_152
    assert count_params(model) == 17_802


def test_bidirectional_last_readout_uses_both_final_states() -> None:
    torch.manual_seed(0)
    model, _ = create_model(
        "lstm", {"hidden_size": 5, "bidirectional": True, "num_layers": 2}, info=MNIST1D
    )
    x = sample_input(MNIST1D)
    outputs, (final_hidden, _) = model.rnn(x)
    # final_hidden: (layers * directions, N, H); the top layer's forward and backward states.
    expected_features = torch.cat([final_hidden[-2], final_hidden[-1]], dim=1)
    assert torch.allclose(model.summarize(outputs), expected_features, atol=1e-6)
    assert torch.allclose(model(x), model.head(expected_features), atol=1e-6)


def test_recurrent_cell_is_fixed_by_name_and_nonlinearity_reaches_nn_rnn() -> None:
    for name, module_type in [
        ("rnn", torch.nn.RNN),
        ("lstm", torch.nn.LSTM),
        ("gru", torch.nn.GRU),
    ]:
        model, config = create_model(name, info=MNIST1D)
        assert config.cell == name and type(model.rnn) is module_type
        assert model.rnn.batch_first
    model, _ = create_model("rnn", {"nonlinearity": "relu"}, info=MNIST1D)
    assert model.rnn.nonlinearity == "relu"
    with pytest.raises(ConfigError) as excinfo:
        build_config("lstm", {"cell": "gru"})
    assert_config_error(excinfo, "cell", "gru")
    assert "nonlinearity" not in {s.name for s in field_specs(get_arch("lstm").config_cls)}


def test_dropout_needs_two_layers() -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model("gru", {"dropout": 0.3, "num_layers": 1}, info=MNIST1D)
    assert_config_error(excinfo, "dropout", 0.3)
    model, _ = create_model("gru", {"dropout": 0.3, "num_layers": 2}, info=MNIST1D)
    assert model.rnn.dropout == pytest.approx(0.3)


# ---------------------------------------------------------------------------- QRNN


def naive_fo_pool(z, f, o, c0=None):
    """Element-by-element Python loop over batch, hidden unit and time: the oracle."""
    batch, steps, width = z.shape
    h = [[[0.0] * width for _ in range(steps)] for _ in range(batch)]
    finals = [[0.0] * width for _ in range(batch)]
    for n in range(batch):
        for j in range(width):
            c = 0.0 if c0 is None else float(c0[n, j])
            for t in range(steps):
                c = float(f[n, t, j]) * c + (1.0 - float(f[n, t, j])) * float(z[n, t, j])
                h[n][t][j] = float(o[n, t, j]) * c
            finals[n][j] = c
    return torch.tensor(h, dtype=torch.float64), torch.tensor(finals, dtype=torch.float64)


@pytest.mark.parametrize("with_initial_cell", [False, True])
def test_fo_pool_matches_naive_loop(with_initial_cell: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    shape = (2, 9, 4)
    z = torch.tanh(torch.randn(shape, generator=generator, dtype=torch.float64))
    f = torch.sigmoid(torch.randn(shape, generator=generator, dtype=torch.float64))
    o = torch.sigmoid(torch.randn(shape, generator=generator, dtype=torch.float64))
    c0 = torch.randn(2, 4, generator=generator, dtype=torch.float64) if with_initial_cell else None
    hidden, final_cell = fo_pool(z, f, o, c0)
    expected_hidden, expected_final = naive_fo_pool(z, f, o, c0)
    assert hidden.shape == (2, 9, 4) and final_cell.shape == (2, 4)
    assert torch.allclose(hidden, expected_hidden, atol=1e-12)
    assert torch.allclose(final_cell, expected_final, atol=1e-12)


def test_qrnn_layer_gates_match_hand_computed_convolution() -> None:
    torch.manual_seed(0)
    model, _ = create_model("qrnn", {"hidden_size": 3, "num_layers": 1, "kernel_size": 2}, SHORT)
    model.double()
    layer = model.qrnn[0]
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    weight, bias = layer.gate_conv.weight, layer.gate_conv.bias  # (3H, F, k), (3H,)
    # Gate pre-activations at t: W[:, :, 0] x_(t-1) + W[:, :, 1] x_t + b, with x_(-1) = 0.
    previous = torch.cat([torch.zeros(2, 1, 3, dtype=torch.float64), x[:, :-1]], dim=1)
    pre = previous @ weight[:, :, 0].T + x @ weight[:, :, 1].T + bias  # (N, T, 3H)
    z, f, o = torch.tanh(pre[..., :3]), torch.sigmoid(pre[..., 3:6]), torch.sigmoid(pre[..., 6:])
    expected, _ = naive_fo_pool(z.detach(), f.detach(), o.detach())
    assert torch.allclose(layer(x), expected, atol=1e-10)


def test_qrnn_parameter_count_and_kernel_check() -> None:
    hidden, kernel = 6, 3
    model, _ = create_model(
        "qrnn", {"hidden_size": hidden, "num_layers": 2, "kernel_size": kernel}, info=MNIST_ROWS
    )
    conv = lambda i: 3 * hidden * (i * kernel + 1)  # noqa: E731  (3H filters of i*k weights + bias)
    assert count_params(model) == conv(28) + conv(hidden) + (hidden + 1) * 10
    with pytest.raises(ConfigError) as excinfo:
        create_model("qrnn", {"kernel_size": 9}, info=SHORT)
    assert_config_error(excinfo, "kernel_size", 9)
    assert "at most 5" in str(excinfo.value)


# ---------------------------------------------------------------------------- TCN


@pytest.mark.parametrize("kernel_size,num_layers", [(2, 3), (3, 2), (3, 4)])
def test_tcn_receptive_field_is_exact(kernel_size: int, num_layers: int) -> None:
    torch.manual_seed(0)
    overrides = {"kernel_size": kernel_size, "num_layers": num_layers, "residual": False}
    model, _ = create_model("tcn", overrides, info=MNIST1D)
    model.double()
    field = receptive_field(kernel_size, num_layers)
    assert field == 1 + (kernel_size - 1) * sum(2**i for i in range(num_layers))
    assert model.receptive_field == field
    x = sample_input(MNIST1D).double()
    last = 39
    _, hidden = model.classify_embedded(x, return_hidden=True)
    outside, inside = x.clone(), x.clone()
    outside[:, last - field] += 5.0  # one step beyond the receptive field of the last output
    inside[:, last - field + 1] += 5.0  # the oldest step inside it
    _, hidden_outside = model.classify_embedded(outside, return_hidden=True)
    _, hidden_inside = model.classify_embedded(inside, return_hidden=True)
    assert torch.equal(hidden[:, last], hidden_outside[:, last])
    assert not torch.allclose(hidden[:, last], hidden_inside[:, last])


@pytest.mark.parametrize("residual", [False, True])
def test_tcn_parameter_count(residual: bool) -> None:
    hidden, kernel, layers = 8, 3, 3
    overrides = {"hidden_size": hidden, "kernel_size": kernel, "num_layers": layers}
    model, _ = create_model("tcn", {**overrides, "residual": residual}, info=MNIST_ROWS)
    expected = (28 * kernel + 1) * hidden + (layers - 1) * (hidden * kernel + 1) * hidden
    if residual:
        expected += (28 + 1) * hidden  # the 1x1 projection 28 -> 8 channels on the first layer
    expected += (hidden + 1) * 10
    assert count_params(model) == expected
    assert [block.conv.dilation[0] for block in model.tcn] == [1, 2, 4]


def test_tcn_rejects_dilation_beyond_the_sequence() -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model("tcn", {"num_layers": 7}, info=MNIST1D)
    assert_config_error(excinfo, "num_layers", 7)
    assert "at most 6" in str(excinfo.value)
    create_model("tcn", {"num_layers": 6}, info=MNIST1D)  # dilation 32 < 40 is allowed


def test_sequence_models_reject_image_data() -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model("lstm", info=MNIST)
    assert_config_error(excinfo, "dataset", "mnist")


# ---------------------------------------------------------------------------- U-Nets


@pytest.mark.parametrize(
    "info,overrides",
    [
        (MNIST1D, {}),
        (MNIST1D, {"depth": 3, "kernel_size": 5}),
        (MNIST1D, {"depth": 1, "stride": 4, "kernel_size": 7}),
        (MNIST_ROWS, {"depth": 2, "kernel_size": 3}),
    ],
)
def test_unet1d_keeps_the_sequence_shape(info: DataInfo, overrides: dict) -> None:
    model, config = create_model("unet1d", overrides, info=info)
    x = sample_input(info)
    assert model(x).shape == x.shape
    assert model.noise_std == config.noise_std


@pytest.mark.parametrize(
    "info,overrides",
    [(MNIST, {}), (DIGITS, {"depth": 3}), (CIFAR, {"depth": 3, "kernel_size": 5})],
    ids=["mnist", "digits-depth3", "cifar-k5"],
)
def test_unet2d_keeps_the_image_shape(info: DataInfo, overrides: dict) -> None:
    model, config = create_model("unet2d", overrides, info=info)
    with torch.no_grad():
        clean = model(torch.rand(2, *info.input_shape))
    assert clean.shape == (2, *info.input_shape)
    assert model.output_activation == "none"  # see build_unet2d: a sigmoid collapsed to black
    assert model.noise_std == config.noise_std


@pytest.mark.parametrize("name,info,dims", [("unet1d", MNIST1D, 1), ("unet2d", DIGITS, 2)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_skip_connections_add_decoder_input_channels(name, info, dims, depth) -> None:
    base, kernel = 4, 4
    overrides = {"depth": depth, "base_channels": base, "kernel_size": kernel}
    with_skips, _ = create_model(name, {**overrides, "skip_connections": True}, info=info)
    without, _ = create_model(name, {**overrides, "skip_connections": False}, info=info)
    widths = [base * 2**level for level in range(depth)]
    # Each decoder level reads widths[level] extra channels from the skip; its transposed conv
    # maps to widths[level - 1] (level 0 keeps widths[0]), with kernel**dims taps per pair.
    extra = sum(widths[lv] * widths[max(lv - 1, 0)] * kernel**dims for lv in range(depth))
    assert count_params(with_skips) - count_params(without) == extra
    x = sample_input(info) if dims == 1 else torch.rand(2, *info.input_shape)
    assert without(x).shape == with_skips(x).shape == x.shape


def test_unet_skip_wiring_matches_a_hand_written_forward() -> None:
    torch.manual_seed(0)
    model, _ = create_model("unet1d", {"depth": 2, "base_channels": 4}, info=MNIST_ROWS)
    x = sample_input(MNIST_ROWS)  # (N, T=28, F=28)
    with torch.no_grad():
        signal = x.transpose(1, 2)  # (N, 28 channels, 28 steps)
        level1 = model.encoder[0](signal)  # (N, 4, 14)
        level2 = model.encoder[1](level1)  # (N, 8, 7)
        up = model.decoder[0](torch.cat([model.bottleneck(level2), level2], dim=1))  # (N, 4, 14)
        up = model.decoder[1](torch.cat([up, level1], dim=1))  # (N, 4, 28)
        expected = model.head(up).transpose(1, 2)  # (N, 28, 28)
        assert level1.shape == (3, 4, 14) and level2.shape == (3, 8, 7)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_unet_parameter_count_by_hand() -> None:
    model, _ = create_model("unet1d", {"depth": 2, "base_channels": 4}, info=MNIST1D)
    encoder = (1 * 4 * 4 + 4) + (4 * 8 * 4 + 8)
    bottleneck = 8 * 8 * 3 + 8
    decoder = (16 * 4 * 4 + 4) + (8 * 4 * 4 + 4)  # in 2*8 -> 4, then in 2*4 -> 4
    head = 4 * 1 + 1
    assert count_params(model) == encoder + bottleneck + decoder + head
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {
        "encoder",
        "bottleneck",
        "decoder",
        "head",
    }


@pytest.mark.parametrize(
    "name,info,overrides,field,value,allowed",
    [
        ("unet1d", MNIST1D, {"depth": 4}, "depth", 4, "at most 3"),
        ("unet1d", MNIST1D, {"stride": 3}, "stride", 3, "divides the length 40"),
        ("unet1d", MNIST1D, {"stride": 4, "kernel_size": 3}, "kernel_size", 3, "at least stride"),
        ("unet2d", MNIST, {"depth": 3}, "depth", 3, "at most 2"),
        ("unet2d", DIGITS, {"depth": 4}, "depth", 4, "at most 3"),
        ("unet2d", MNIST1D, {}, "dataset", "mnist1d", "image"),
        ("unet1d", MNIST, {}, "dataset", "mnist", "sequence"),
    ],
)
def test_unet_config_errors(name, info, overrides, field, value, allowed) -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model(name, overrides, info=info)
    assert_config_error(excinfo, field, value)
    assert allowed in str(excinfo.value)


def test_unet_learns_to_denoise_a_little() -> None:
    torch.manual_seed(0)
    model, config = create_model("unet1d", {"base_channels": 8}, info=MNIST1D)
    clean = torch.sin(torch.linspace(0, 6 * math.pi, 40)).repeat(16, 1).unsqueeze(-1)  # (16,40,1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        noisy = clean + config.noise_std * torch.randn_like(clean)
        loss = torch.nn.functional.mse_loss(model(noisy), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Predicting zeros costs mean(sin^2) = 0.5; after a few steps the model must beat that.
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < 0.25


@pytest.mark.parametrize("name", ["unet1d", "unet2d"])
def test_a_unet_at_its_defaults_denoises_its_default_dataset(name: str) -> None:
    """After 100 steps of the engine the output is closer to the clean validation data than the
    noisy input is. (With a sigmoid output unet2d once collapsed to black images, whose error,
    0.11, is more than twice the noisy input's.)"""
    spec = get_arch(name)
    config = TrainConfig(arch=name, max_steps=100, epochs=100, batch_size=32, snapshot_every=100)
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(300) and job.state == "finished", job.reason
    model = job.model_copy()
    clean = load_dataset(spec.default_dataset).x_val[:256]
    generator = torch.Generator().manual_seed(1)
    noisy = corrupt(clean, model.noise_std, generator, clamp=name == "unet2d")
    with torch.no_grad():
        denoised = model(noisy)
    noisy_error = torch.nn.functional.mse_loss(noisy, clean).item()
    denoised_error = torch.nn.functional.mse_loss(denoised, clean).item()
    assert denoised_error < 0.7 * noisy_error, (denoised_error, noisy_error)


# ---------------------------------------------------------------------------- registry entries


@pytest.mark.parametrize(
    "name,family,task,default_dataset",
    [
        ("rnn", "rnn", "sequence", "mnist_rows"),
        ("lstm", "rnn", "sequence", "mnist1d"),
        ("gru", "rnn", "sequence", "mnist1d"),
        ("qrnn", "qrnn", "sequence", "mnist1d"),
        ("tcn", "tcn", "sequence", "mnist1d"),
        ("unet1d", "unet", "denoise", "mnist1d"),
        ("unet2d", "unet", "denoise", "mnist"),
    ],
)
def test_registry_entries(name: str, family: str, task: str, default_dataset: str) -> None:
    spec = get_arch(name)
    assert (spec.family, spec.task, spec.default_dataset) == (family, task, default_dataset)
    assert len(spec.description) > 80 and spec.check is not None
    for field in field_specs(spec.config_cls):
        assert field.help, f"{name}.{field.name} has no help text"
