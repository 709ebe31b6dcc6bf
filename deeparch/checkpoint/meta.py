"""The structure of a checkpoint's JSON description: every field deeparch reads, with its type, so
an edited or foreign description is refused with one message naming the field."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from deeparch.errors import DeeparchError


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_group_value(value: Any) -> bool:
    """A parameter group's setting: a number, true/false, null, or a list of numbers (betas)."""
    if isinstance(value, list):
        return all(_is_number(item) for item in value)
    return value is None or isinstance(value, bool) or _is_number(value)


# (test, words for a student) for each kind of value the description holds.
WHOLE = (_is_whole, "a whole number 0 or more")
NUMBER = (_is_number, "a number")
METRIC = (lambda v: v is None or _is_number(v), "a number or null")
TEXT = (lambda v: isinstance(v, str), "a text")
OBJECT = (lambda v: isinstance(v, dict), "a JSON object")
LIST = (lambda v: isinstance(v, list), "a list")
POINT = (
    lambda v: isinstance(v, list) and len(v) == 2 and _is_whole(v[0]) and _is_number(v[1]),
    "a [step, value] pair",
)
GROUP_VALUE = (_is_group_value, "a number, true, false, null or a list of numbers")

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


def _check_optimizer(described: Any, field: str, source: Path) -> None:
    _expect(described, OBJECT, field, source)
    _require(described, "param_groups", LIST, field, source)
    for index, group in enumerate(described["param_groups"]):
        where = f"{field}.param_groups[{index}]"
        _expect(group, OBJECT, where, source)
        _require(group, "params", LIST, where, source)
        for position, param in enumerate(group["params"]):
            _expect(param, WHOLE, f"{where}.params[{position}]", source)
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
    progress, history = meta["progress"], meta["history"]
    for name, kind in PROGRESS_FIELDS.items():
        _require(progress, name, kind, "progress", source)
    if progress.get("elapsed_s") is not None:
        _expect(progress["elapsed_s"], NUMBER, "progress.elapsed_s", source)
    _require(history, "losses", OBJECT, "history", source)
    _require(history, "epoch_metrics", LIST, "history", source)
    for term, points in history["losses"].items():
        _expect(points, LIST, f"history.losses.{term}", source)
        for index, point in enumerate(points):
            _expect(point, POINT, f"history.losses.{term}[{index}]", source)
    for index, metrics in enumerate(history["epoch_metrics"]):
        _check_metrics(metrics, f"history.epoch_metrics[{index}]", source)
    _check_metrics(meta.get("final_metrics") or {}, "final_metrics", source)
    for name, described in (meta.get("optimizer") or {}).items():
        _check_optimizer(described, f"optimizer.{name}", source)
