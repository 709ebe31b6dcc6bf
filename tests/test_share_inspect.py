"""Inspect's links: every architecture's settings round-trip without training values."""

import pytest

from deeparch.models import get_arch, list_archs
from deeparch.share import decode_inspect, encode_inspect
from tests.test_share import changed


@pytest.mark.parametrize("arch", list_archs())
def test_every_field_changed_comes_back_from_an_inspect_link(arch):
    spec = get_arch(arch)
    # A choice of one value (a cell type fixed by the architecture) cannot change.
    fields = [f for f in spec.fields() if f.choices is None or len(f.choices) > 1]
    values = {field.name: changed(field, field.default) for field in fields}
    shared = decode_inspect(encode_inspect(arch, spec.default_dataset, values))
    assert (shared.arch, shared.dataset, shared.problems) == (arch, spec.default_dataset, [])
    assert shared.arch_values == values and shared.train_values == {}


def test_a_training_value_in_an_inspect_link_is_said_to_be_unused():
    shared = decode_inspect({"arch": "cnn", "epochs": "3", "kernel_size": "5"})
    assert shared.arch_values == {"kernel_size": 5} and shared.train_values == {}
    assert shared.problems == [
        "epochs='3' is a training setting: Inspect shows the architecture alone (open the Train "
        "page to use it)"
    ]


def test_a_torchvision_link_round_trips_and_checks_its_values():
    params = encode_inspect("torchvision:resnet18", None, {"num_classes": 10})
    assert params == {"arch": "torchvision:resnet18", "num_classes": "10"}
    shared = decode_inspect(params)
    assert (shared.arch, shared.arch_values, shared.problems) == (
        "torchvision:resnet18",
        {"num_classes": 10},
        [],
    )
    assert encode_inspect("torchvision:resnet18", None, {"num_classes": 1000}) == {
        "arch": "torchvision:resnet18"
    }
    bad = decode_inspect({"arch": "torchvision:resnet18", "num_classes": "0", "depth": "3"})
    assert bad.problems == [
        "num_classes='0' is not allowed: an integer from 1 to 100000",
        "depth='3' is not a setting of a torchvision model: only num_classes is",
    ]
    unknown = decode_inspect({"arch": "torchvision:resnet19"})
    assert unknown.arch is None
    assert unknown.problems[0].startswith("torchvision model 'resnet19' is unknown (did you mean")
