"""The class's limits on one job (deeparch.settings.ClassSettings), checked when a job is prepared.

One server trains for a whole class, so a teacher bounds what one student may start: how long it
trains (max_epochs), the lists of layer widths (max_depth entries, none wider than max_width) and
the size of the model (max_parameters: fifty 4096-wide layers would take about 17 GB). Each limit
is a ConfigError naming the field, the value, the limit and the setting that raises it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import nn

from deeparch.config import field_specs
from deeparch.errors import ConfigError
from deeparch.settings import ClassSettings, env_name, load_settings


def _setting(name: str) -> str:
    return f"the class setting {name}, {env_name(name)}"


def planned_epochs(config: Any, train_samples: int) -> tuple[int, int]:
    """(epochs the run will train, steps per epoch), counting max_steps as the loop does."""
    batch_size = min(int(config.batch_size), max(1, train_samples))
    per_epoch = max(1, train_samples // batch_size)
    steps = int(config.epochs) * per_epoch
    if int(config.max_steps):
        steps = min(steps, int(config.max_steps))
    return math.ceil(steps / per_epoch), per_epoch


def check_training_length(config: Any, train_samples: int, settings: ClassSettings) -> None:
    epochs, per_epoch = planned_epochs(config, train_samples)
    if epochs <= settings.max_epochs:
        return
    max_steps = int(config.max_steps)
    if max_steps and max_steps < int(config.epochs) * per_epoch:  # max_steps sets the length
        raise ConfigError(
            "max_steps",
            max_steps,
            f"at most {settings.max_epochs * per_epoch:,} here ({settings.max_epochs} epochs of "
            f"{per_epoch} steps; {_setting('max_epochs')})",
        )
    raise ConfigError(
        "epochs", int(config.epochs), f"at most {settings.max_epochs} ({_setting('max_epochs')})"
    )


def check_layer_lists(arch_config: Any, settings: ClassSettings) -> None:
    """Every list of layer widths in the architecture's config within max_depth and max_width."""
    if not dataclasses.is_dataclass(arch_config):
        return
    for spec in field_specs(type(arch_config)):
        if spec.type is not tuple:
            continue
        widths = tuple(getattr(arch_config, spec.name))
        text = ",".join(str(width) for width in widths)
        if len(widths) > settings.max_depth:
            raise ConfigError(
                spec.name,
                text,
                f"at most {settings.max_depth} entries ({_setting('max_depth')})",
                f"{len(widths)} given",
            )
        numbers = [w for w in widths if isinstance(w, int | float) and not isinstance(w, bool)]
        if numbers and max(numbers) > settings.max_width:
            raise ConfigError(
                spec.name,
                text,
                f"entries of at most {settings.max_width} ({_setting('max_width')})",
            )


def check_parameters(
    model: nn.Module, arch: str, arch_config: Any, settings: ClassSettings
) -> None:
    count = sum(p.numel() for p in model.parameters())
    if count <= settings.max_parameters:
        return
    lists = []
    if dataclasses.is_dataclass(arch_config):
        lists = [spec.name for spec in field_specs(type(arch_config)) if spec.type is tuple]
    smaller = f"narrower or fewer layers ({', '.join(lists)})" if lists else "smaller layers"
    raise ConfigError(
        "parameters",
        count,
        f"at most {settings.max_parameters:,} for one job ({_setting('max_parameters')})",
        f"{arch} with these settings has {count:,} parameters; choose {smaller}",
    )


def check_job_limits(
    config: Any,
    arch_config: Any,
    model: nn.Module,
    train_samples: int,
    settings: ClassSettings | None = None,
) -> None:
    """Raise ConfigError when a prepared job exceeds one of the class's limits."""
    settings = settings if settings is not None else load_settings()
    check_training_length(config, train_samples, settings)
    check_layer_lists(arch_config, settings)
    check_parameters(model, str(config.arch), arch_config, settings)
