"""Layer tables and traced graphs computed once per process and shared by every caller.

Thirty students opening Inspect on the same architecture ask for the same table: it is built once
(a model, one forward pass, and for the graph a torch.fx trace: 0.65 s of CPU for cnn's first
graph in a process, 0.08 s for the next), and every caller gets the same object, to read only.
Two callers asking for one key at once wait for one computation (a lock per key), so the server's
warm-up (deeparch.warmup) and a student's first Inspect tab never build it twice. Errors are not
kept: the next caller gets the same message computed again. At most `KEPT` results per kind stay,
the least recently used leaving first (a table is a few hundred rows).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from deeparch.introspection.graph import summarize_graph
from deeparch.introspection.model_graph import ModelGraph
from deeparch.introspection.table import LayerTable, summarize
from deeparch.models.registry import get_arch, list_archs

KEPT = 128
Result = TypeVar("Result")


class SharedResults(Generic[Result]):
    """A bounded, thread-safe memo of one function: each key computed once while it is kept."""

    def __init__(self, compute: Callable[..., Result], kept: int = KEPT) -> None:
        self.compute = compute
        self.kept = kept
        self.computed = 0  # how many times compute ran (the tests' witness)
        self._results: OrderedDict[Hashable, Result] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, *args: Any) -> Result:
        with self._guard:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one computation per key; a second caller waits for it
            with self._guard:
                if key in self._results:
                    return self._results[key]
            try:
                result = self.compute(*args)
            finally:
                with self._guard:
                    self._key_locks.pop(key, None)
            with self._guard:
                self.computed += 1
                self._results[key] = result
                while len(self._results) > self.kept:
                    self._results.popitem(last=False)
            return result

    def clear(self) -> None:
        with self._guard:
            self._results.clear()


def settings_key(arch: str, overrides: Mapping[str, Any] | None, dataset: str | None) -> tuple:
    """One key per model: values equal to their field's default and the default dataset named
    or not give the same key (the warm-up names none; Inspect's form sends every field)."""
    overrides = dict(overrides or {})
    if arch in list_archs():
        spec = get_arch(arch)
        defaults = {field.name: field.default for field in spec.fields()}
        overrides = {k: v for k, v in overrides.items() if k not in defaults or v != defaults[k]}
        dataset = dataset or spec.default_dataset
    # repr keeps every value exact (a float's repr round-trips) and needs nothing hashable.
    return (arch, repr(sorted(overrides.items())), dataset)


_tables: SharedResults[LayerTable] = SharedResults(summarize)
_graphs: SharedResults[ModelGraph] = SharedResults(summarize_graph)


def shared_table(
    arch: str, overrides: Mapping[str, Any] | None = None, dataset: str | None = None,
    freeze: str = "",
) -> LayerTable:  # fmt: skip
    """summarize(arch, overrides, dataset, freeze), once per process for each setting."""
    key = (*settings_key(arch, overrides, dataset), freeze)
    return _tables.get(key, arch, dict(overrides or {}), dataset, freeze)


def shared_graph(
    arch: str, overrides: Mapping[str, Any] | None = None, dataset: str | None = None
) -> ModelGraph:
    """summarize_graph(arch, overrides, dataset), once per process for each setting."""
    key = settings_key(arch, overrides, dataset)
    return _graphs.get(key, arch, dict(overrides or {}), dataset)


def computed_counts() -> dict[str, int]:
    """How many tables and graphs this process has computed (not served from the memo)."""
    return {"tables": _tables.computed, "graphs": _graphs.computed}
