"""The structure of a checkpoint's JSON description: every field deeparch reads, with its type, so
an edited or foreign description is refused with one message naming the field."""

from __future__ import annotations

import math
import reprlib
from pathlib import Path
from typing import Any

from deeparch.errors import DeeparchError

# The largest whole number a description may hold: JSON has no limit, but no real count comes
# near 2**53 (where floats stop counting exactly), and a 10**30 would be believed otherwise.
MAX_WHOLE = 2**53


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WHOLE


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _is_group_value(value: Any) -> bool:
    """A parameter group's setting: a finite number, true/false, null, or a list of them (betas)."""
    if isinstance(value, list):
        return all(_is_finite(item) for item in value)
    return value is None or isinstance(value, bool) or _is_finite(value)


# (test, words for a student) for each kind of value the description holds.
WHOLE = (_is_whole, "a whole number from 0 to 2^53")
NUMBER = (_is_number, "a number")
FINITE = (_is_finite, "a finite number")
METRIC = (lambda v: v is None or _is_number(v), "a number or null")
TEXT = (lambda v: isinstance(v, str), "a text")
OBJECT = (lambda v: isinstance(v, dict), "a JSON object")
LIST = (lambda v: isinstance(v, list), "a list")
POINT = (
    lambda v: isinstance(v, list) and len(v) == 2 and _is_whole(v[0]) and _is_number(v[1]),
    "a [step, value] pair",
)
GROUP_VALUE = (_is_group_value, "a finite number, true, false, null or a list of numbers")
# A state entry kept in the JSON rather than as a tensor (a step count, an empty momentum).
STATE_VALUE = (lambda v: v is None or _is_finite(v), "a finite number or null")

# The fields deeparch reads, in the order they are checked: (required, kind). A missing required
# field means another program wrote the file; an optional one may also be null.
DESCRIPTION_FIELDS = {
    "train_config": (True, OBJECT),
    "arch": (True, TEXT),
    "progress": (True, OBJECT),
    "history": (True, OBJECT),
    "dataset": (False, TEXT),
    "task": (False, TEXT),
    "state": (False, TEXT),
    "arch_config": (False, OBJECT),
    "final_metrics": (False, OBJECT),
    "optimizer": (False, OBJECT),
}
PROGRESS_FIELDS = {"step": WHOLE, "epoch": WHOLE, "epoch_step": WHOLE, "epoch_loss_sum": NUMBER}
# The train_config fields read before TrainConfig checks the rest (their types, for a message
# naming the file instead of a TypeError): (required, kind).
TRAIN_CONFIG_FIELDS = {
    "arch": (True, TEXT),
    "dataset": (False, TEXT),
    "arch_config": (False, OBJECT),
}


def _expect(value: Any, kind: tuple, field: str, source: Path) -> None:
    test, words = kind
    if not test(value):
        raise DeeparchError(
            f"{source} is damaged: {field} in its metadata is {reprlib.repr(value)}, not {words}"
        )


def _require(table: dict, name: str, kind: tuple, where: str, source: Path) -> None:
    if name not in table:
        raise DeeparchError(f"{source} is damaged: its metadata has no {where}.{name}")
    _expect(table[name], kind, f"{where}.{name}", source)


def _check_metrics(metrics: Any, field: str, source: Path) -> None:
    _expect(metrics, OBJECT, field, source)
    for name, value in metrics.items():
        _expect(value, METRIC, f"{field}.{name}", source)


def _check_increasing(steps: list, field: str, source: Path) -> None:
    """A history is written step by step: its steps only ever grow."""
    for position, (before, after) in enumerate(zip(steps, steps[1:]), start=1):
        if after <= before:
            raise DeeparchError(
                f"{source} is damaged: {field} in its metadata has step {after} after step "
                f"{before} (entry {position}), not steps in increasing order"
            )


def _check_optimizer(described: Any, field: str, source: Path) -> None:
    _expect(described, OBJECT, field, source)
    _require(described, "param_groups", LIST, field, source)
    numbered = 0  # PyTorch numbers an optimizer's parameters 0, 1, ... across its groups
    for index, group in enumerate(described["param_groups"]):
        where = f"{field}.param_groups[{index}]"
        _expect(group, OBJECT, where, source)
        _require(group, "params", LIST, where, source)
        for position, param in enumerate(group["params"]):
            _expect(param, WHOLE, f"{where}.params[{position}]", source)
        count = len(group["params"])
        expected = list(range(numbered, numbered + count))
        if group["params"] != expected:
            # PyTorch maps the saved state onto parameters through these numbers: another order
            # would hand one parameter's state to another of a different size.
            numbers = f"{numbered} to {numbered + count - 1}" if count > 1 else f"{numbered}"
            raise DeeparchError(
                f"{source} is damaged: {where}.params in its metadata is "
                f"{reprlib.repr(group['params'])}, not the parameter numbers {numbers} in order"
            )
        numbered += count
        for name, value in group.items():
            if name != "params":
                _expect(value, GROUP_VALUE, f"{where}.{name}", source)
    _require(described, "scalars", OBJECT, field, source)
    for index, entries in described["scalars"].items():
        if not index.isdigit():
            raise DeeparchError(
                f"{source} is damaged: {field}.scalars in its metadata has the key {index!r}, "
                "not a parameter index"
            )
        _expect(entries, OBJECT, f"{field}.scalars.{index}", source)
        for key, value in entries.items():
            _expect(value, STATE_VALUE, f"{field}.scalars.{index}.{key}", source)


def check_description(meta: Any, source: Path) -> None:
    """Raise DeeparchError naming `source` unless `meta` has every field deeparch reads, each of
    the type deeparch expects; after this, restoring a job cannot fail on a missing key or type."""
    if not isinstance(meta, dict):
        kind = "a list" if isinstance(meta, list) else reprlib.repr(meta)
        raise DeeparchError(
            f"{source} has metadata that is {kind}, not a JSON object: it was not written by "
            "deeparch"
        )
    for name, (required, kind) in DESCRIPTION_FIELDS.items():
        if meta.get(name) is None:
            if required:
                raise DeeparchError(
                    f"{source} has no {name} in its metadata: it was not written by deeparch"
                )
            continue
        _expect(meta[name], kind, name, source)
    for name, (required, kind) in TRAIN_CONFIG_FIELDS.items():
        value = meta["train_config"].get(name)
        if value is None:
            if required:
                raise DeeparchError(f"{source} is damaged: its metadata has no train_config.{name}")
            continue
        _expect(value, kind, f"train_config.{name}", source)
    saved_arch_config = meta["train_config"].get("arch_config") or {}
    if meta.get("arch_config") is not None and meta["arch_config"] != saved_arch_config:
        raise DeeparchError(
            f"{source} is damaged: arch_config in its metadata is "
            f"{reprlib.repr(meta['arch_config'])}, but train_config.arch_config is "
            f"{reprlib.repr(saved_arch_config)}; the two are written equal"
        )
    if meta["train_config"]["arch"] != meta["arch"]:
        raise DeeparchError(
            f"{source} is damaged: train_config.arch in its metadata is "
            f"{reprlib.repr(meta['train_config']['arch'])}, not {reprlib.repr(meta['arch'])}, "
            "the checkpoint's arch"
        )
    progress, history = meta["progress"], meta["history"]
    for name, kind in PROGRESS_FIELDS.items():
        _require(progress, name, kind, "progress", source)
    if progress.get("elapsed_s") is not None:
        _expect(progress["elapsed_s"], FINITE, "progress.elapsed_s", source)
    _require(history, "losses", OBJECT, "history", source)
    _require(history, "epoch_metrics", LIST, "history", source)
    for term, points in history["losses"].items():
        _expect(points, LIST, f"history.losses.{term}", source)
        for index, point in enumerate(points):
            _expect(point, POINT, f"history.losses.{term}[{index}]", source)
        _check_increasing([point[0] for point in points], f"history.losses.{term}", source)
    for index, metrics in enumerate(history["epoch_metrics"]):
        _check_metrics(metrics, f"history.epoch_metrics[{index}]", source)
    steps = [m.get("step") for m in history["epoch_metrics"] if m.get("step") is not None]
    _check_increasing(steps, "history.epoch_metrics", source)
    _check_metrics(meta.get("final_metrics") or {}, "final_metrics", source)
    for name, described in (meta.get("optimizer") or {}).items():
        _check_optimizer(described, f"optimizer.{name}", source)
