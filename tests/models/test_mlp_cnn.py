"""Tests for the mlp, cnn and resnet families and the conv arithmetic they share."""

import itertools

import pytest
import torch
from torch import nn

from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.introspection.convmath import conv_output_size, pool_output_size, receptive_field
from deeparch.models.cnn import CNNConfig, cnn_feature_shapes
from deeparch.models.mlp import ACTIVATIONS
from deeparch.models.registry import build_config, create_model, get_arch

MNIST = DataInfo("mnist", "image", (1, 28, 28), 10)
DIGITS = DataInfo("digits", "image", (1, 8, 8), 10)
CIFAR = DataInfo("cifar10", "image", (3, 32, 32), 10)
MOONS = DataInfo("moons", "points", (2,), 2)
BLOBS = DataInfo("blobs", "points", (2,), 3)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- conv arithmetic against PyTorch's own layers ------------------------------------------------


def test_conv_output_size_matches_conv2d_on_many_combinations():
    checked = failed = 0
    for size, kernel, stride, padding, dilation in itertools.product(
        (3, 5, 8, 9), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)
    ):
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
        x = torch.zeros(1, 1, size, size + 1)
        expected = [
            conv_output_size(s, kernel, stride, padding, dilation) for s in (size, size + 1)
        ]
        if min(expected) <= 0:
            # The formula says the kernel does not fit; PyTorch must refuse too.
            with pytest.raises(RuntimeError):
                conv(x)
            failed += 1
            continue
        assert list(conv(x).shape[2:]) == expected, (size, kernel, stride, padding, dilation)
        checked += 1
    assert checked > 200 and failed > 0


def test_conv_output_size_matches_conv_transpose2d():
    checked = 0
    for size, kernel, stride, padding, dilation in itertools.product(
        (1, 4, 7), (1, 2, 3, 4), (1, 2, 3), (0, 1), (1, 2)
    ):
        # output_padding must be smaller than stride or dilation
        for output_padding in range(max(stride, dilation)):
            expected = conv_output_size(
                size,
                kernel,
                stride,
                padding,
                dilation,
                transposed=True,
                output_padding=output_padding,
            )
            if expected <= 0:
                continue
            deconv = nn.ConvTranspose2d(
                1, 1, kernel, stride, padding, output_padding=output_padding, dilation=dilation
            )
            assert deconv(torch.zeros(1, 1, size, size)).shape[-1] == expected
            checked += 1
    assert checked > 150


def test_conv_output_size_can_be_non_positive():
    assert conv_output_size(5, 7) == -1
    assert conv_output_size(2, 3, stride=2) == 0


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_maxpool2d(ceil_mode):
    for size, kernel, stride, padding in itertools.product(
        (4, 5, 7, 13), (2, 3), (1, 2, 3), (0, 1)
    ):
        pool = nn.MaxPool2d(kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
        expected = pool_output_size(size, kernel, stride, padding, ceil_mode=ceil_mode)
        assert pool(torch.zeros(1, 1, size, size)).shape[-1] == expected
    assert pool_output_size(13, 2) == 6  # stride defaults to the kernel


def _receptive_field_by_gradient(layers):
    """Independent oracle: how many inputs reach the middle output of a stack of 1-D convs."""
    convs = [nn.Conv1d(1, 1, k, stride=s, dilation=d, bias=False) for k, s, d in layers]
    for conv in convs:
        nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 200, requires_grad=True)
    y = nn.Sequential(*convs)(x)

    def inputs_reaching(index: int) -> torch.Tensor:
        (grad,) = torch.autograd.grad(y[0, 0, index], x, retain_graph=True)
        return grad[0, 0].nonzero().flatten()  # all-ones weights: no gradient cancels out

    middle = y.shape[-1] // 2
    first, second = inputs_reaching(middle), inputs_reaching(middle + 1)
    return int(first[-1] - first[0] + 1), int(second[0] - first[0])


@pytest.mark.parametrize(
    "layers",
    [
        [(3, 1, 1), (3, 1, 1)],
        [(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)],  # Chollet's convnet, one axis
        [(3, 1, 1), (3, 1, 2), (3, 1, 4)],  # a dilated (WaveNet-like) stack
        [(5, 2, 1), (3, 2, 1), (3, 1, 2)],
    ],
)
def test_receptive_field_matches_gradient_oracle(layers):
    assert receptive_field(layers) == _receptive_field_by_gradient(layers)


def test_receptive_field_accepts_pairs():
    assert receptive_field([(3, 1), (2, 2), (3, 1)]) == (1 + 2 + 1 + 2 * 2, 2)


# ---- the default models' parameter counts, against the published ones ----------------------------


def test_default_mlp_has_513810_parameters():
    model, config = create_model("mlp", info=MNIST)
    assert config.hidden_sizes == (500, 200, 100)
    widths = [784, 500, 200, 100, 10]
    per_layer = [i * o + o for i, o in zip(widths, widths[1:])]
    assert per_layer == [392_500, 100_200, 20_100, 1_010]
    assert count(model) == sum(per_layer) == 513_810
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert names == ["layers.fc1", "layers.fc2", "layers.fc3", "output"]


def test_seed_keras_convnet_has_93322_parameters_layer_by_layer():
    model, _ = create_model("cnn", info=MNIST)
    expected = {
        "features.conv1": 32 * (1 * 3 * 3) + 32,  # 320
        "features.conv2": 64 * (32 * 3 * 3) + 64,  # 18,496
        "features.conv3": 64 * (64 * 3 * 3) + 64,  # 36,928
        "classifier.fc1": (3 * 3 * 64) * 64 + 64,  # 36,928 after the 3x3x64 map is flattened
        "classifier.output": 64 * 10 + 10,  # 650
    }
    assert list(expected.values()) == [320, 18_496, 36_928, 36_928, 650]
    modules = dict(model.named_modules())
    for name, params in expected.items():
        assert count(modules[name]) == params, name
    assert count(model) == sum(expected.values()) == 93_322


def test_keras_convnet_feature_shapes_follow_chollets_summary():
    shapes = cnn_feature_shapes(build_config("cnn"), MNIST)
    assert shapes == [
        ("conv1", (32, 26, 26)),
        ("pool1", (32, 13, 13)),
        ("conv2", (64, 11, 11)),
        ("pool2", (64, 5, 5)),
        ("conv3", (64, 3, 3)),
    ]
    model, _ = create_model("cnn", info=MNIST)
    assert model.features(torch.rand(2, 1, 28, 28)).shape == (2, 64, 3, 3)


# ---- shape errors found before building ----------------------------------------------------------


def test_too_large_kernel_is_a_config_error_naming_the_field():
    config_overrides = {"kernel_size": 7, "channels": (8, 8, 8), "pooled_blocks": 2}
    with pytest.raises(ConfigError) as caught:
        create_model("cnn", config_overrides, info=MNIST)
    # 28 -> conv 22 -> pool 11 -> conv 5 -> pool 2: conv3's 7x7 kernel meets a 2x2 map
    error = caught.value
    assert error.field == "kernel_size" and error.value == 7
    message = str(error)
    assert "kernel_size" in message and "7" in message and "2x2" in message
    assert "after pool2" in message
    assert "keep at most 2 entries in channels (conv3 is the one that does not fit)" in message


def test_kernel_larger_than_the_input_image():
    with pytest.raises(ConfigError) as caught:
        create_model("cnn", {"kernel_size": 9}, info=DIGITS)
    assert caught.value.field == "kernel_size"
    assert "8x8" in str(caught.value) and "digits input" in str(caught.value)
    # the same kernel fits once padding makes the map large enough
    model, _ = create_model("cnn", {"kernel_size": 9, "padding": 4, "pooled_blocks": 0}, DIGITS)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_too_many_pools_is_a_config_error_naming_the_field():
    overrides = {"channels": (8, 8, 8, 8), "pooled_blocks": 4, "padding": 1, "pool_size": 4}
    with pytest.raises(ConfigError) as caught:
        create_model("cnn", overrides, info=MNIST)
    # 28 -> pool 7 -> pool 1 -> conv3 keeps 1x1 -> a 4x4 pool would leave 0 pixels
    assert caught.value.field == "pooled_blocks" and caught.value.value == 4
    assert "pooled_blocks=4" in str(caught.value) and "0 pixels" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        create_model("cnn", {"pooled_blocks": 5}, info=MNIST)
    assert caught.value.field == "pooled_blocks" and "at most 3" in str(caught.value)


def test_logistic_regression_rejects_more_than_two_classes():
    model, _ = create_model("logistic_regression", info=MOONS)
    assert model(torch.rand(5, 2)).shape == (5, 1)
    assert count(model) == 3
    with pytest.raises(ConfigError) as caught:
        create_model("logistic_regression", info=BLOBS)
    assert caught.value.field == "dataset" and "blobs" in str(caught.value)
    assert "3 classes" in str(caught.value)


def test_softmax_regression_is_one_linear_layer():
    model, _ = create_model("softmax_regression", info=MNIST)
    assert count(model) == 784 * 10 + 10
    no_bias, _ = create_model("softmax_regression", {"bias": False}, info=MOONS)
    assert count(no_bias) == 2 * 2


# ---- equivalences and relations ------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_conv1d_computes_the_same_function_as_the_mlp(batch_norm):
    overrides = {"hidden_sizes": (32, 16), "activation": "tanh", "batch_norm": batch_norm}
    mlp, _ = create_model("mlp", overrides, info=MNIST)
    conv, _ = create_model("mlp_conv1d", overrides, info=MNIST)
    assert count(mlp) == count(conv)
    mlp.train()
    mlp(torch.rand(16, 1, 28, 28))  # move batch-norm running statistics away from their start
    conv.load_linear_weights(mlp)
    mlp.eval()
    conv.eval()
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(conv(x), mlp(x), rtol=1e-5, atol=1e-5)
    assert isinstance(dict(conv.named_modules())["layers.conv1"], nn.Conv1d)


def test_mlp_conv1d_default_matches_the_mlps_count():
    model, _ = create_model("mlp_conv1d", info=MNIST)
    assert count(model) == 513_810


def _convs(model: nn.Module, kernel: int) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] == kernel]


@pytest.mark.parametrize(
    "overrides", [{}, {"stages": 2, "blocks_per_stage": 3, "base_channels": 8}]
)
def test_resnet_and_plainnet_differ_exactly_by_the_projections(overrides):
    resnet, config = create_model("resnet", overrides, info=CIFAR)
    plain, _ = create_model("plainnet", overrides, info=CIFAR)
    assert (
        len(_convs(resnet, 3))
        == len(_convs(plain, 3))
        == 1 + 2 * config.stages * config.blocks_per_stage  # stem + two per block
    )
    assert _convs(plain, 1) == []
    # One projection (1x1 conv without bias + batch norm) where each later stage begins.
    projections = [
        (config.base_channels * 2 ** (s - 2), config.base_channels * 2 ** (s - 1))
        for s in range(2, config.stages + 1)
    ]
    projection_params = sum(c_in * c_out + 2 * c_out for c_in, c_out in projections)
    assert len(_convs(resnet, 1)) == config.stages - 1
    assert count(resnet) - count(plain) == projection_params
    shortcut_params = sum(count(m) for n, m in resnet.named_modules() if n.endswith("shortcut"))
    assert shortcut_params == projection_params


def test_residual_block_adds_its_input():
    resnet, _ = create_model(
        "resnet", {"stages": 1, "blocks_per_stage": 1, "base_channels": 16}, info=MNIST
    )
    block = resnet.stages.stage1.block1
    nn.init.zeros_(block.bn2.weight)  # the conv branch now outputs 0 (bn2 bias starts at 0)
    x = torch.rand(2, 16, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_resnet_rejects_halving_a_one_pixel_map():
    tiny = DataInfo("tiny", "image", (1, 2, 2), 10)
    create_model("resnet", {"stages": 2}, info=tiny)  # 2x2 -> 1x1 is fine
    with pytest.raises(ConfigError) as caught:
        create_model("resnet", {"stages": 3}, info=tiny)
    assert caught.value.field == "stages" and "stage3" in str(caught.value)


def test_alexnet_rejects_images_too_small_for_three_pools():
    tiny = DataInfo("tiny", "image", (1, 4, 4), 10)
    with pytest.raises(ConfigError) as caught:
        create_model("alexnet", info=tiny)
    assert caught.value.field == "dataset" and "4x4" in str(caught.value)


# ---- forward shapes on the three image shapes ----------------------------------------------------

CASES = [
    ("mlp", {}, MNIST),
    ("mlp", {}, DIGITS),
    ("mlp", {"activation": "gelu", "dropout": 0.2, "batch_norm": True}, CIFAR),
    ("mlp", {}, MOONS),
    ("softmax_regression", {}, DIGITS),
    ("mlp_conv1d", {}, CIFAR),
    ("cnn", {}, MNIST),
    ("cnn", {}, CIFAR),
    ("cnn", {"padding": 1}, DIGITS),
    ("cnn", {"channels": (16, 32), "pooled_blocks": 1}, DIGITS),  # 8 -> 6 -> 3 -> 1
    ("cnn", {"pooling": "avg", "batch_norm": True, "dense_width": 0, "dropout": 0.5}, CIFAR),
    ("cnn", {"channels": (4, 8), "stride": 2, "padding": 1, "pooling": "none"}, MNIST),
    ("alexnet", {}, MNIST),
    ("alexnet", {"local_response_norm": True}, CIFAR),
    ("alexnet", {"width": 0.125}, DIGITS),
    ("resnet", {}, MNIST),
    ("resnet", {}, DIGITS),
    ("resnet", {"stages": 4, "base_channels": 4}, CIFAR),
    ("plainnet", {}, CIFAR),
]


@pytest.mark.parametrize("name,overrides,info", CASES)
def test_forward_shapes(name, overrides, info):
    model, _ = create_model(name, overrides, info=info)
    x = torch.rand(3, *info.input_shape)
    assert model(x).shape == (3, info.num_classes)


def test_every_family_arch_is_registered_with_a_check():
    for name in (
        "mlp",
        "logistic_regression",
        "softmax_regression",
        "mlp_conv1d",
        "cnn",
        "alexnet",
        "resnet",
        "plainnet",
    ):
        spec = get_arch(name)
        assert spec.check is not None and spec.description and spec.task == "classify"


def test_activation_map_builds_each_activation():
    model, _ = create_model("cnn", {"activation": "elu"}, info=MNIST)
    assert isinstance(model.features.act1, nn.ELU)
    for name, make in ACTIVATIONS.items():
        assert isinstance(make(), nn.Module), name
    assert CNNConfig().activation in ACTIVATIONS
