"""Hyperparameter fields with bounds, so sliders, `--set k=v` and validation share one source.

A config is a plain dataclass (nanoGPT's GPTConfig); each field is declared with `hp(...)`, which
stores its bounds and a one-line reason in the field's metadata.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from deeparch.errors import ConfigError

# The most entries a list field (layer widths) takes unless its hp() says otherwise: a link with
# fifty 4096-wide layers would need about 17 GB, and no lesson needs more than a few layers.
DEFAULT_MAX_ITEMS = 8


@dataclass(frozen=True)
class FieldSpec:
    """What a UI or CLI needs to know about one hyperparameter."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple | None = None
    log: bool = False  # a slider on a log scale (learning rates, weights of penalties)
    max_items: int | None = None  # tuples: the most entries

    def allowed(self) -> str:
        """A phrase that says what values are allowed, for error messages and help texts."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        kind = {int: "an integer", float: "a number"}.get(self.type, self.type.__name__)
        if self.type is tuple:
            kind = "a comma-separated list of integers"
            if self.max_items is not None:
                kind = f"a comma-separated list of at most {self.max_items} integers"
            if self.min is not None and self.max is not None:
                return f"{kind}, each from {_fmt(self.min)} to {_fmt(self.max)}"
            return kind
        if self.min is not None and self.max is not None:
            return f"{kind} from {_fmt(self.min)} to {_fmt(self.max)}"
        if self.min is not None:
            return f"{kind} of at least {_fmt(self.min)}"
        if self.max is not None:
            return f"{kind} of at most {_fmt(self.max)}"
        return kind


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def hp(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    choices: tuple | list | None = None,
    log: bool = False,
    max_items: int | None = None,
) -> Any:
    """Declare a config field with its default, its reason and the bounds the UI needs.

    Tuples (layer widths) take `min`/`max` per element and `max_items` for their length
    (DEFAULT_MAX_ITEMS unless given).
    """
    if isinstance(default, tuple) and max_items is None:
        max_items = DEFAULT_MAX_ITEMS
    meta = {
        "help": help,
        "min": min,
        "max": max,
        "step": step,
        "choices": tuple(choices) if choices is not None else None,
        "log": log,
        "max_items": max_items,
    }
    return dataclasses.field(default=default, metadata=meta)


def field_specs(config_cls: type) -> list[FieldSpec]:
    """The FieldSpecs of a config dataclass, in declaration order."""
    specs = []
    for f in dataclasses.fields(config_cls):
        value_type = _field_type(f)
        specs.append(
            FieldSpec(
                name=f.name,
                type=value_type,
                default=f.default,
                help=f.metadata.get("help", ""),
                min=f.metadata.get("min"),
                max=f.metadata.get("max"),
                step=f.metadata.get("step"),
                choices=f.metadata.get("choices"),
                log=f.metadata.get("log", False),
                max_items=f.metadata.get("max_items"),
            )
        )
    return specs


def _field_type(f: dataclasses.Field) -> type:
    # Annotations are strings under `from __future__ import annotations`: the default tells.
    default = f.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, tuple):
        return tuple
    return str


def coerce(spec: FieldSpec, value: Any) -> Any:
    """Turn a value (maybe CLI or query-string text) into the field's type, or raise ConfigError."""
    try:
        if spec.type is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "1", "yes", "on"):
                    return True
                if lowered in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if spec.type is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                return int(value)
            return int(str(value).strip())
        if spec.type is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if spec.type is tuple:
            if isinstance(value, str):
                # Spaces may stand around a comma ("256, 64"), never inside a number: "1 6" is
                # refused rather than read as 16.
                parts = [p.strip() for p in value.strip().strip("()[]").split(",")]
                return tuple(int(p) for p in parts if p)
            return tuple(int(v) for v in value)
        if not isinstance(value, str):  # a text field given a number or a dict (a retyped file)
            raise TypeError(value)
        return value
    except (TypeError, ValueError):
        raise ConfigError(spec.name, value, spec.allowed()) from None


def check_value(spec: FieldSpec, value: Any) -> None:
    """Raise ConfigError when a typed value is outside the field's bounds or choices."""
    if spec.choices is not None:
        if value not in spec.choices:
            raise ConfigError(spec.name, value, spec.allowed())
        return
    items = value if spec.type is tuple else (value,)
    if spec.type is tuple and len(items) == 0 and spec.min is not None:
        raise ConfigError(spec.name, value, spec.allowed(), "give at least one value")
    if spec.type is tuple and spec.max_items is not None and len(items) > spec.max_items:
        raise ConfigError(spec.name, value, spec.allowed(), f"{len(items)} given")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if spec.min is not None and item < spec.min:
            raise ConfigError(spec.name, value, spec.allowed())
        if spec.max is not None and item > spec.max:
            raise ConfigError(spec.name, value, spec.allowed())


def check_count(field: str, value: int, low: int, high: int) -> int:
    """A whole-number command-line option (steps, repeats, threads) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, value, f"a whole number from {low:,} to {high:,}")
    return value


def make_config(config_cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """Build a validated config from defaults plus overrides (strings from a CLI are fine)."""
    overrides = dict(overrides or {})
    specs = {s.name: s for s in field_specs(config_cls)}
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise ConfigError(unknown[0], overrides[unknown[0]], "a known field: " + ", ".join(specs))
    values = {}
    for name, spec in specs.items():
        value = coerce(spec, overrides[name]) if name in overrides else spec.default
        try:
            check_value(spec, value)
        except ConfigError as error:
            # For a list quote what the student typed ("500,0"), not its parsed form ((500, 0)).
            given = overrides.get(name, value) if spec.type is tuple else value
            raise ConfigError(spec.name, given, error.allowed, error.hint) from None
        values[name] = value
    return config_cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def parse_assignments(assignments: list[str] | None) -> dict[str, str]:
    """Parse CLI `key=value` strings into a dict; raise ConfigError on a malformed one or on a
    key given twice (which of the two was meant cannot be guessed)."""
    result: dict[str, str] = {}
    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", item, "key=value, for example --set hidden_sizes=500,200")
        key = key.strip()
        if key in result:
            raise ConfigError(
                "--set",
                item,
                f"each key once; {key} is already set to {result[key]!r}",
                "drop one of the two",
            )
        result[key] = value.strip()
    return result
