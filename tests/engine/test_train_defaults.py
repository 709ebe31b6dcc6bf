"""The training settings each architecture starts from, on the Train page and in the CLI."""

import pytest

from deeparch.engine.config import IDENTITY_FIELDS, TrainConfig, train_defaults, train_field_specs
from deeparch.models import get_arch, list_archs


@pytest.mark.parametrize("arch", list_archs())
def test_train_defaults_are_train_configs_with_the_architectures_own_on_top(arch):
    generic = TrainConfig()
    defaults = train_defaults(arch)
    assert list(defaults) == [spec.name for spec in train_field_specs()]
    assert not set(defaults) & set(IDENTITY_FIELDS)  # what trains on what is not a default
    for name, value in defaults.items():
        assert value == get_arch(arch).train_defaults.get(name, getattr(generic, name)), name
    config = TrainConfig.from_dict({**defaults, "arch": arch})
    assert {name: getattr(config, name) for name in defaults} == defaults


def test_lstm_trains_longer_and_faster_than_the_generic_defaults():
    assert (TrainConfig().epochs, TrainConfig().lr) == (2, 1e-3)
    assert (train_defaults("lstm")["epochs"], train_defaults("lstm")["lr"]) == (20, 3e-3)
    assert train_defaults("lstm")["batch_size"] == 64  # the generic one, not overridden
