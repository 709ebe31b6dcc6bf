"""Config fields: coercion of CLI strings, bounds, and the messages a student reads."""

from dataclasses import dataclass

import pytest

from deeparch.config import config_to_dict, field_specs, hp, make_config, parse_assignments
from deeparch.errors import ConfigError


@dataclass(frozen=True)
class ToyConfig:
    width: int = hp(64, "units per layer", min=1, max=1024, step=1)
    rate: float = hp(0.1, "dropout rate", min=0.0, max=0.9)
    sizes: tuple = hp((500, 200), "hidden widths", min=1, max=4096)
    activation: str = hp("relu", "nonlinearity", choices=("relu", "tanh"))
    batch_norm: bool = hp(False, "normalise activations")


def test_field_specs_carry_types_bounds_and_reasons():
    specs = {s.name: s for s in field_specs(ToyConfig)}
    assert [s.name for s in field_specs(ToyConfig)] == [
        "width",
        "rate",
        "sizes",
        "activation",
        "batch_norm",
    ]
    assert specs["width"].type is int and specs["width"].min == 1 and specs["width"].max == 1024
    assert specs["rate"].type is float
    assert specs["sizes"].type is tuple
    assert specs["activation"].choices == ("relu", "tanh")
    assert specs["batch_norm"].type is bool
    assert specs["width"].help == "units per layer"


def test_make_config_coerces_strings_from_the_command_line():
    config = make_config(
        ToyConfig,
        {"width": "128", "rate": "0.5", "sizes": "300,100", "batch_norm": "true"},
    )
    assert config.width == 128
    assert config.rate == 0.5
    assert config.sizes == (300, 100)
    assert config.batch_norm is True
    assert config_to_dict(config) == {
        "width": 128,
        "rate": 0.5,
        "sizes": [300, 100],
        "activation": "relu",
        "batch_norm": True,
    }


@pytest.mark.parametrize(
    "overrides, field, allowed",
    [
        ({"width": 0}, "width", "from 1 to 1024"),
        ({"width": "wide"}, "width", "an integer"),
        ({"width": 2.5}, "width", "an integer"),
        ({"rate": 1.5}, "rate", "from 0 to 0.9"),
        ({"rate": "nan"}, "rate", "a number"),
        ({"sizes": (500, 0)}, "sizes", "each from 1 to 4096"),
        ({"activation": "swish"}, "activation", "one of 'relu', 'tanh'"),
        ({"batch_norm": "maybe"}, "batch_norm", "true or false"),
        ({"depth": 3}, "depth", "a known field: width, rate"),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(overrides, field, allowed):
    with pytest.raises(ConfigError) as caught:
        make_config(ToyConfig, overrides)
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{field}=")
    assert repr(next(iter(overrides.values()))) in message
    assert allowed in message


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = x,y "]) == {"a": "1", "b": "x,y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["oops"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("256,64", (256, 64)),
        ("256, 64", (256, 64)),
        (" 256 ,64 ", (256, 64)),
        ("(32, 16)", (32, 16)),
    ],
)
def test_a_list_may_have_spaces_around_its_commas(text, expected):
    assert make_config(ToyConfig, {"sizes": text}).sizes == expected


@pytest.mark.parametrize("text", ["1 6", "256, 6 4", "1\t6"])
def test_a_space_inside_a_number_is_refused_not_joined(text):
    # "1 6" used to become 16: the spaces were dropped before the text was split.
    with pytest.raises(ConfigError) as caught:
        make_config(ToyConfig, {"sizes": text})
    assert caught.value.field == "sizes"
    assert str(caught.value) == (
        f"sizes={text!r} is not allowed: a comma-separated list of at most 8 integers, each from "
        "1 to 4096"
    )
