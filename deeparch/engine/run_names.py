"""Names for runs shown side by side: each run named by the settings in which it differs from the
others ("lr 0.01" against "lr 0.001"), as a legend should read, and a loaded checkpoint marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deeparch.config import field_specs
from deeparch.errors import UnknownNameError
from deeparch.models import get_arch

MAX_NAMED_SETTINGS = 3  # a legend entry longer than this is not read; the table has the rest
LOADED_MARK = "(loaded)"


def run_settings(snap: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as flat name -> value: architecture, dataset, the architecture's fields
    (its defaults filled in, prefixed by nothing) and the training settings."""
    config = dict(snap.get("config") or {})
    arch = str(snap.get("arch") or config.get("arch"))
    settings: dict[str, Any] = {
        "arch": arch,
        "dataset": snap.get("dataset") or config.get("dataset"),
    }
    try:
        defaults = {spec.name: spec.default for spec in field_specs(get_arch(arch).config_cls)}
    except UnknownNameError:
        defaults = {}
    arch_values = {**defaults, **(config.pop("arch_config", None) or {})}
    settings.update({(arch, name): _comparable(v) for name, v in arch_values.items()})
    settings.update(
        {name: _comparable(v) for name, v in config.items() if name not in ("arch", "dataset")}
    )
    return settings


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _named(key: Any, value: Any) -> str:
    if key == "arch":
        return str(value)
    if key == "dataset":
        return f"on {value}"
    name = key[1] if isinstance(key, tuple) else key
    return f"{name} {_shown(value)}"


def differing_settings(snaps: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The setting names whose values are not the same in every run, in settings order.

    An architecture's own field (a (arch, name) key) differs only between runs of that
    architecture: a cnn has no hidden_sizes to differ from an mlp's.
    """
    all_settings = [run_settings(snap) for snap in snaps]
    keys = list(dict.fromkeys(key for settings in all_settings for key in settings))
    missing = "<missing>"
    differing = []
    for key in keys:
        values = [settings.get(key, missing) for settings in all_settings]
        if isinstance(key, tuple):
            values = [value for value in values if value is not missing]
        if len({repr(value) for value in values}) > 1:
            differing.append(key)
    return differing


def run_names(
    snaps: Sequence[Mapping[str, Any]], loaded: Sequence[bool] | None = None
) -> list[str]:
    """One name per run, from what differs between the runs; a lone run is "arch on dataset".

    Runs with the same settings are told apart by the end of their ids; a loaded checkpoint gets
    "(loaded)". An architecture's own fields are named only for the runs of that architecture.
    """
    loaded = list(loaded) if loaded is not None else [False] * len(snaps)
    differing = differing_settings(snaps)
    names = []
    for snap in snaps:
        settings = run_settings(snap)
        if not differing:
            parts = [f"{settings['arch']} on {settings['dataset']}"]
        else:
            parts = [_named(key, settings[key]) for key in differing if key in settings]
            if len(parts) > MAX_NAMED_SETTINGS:
                parts = [*parts[:MAX_NAMED_SETTINGS], f"+{len(parts) - MAX_NAMED_SETTINGS} more"]
        names.append(" · ".join(parts) or str(settings["arch"]))
    repeated = {name for name in names if names.count(name) > 1}
    for index, snap in enumerate(snaps):
        if names[index] in repeated:
            names[index] += f" · {str(snap.get('id'))[-6:]}"
        if loaded[index]:
            names[index] += f" {LOADED_MARK}"
    return names


def common_description(snaps: Sequence[Mapping[str, Any]]) -> str:
    """ "mlp on mnist" when every run trains that architecture on that dataset, else the part they
    share ("on mnist"), or ""."""
    archs = {snap.get("arch") for snap in snaps}
    datasets = {snap.get("dataset") for snap in snaps}
    parts = []
    if len(archs) == 1:
        parts.append(str(archs.pop()))
    if len(datasets) == 1:
        parts.append(f"on {datasets.pop()}")
    return " ".join(parts)
