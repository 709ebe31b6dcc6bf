"""The class's limits on one job: list lengths in the config, and max_epochs, max_depth, max_width
and max_parameters from the class settings, each refused with the field and the limit named."""

import pytest

from deeparch import share
from deeparch.config import DEFAULT_MAX_ITEMS, field_specs
from deeparch.engine.config import TrainConfig
from deeparch.engine.limits import check_job_limits
from deeparch.engine.manager import JobManager
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError
from deeparch.models import create_model, get_arch, list_archs
from deeparch.settings import ClassSettings

SIXTEEN_WIDE = ",".join(["4096"] * 16)


def list_fields():
    """(architecture, field) for every list of layer widths in the registry."""
    return [
        (arch, spec.name)
        for arch in list_archs()
        for spec in field_specs(get_arch(arch).config_cls)
        if spec.type is tuple
    ]


@pytest.mark.parametrize(("arch", "field"), list_fields())
def test_every_list_field_is_capped_in_length(arch, field):
    spec = next(s for s in field_specs(get_arch(arch).config_cls) if s.name == field)
    assert spec.max_items == DEFAULT_MAX_ITEMS
    widest = int(spec.max)
    too_long = ",".join([str(widest)] * (DEFAULT_MAX_ITEMS + 1))
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_dict({"arch": arch, "arch_config": {field: too_long}})
    assert str(raised.value) == (
        f"{field}={too_long!r} is not allowed: a comma-separated list of at most "
        f"{DEFAULT_MAX_ITEMS} integers, each from {int(spec.min)} to {widest} (9 given)"
    )


def test_a_link_with_sixteen_4096_wide_layers_is_refused_before_anything_is_built():
    shared = share.decode({"arch": "mlp", "hidden_sizes": SIXTEEN_WIDE})
    assert shared.arch_values == {}
    assert shared.problems == [
        f"hidden_sizes={SIXTEEN_WIDE!r} is not allowed: a comma-separated list of at most 8 "
        "integers, each from 1 to 4096 (16 given)"
    ]


def prepared_error(config: TrainConfig, monkeypatch, **environment) -> ConfigError:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    return raised.value


def parameter_count(arch: str, arch_config: dict | None = None) -> int:
    model, _ = create_model(arch, arch_config)
    return sum(p.numel() for p in model.parameters())


def test_a_model_over_max_parameters_is_refused_with_its_count(monkeypatch):
    widths = "4096,4096,4096"  # within every bound of the config; 36.8 million parameters
    config = TrainConfig.from_dict({"arch": "mlp", "arch_config": {"hidden_sizes": widths}})
    count = parameter_count("mlp", {"hidden_sizes": widths})
    assert count == 784 * 4096 + 4096 + 2 * (4096 * 4096 + 4096) + 4096 * 10 + 10
    error = prepared_error(config, monkeypatch)
    assert (error.field, error.value) == ("parameters", count)
    assert str(error) == (
        f"parameters={count} is not allowed: at most 30,000,000 for one job (the class setting "
        f"max_parameters, DEEPARCH_MAX_PARAMETERS) (mlp with these settings has {count:,} "
        "parameters; choose narrower or fewer layers (hidden_sizes))"
    )
    small = prepared_error(TrainConfig(arch="mlp"), monkeypatch, DEEPARCH_MAX_PARAMETERS="1000")
    assert (small.field, small.value) == ("parameters", parameter_count("mlp"))


@pytest.mark.parametrize(
    ("environment", "config", "message"),
    [
        (
            {"DEEPARCH_MAX_EPOCHS": "5"},
            {"epochs": 6},
            "epochs=6 is not allowed: at most 5 (the class setting max_epochs, "
            "DEEPARCH_MAX_EPOCHS)",
        ),
        (
            {"DEEPARCH_MAX_EPOCHS": "5"},
            {"epochs": 100, "max_steps": 311},
            "max_steps=311 is not allowed: at most 310 here (5 epochs of 62 steps; the class "
            "setting max_epochs, DEEPARCH_MAX_EPOCHS)",
        ),
        (
            {"DEEPARCH_MAX_DEPTH": "2"},
            {"arch_config": {"hidden_sizes": "64,32,16"}},
            "hidden_sizes='64,32,16' is not allowed: at most 2 entries (the class setting "
            "max_depth, DEEPARCH_MAX_DEPTH) (3 given)",
        ),
        (
            {"DEEPARCH_MAX_WIDTH": "256"},
            {"arch_config": {"hidden_sizes": "64,512"}},
            "hidden_sizes='64,512' is not allowed: entries of at most 256 (the class setting "
            "max_width, DEEPARCH_MAX_WIDTH)",
        ),
    ],
    ids=["epochs", "max_steps", "depth", "width"],
)
def test_the_class_caps_name_the_field_and_the_setting(monkeypatch, environment, config, message):
    train_config = TrainConfig.from_dict({"arch": "mlp", **config})
    assert str(prepared_error(train_config, monkeypatch, **environment)) == message


def test_a_run_within_the_caps_prepares(monkeypatch):
    monkeypatch.setenv("DEEPARCH_MAX_EPOCHS", "5")
    prepare(TrainConfig(arch="mlp", epochs=1000, max_steps=310), dry_run=False)


@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_at_its_defaults_is_within_the_default_caps(arch):
    spec = get_arch(arch)
    model, arch_config = create_model(arch)
    config = TrainConfig.from_dict({"arch": arch, **spec.train_defaults})
    check_job_limits(config, arch_config, model, 60_000, ClassSettings())
