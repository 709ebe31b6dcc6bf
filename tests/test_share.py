"""Share links: every architecture's settings round-trip; what a link cannot use is said."""

from dataclasses import dataclass
from typing import Any

import pytest

from deeparch import share
from deeparch.config import FieldSpec, hp
from deeparch.engine.config import train_defaults, train_field_specs
from deeparch.errors import ConfigError
from deeparch.models import get_arch, list_archs, registry
from deeparch.models.registry import ArchSpec, compatible_datasets
from deeparch.share import SharedSettings, decode, encode

ARCHS = list_archs()


def changed(spec: FieldSpec, default: Any) -> Any:
    """A value of the field other than `default`, within its bounds."""
    if spec.choices is not None:
        return next(choice for choice in spec.choices if choice != default)
    if spec.type is bool:
        return not default
    if spec.type is int:
        return default + 1 if spec.max is None or default + 1 <= spec.max else default - 1
    if spec.type is float:
        high = spec.max if spec.max is not None else default + 2.0
        return (default + high) / 2  # a float like 0.5005 must come back to the last bit
    if spec.type is tuple:
        top = int(spec.max) if spec.max is not None else 10**6
        return tuple(v + 1 if v + 1 <= top else v - 1 for v in default) or (int(spec.min or 1),)
    return f"{default}-changed"


@pytest.mark.parametrize("arch", ARCHS)
def test_a_link_to_the_defaults_is_just_the_architecture_and_its_dataset(arch):
    spec = get_arch(arch)
    arch_defaults = {field.name: field.default for field in spec.fields()}
    expected = {"arch": arch, "dataset": spec.default_dataset}
    assert encode(arch, spec.default_dataset, arch_defaults, train_defaults(arch)) == expected
    assert encode(arch, None, {}, {}) == expected
    # The architecture's own training defaults count as defaults (lstm's 20 epochs, not 2).
    assert decode(expected) == SharedSettings(arch=arch, dataset=spec.default_dataset)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_changed_value_comes_back_typed(arch):
    spec = get_arch(arch)
    dataset = compatible_datasets(spec)[-1]
    # A field with one choice (rnn's cell, fixed by the name) cannot change.
    fields = [field for field in spec.fields() if field.choices is None or len(field.choices) > 1]
    arch_values = {field.name: changed(field, field.default) for field in fields}
    defaults = train_defaults(arch)
    train_values = {f.name: changed(f, defaults[f.name]) for f in train_field_specs()}
    params = encode(arch, dataset, arch_values, train_values)
    assert len(params) == 2 + len(arch_values) + len(train_values)  # nothing equals a default
    assert all(isinstance(text, str) for text in params.values())
    assert decode(params) == SharedSettings(arch, dataset, arch_values, train_values, [])


def test_a_tuple_travels_as_comma_separated_numbers():
    params = encode("mlp", "mnist", {"hidden_sizes": (256, 64)}, {"lr": 0.01})
    assert params == {"arch": "mlp", "dataset": "mnist", "hidden_sizes": "256,64", "lr": "0.01"}
    url = share.link("http://127.0.0.1:8501/train?job=7", params)
    assert url == "http://127.0.0.1:8501/train?arch=mlp&dataset=mnist&hidden_sizes=256,64&lr=0.01"
    assert decode(params).arch_values == {"hidden_sizes": (256, 64)}
    assert decode({**params, "hidden_sizes": "256, 64"}).arch_values == {"hidden_sizes": (256, 64)}


@dataclass(frozen=True)
class ClashConfig:
    seed: int = hp(1, "a seed of the architecture's own, unlike the training seed", min=0, max=99)
    width: int = hp(8, "units", min=1, max=64)


@pytest.fixture
def clashing_arch(monkeypatch):
    """An architecture with a field named like a training field (seed), registered for one test."""
    spec = ArchSpec(
        name="clash",
        task="classify",
        config_cls=ClashConfig,
        builder=lambda config, info: None,
        data_kinds=("image",),
        default_dataset="mnist",
        description="An architecture whose seed field shares its name with the training seed.",
    )
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    return spec.name


def test_a_training_field_named_like_an_architecture_field_travels_as_train_dot_name(
    clashing_arch,
):
    params = encode(clashing_arch, "mnist", {"seed": 3}, {"seed": 7, "lr": 0.5})
    assert params == {
        "arch": "clash",
        "dataset": "mnist",
        "seed": "3",
        "train.seed": "7",
        "lr": "0.5",
    }
    shared = decode(params)
    assert shared == SharedSettings("clash", "mnist", {"seed": 3}, {"seed": 7, "lr": 0.5}, [])
    only_training = encode(clashing_arch, "mnist", {}, {"seed": 7})
    assert only_training == {"arch": "clash", "dataset": "mnist", "train.seed": "7"}
    assert decode(only_training).arch_values == {}
    # train.<name> is understood for any training field, clash or not.
    assert decode({"arch": "mlp", "train.lr": "0.5"}).train_values == {"lr": 0.5}


KNOWN = ", ".join(ARCHS)


def test_an_unknown_or_misspelt_architecture_is_named_and_nothing_else_is_used():
    shared = decode({"arch": "nosuch", "lr": "0.01"})
    assert (shared.arch, shared.arch_values, shared.train_values) == (None, {}, {})
    assert shared.problems == [
        f"arch 'nosuch' is unknown; known: {KNOWN}; "
        "the link's other settings were not used (lr='0.01')"
    ]
    assert decode({"arch": "mpl"}).problems == [
        f"arch 'mpl' is unknown (did you mean 'mlp'?); known: {KNOWN}"
    ]
    assert decode({"epochs": "3"}).problems == [
        f"the link names no arch; add arch=<one of {KNOWN}>; "
        "the link's other settings were not used (epochs='3')"
    ]
    assert decode({}) == SharedSettings()


def test_a_dataset_the_architecture_cannot_use_is_named_with_those_it_can():
    lstm_datasets = "mnist1d, digits_tokens, mnist_rows, surnames, first_sign"
    shared = decode({"arch": "lstm", "dataset": "mnist", "epochs": "3"})
    assert (shared.arch, shared.dataset, shared.train_values) == ("lstm", None, {"epochs": 3})
    assert shared.problems == [
        "dataset 'mnist' does not suit lstm (lstm trains on sequence or tokens data); "
        f"lstm trains on: {lstm_datasets}"
    ]
    assert decode({"arch": "lstm", "dataset": "mnst1d"}).problems == [
        f"dataset 'mnst1d' is unknown (did you mean 'mnist1d'?); lstm trains on: {lstm_datasets}"
    ]


def test_unknown_names_and_bad_values_are_each_named_with_their_value():
    shared = decode(
        {
            "arch": "mlp",
            "hidden_sizes": "1 6",
            "activation": "swish",
            "lr": "100",
            "lr_rate": "3",
            "epochs": "5",
            "train.epochs": "6",
        }
    )
    assert shared.arch_values == {}
    assert shared.train_values == {"epochs": 5}  # the good value is still used
    assert shared.problems == [
        "hidden_sizes='1 6' is not allowed: a comma-separated list of at most 8 integers, each "
        "from 1 to "
        "4096",
        "activation='swish' is not allowed: one of 'relu', 'tanh', 'sigmoid', 'leaky_relu', "
        "'gelu', 'elu'",
        "lr='100' is not allowed: a number from 1e-06 to 10",
        "lr_rate='3' is not a setting: mlp has hidden_sizes, activation, dropout, batch_norm; "
        "training has optimizer, lr, momentum, batch_size, epochs, weight_decay, l1, grad_clip, "
        "seed, device, snapshot_every, max_steps, lr_schedule, lr_step_epochs, lr_gamma, "
        "early_stopping, train_subset, classes, augment, reconstruction_loss, freeze",
        "train.epochs='6' sets epochs a second time; the first value was used",
    ]
    params = {"hidden_sizes": "1 6", "activation": "swish", "lr": "100", "lr_rate": "3"}
    for (key, value), problem in zip(params.items(), shared.problems):
        assert problem.startswith(f"{key}={value!r}")  # every problem names its field and value


# ---- lesson and comparison links ------------------------------------------------------------


def test_a_lesson_link_names_a_known_lesson_or_says_why():
    known = ["counting_parameters", "residual_learning"]
    assert share.decode_lesson(share.encode_lesson("residual_learning"), known) == (
        "residual_learning", [],
    )  # fmt: skip
    name, problems = share.decode_lesson({"lesson": "residual_lerning"}, known)
    assert name is None and "did you mean 'residual_learning'" in problems[0]
    assert share.decode_lesson({}, known) == (None, [])


def test_a_comparison_link_carries_several_runs_and_back():
    runs = [
        {"arch": "resnet", "dataset": "mnist", "arch_config": {"blocks_per_stage": 4}, "epochs": 2},
        {"arch": "plainnet", "arch_config": {"blocks_per_stage": 4}, "lr": 0.01},
    ]
    params = share.encode_runs(runs)
    assert params["run1.arch"] == "resnet" and params["run2.blocks_per_stage"] == "4"
    decoded, problems = share.decode_runs({**params, "lesson": "x"})
    assert problems == []
    assert [(r.arch, r.arch_values, r.train_values) for r in decoded] == [
        ("resnet", {"blocks_per_stage": 4}, {"epochs": 2}),
        ("plainnet", {"blocks_per_stage": 4}, {"lr": 0.01}),
    ]


def test_a_comparison_link_names_the_run_of_each_problem():
    decoded, problems = share.decode_runs(
        {"run1.arch": "mlp", "run1.lr": "fast", "run2.arch": "nosuch", "run99.arch": "mlp"}
    )
    assert [r.arch for r in decoded] == ["mlp"]
    assert any(p.startswith("run 1: lr='fast'") for p in problems)
    assert any(p.startswith("run 2: arch 'nosuch' is unknown") for p in problems)
    assert any("run99.arch" in p for p in problems)
    with pytest.raises(ConfigError):
        share.encode_runs([])
