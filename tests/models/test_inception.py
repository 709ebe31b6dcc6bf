"""Tests for the inception family: the module's branches, its cost, and the small GoogLeNet."""

import pytest
import torch
from torch import nn

from deeparch.data.catalogue import load_dataset
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.introspection.table import layer_table
from deeparch.models.inception import (
    GOOGLENET_WIDTHS,
    BranchWidths,
    InceptionModule,
    inception_feature_shapes,
)
from deeparch.models.registry import build_config, create_model, get_arch

torch.set_num_threads(1)  # two cores shared with other test runs

MNIST = DataInfo("mnist", "image", (1, 28, 28), 10)
DIGITS = DataInfo("digits", "image", (1, 8, 8), 10)
CIFAR = DataInfo("cifar10", "image", (3, 32, 32), 10)
INCEPTION_3A = BranchWidths(*GOOGLENET_WIDTHS[0])  # 64, 96, 128, 16, 32, 32 on 192 channels


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- the Inception module ------------------------------------------------------------------------


def test_module_output_channels_are_the_sum_of_its_branches():
    module = InceptionModule(192, INCEPTION_3A)
    x = torch.rand(2, 192, 7, 7)
    branches = [module.branch1x1, module.branch3x3, module.branch5x5, module.branch_pool]
    widths = [branch(x).shape[1] for branch in branches]
    assert widths == [64, 128, 32, 32]
    # Every branch keeps the 7x7 size, so they concatenate along channels: 64+128+32+32 = 256.
    assert all(branch(x).shape[2:] == (7, 7) for branch in branches)
    assert module(x).shape == (2, 256, 7, 7) and module.out_channels == sum(widths) == 256


def test_module_concatenates_the_branches_in_order():
    module = InceptionModule(8, BranchWidths(2, 3, 4, 1, 5, 6))
    x = torch.rand(1, 8, 5, 5)
    expected = torch.cat(
        [module.branch1x1(x), module.branch3x3(x), module.branch5x5(x), module.branch_pool(x)], 1
    )
    torch.testing.assert_close(module(x), expected)


def test_module_parameter_count_by_hand():
    # GoogLeNet's inception (3a) on 192 input channels; a conv has in*k*k*out weights + out biases.
    by_hand = {
        "branch1x1.conv": 192 * 1 * 1 * 64 + 64,  # 12,352
        "branch3x3.reduce": 192 * 1 * 1 * 96 + 96,  # 18,528
        "branch3x3.conv": 96 * 3 * 3 * 128 + 128,  # 110,720
        "branch5x5.reduce": 192 * 1 * 1 * 16 + 16,  # 3,088
        "branch5x5.conv": 16 * 5 * 5 * 32 + 32,  # 12,832
        "branch_pool.proj": 192 * 1 * 1 * 32 + 32,  # 6,176
    }
    module = InceptionModule(192, INCEPTION_3A)
    convs = {name: count(m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs == by_hand
    assert count(module) == sum(by_hand.values()) == 163_696
    # Without biases: 163,328 weights = 159.5 x 1024, the "159K" of the paper's Table 1 row (3a).
    weights = sum(p.numel() for name, p in module.named_parameters() if name.endswith("weight"))
    assert weights == 163_328 and round(weights / 1024) == 160


def test_module_mult_adds_match_the_paper_table():
    # Szegedy et al. 2015, Table 1: inception (3a) on a 28x28x192 map costs 128M ops.
    module = InceptionModule(192, INCEPTION_3A)
    table = layer_table(module, (192, 28, 28))
    conv_mult_adds = sum(row.mult_adds for row in table.rows if row.type == "Conv2d")
    assert conv_mult_adds == 28 * 28 * 163_328 == 128_049_152


def test_one_by_one_reductions_make_the_module_cheaper():
    reduced = InceptionModule(192, INCEPTION_3A, reductions=True)
    naive = InceptionModule(192, INCEPTION_3A, reductions=False)
    # The naive 3x3 and 5x5 convs read all 192 channels instead of 96 and 16.
    naive_by_hand = (192 * 64 + 64) + (192 * 9 * 128 + 128) + (192 * 25 * 32 + 32) + (192 * 32 + 32)
    assert count(naive) == naive_by_hand == 393_472
    assert count(reduced) == 163_696
    assert count(naive) / count(reduced) == pytest.approx(2.40, abs=0.01)
    # Both modules produce the same 256 channels: the saving costs no output width.
    x = torch.rand(1, 192, 4, 4)
    assert naive(x).shape == reduced(x).shape == (1, 256, 4, 4)
    # The 5x5 branch alone is where the reduction pays most: 153,632 -> 15,920 (9.7x).
    assert count(naive.branch5x5) == 153_632 and count(reduced.branch5x5) == 15_920


def test_whole_network_saving_from_reductions_at_defaults():
    reduced, _ = create_model("inception", info=MNIST)
    naive, _ = create_model("inception", {"reductions": False}, info=MNIST)
    assert count(reduced) == 59_122
    assert count(naive) == 187_266


# ---- the small GoogLeNet -------------------------------------------------------------------------


def test_default_network_count_is_the_sum_of_its_parts():
    model, config = create_model("inception", info=MNIST)
    children = dict(model.named_children())
    assert count(model) == sum(count(child) for child in children.values())
    assert count(children["stem"]) == 1 * 9 * 32 + 32
    # Module widths at width 0.25: (3a) 16+32+8+8 = 64, (3b) 32+48+24+16 = 120, (4a) 48+52+12+16.
    assert [children[f"inc{i}"].out_channels for i in (1, 2, 3)] == [64, 120, 128]
    assert count(children["output"]) == 128 * 10 + 10
    assert config.modules == 3 and set(children) >= {"pool1", "inc1", "pool3", "inc3"}


def test_parameter_names_read_as_the_paper_draws_them():
    model, _ = create_model("inception", info=MNIST)
    names = {name for name, _ in model.named_parameters()}
    for expected in (
        "stem.conv.weight",
        "inc1.branch1x1.conv.weight",
        "inc1.branch3x3.reduce.weight",
        "inc1.branch3x3.conv.weight",
        "inc2.branch5x5.reduce.weight",
        "inc3.branch_pool.proj.bias",
        "output.weight",
    ):
        assert expected in names
    naive, _ = create_model("inception", {"reductions": False}, info=MNIST)
    assert not any("reduce" in name for name, _ in naive.named_parameters())


@pytest.mark.parametrize(
    "overrides,info",
    [
        ({}, MNIST),
        ({}, DIGITS),
        ({}, CIFAR),
        ({"modules": 4, "width": 0.125, "stem_channels": 8}, MNIST),
        ({"modules": 5, "width": 0.125}, CIFAR),  # 32 -> 16 -> 8 -> 4 -> 2 -> 1
        ({"modules": 1, "reductions": False, "dropout": 0.0}, DIGITS),
    ],
)
def test_forward_shapes(overrides, info):
    model, _ = create_model("inception", overrides, info=info)
    x = torch.rand(3, *info.input_shape)
    assert model(x).shape == (3, info.num_classes)


@pytest.mark.parametrize("info", [MNIST, DIGITS, CIFAR])
def test_feature_shapes_are_computed_without_building(info):
    config = build_config("inception")
    predicted = dict(inception_feature_shapes(config, info))
    model, _ = create_model("inception", info=info)
    seen: dict[str, tuple] = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in predicted
    ]
    model(torch.rand(1, *info.input_shape))
    for hook in hooks:
        hook.remove()
    assert seen == predicted
    # 28 -> 14 -> 7 -> 3, 8 -> 4 -> 2 -> 1 and 32 -> 16 -> 8 -> 4 after the three pools.
    assert predicted["inc3"][1] == {28: 3, 8: 1, 32: 4}[info.input_shape[1]]


# ---- config errors name the field ----------------------------------------------------------------


def test_too_many_modules_for_an_8x8_input_names_the_field():
    create_model("inception", {"modules": 3}, info=DIGITS)  # 8 -> 4 -> 2 -> 1 fits
    with pytest.raises(ConfigError) as caught:
        create_model("inception", {"modules": 4}, info=DIGITS)
    error = caught.value
    assert error.field == "modules" and error.value == 4
    assert "modules=4" in str(error) and "at most 3" in str(error)
    assert "pool4" in str(error) and "1x1" in str(error)


def test_too_many_modules_for_mnist_names_the_field():
    create_model("inception", {"modules": 4, "width": 0.125}, info=MNIST)  # 28 -> ... -> 1
    with pytest.raises(ConfigError) as caught:
        create_model("inception", {"modules": 5}, info=MNIST)
    assert caught.value.field == "modules" and "at most 4" in str(caught.value)


@pytest.mark.parametrize(
    "field,value", [("width", 2.0), ("dropout", 0.95), ("stem_channels", 2), ("modules", 6)]
)
def test_out_of_range_values_name_the_field_and_value(field, value):
    with pytest.raises(ConfigError) as caught:
        create_model("inception", {field: value}, info=MNIST)
    assert caught.value.field == field and str(value) in str(caught.value)


def test_spec_is_registered_as_its_own_family():
    spec = get_arch("inception")
    assert (spec.family, spec.task, spec.default_dataset) == ("inception", "classify", "mnist")
    assert spec.data_kinds == ("image",) and spec.check is not None
    assert spec.summary.endswith("filter size itself.") and "1x1" in spec.description


# ---- it learns -----------------------------------------------------------------------------------


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    data = load_dataset("mnist")  # bundled, cached in-process
    x, y = data.x_train[:32], data.y_train[:32]
    model, _ = create_model("inception", {"dropout": 0.0}, info=data.info)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
