"""A lock-guarded log a training thread appends to and any reader copies at any moment."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

# Snapshots are kept over time so a reader can scroll back; past this many, every other older one
# is dropped, so the history still spans the whole run in bounded memory.
MAX_SNAPSHOTS = 120
# A checkpoint keeps at most this many points of each loss term. Its history goes into the
# safetensors header, which the format caps at 100 MB; at about 29 bytes a point, 100,000 points
# are about 3 MB a term, far below the cap even for a task with several terms (a GAN has five),
# and still more points than a loss chart has pixels across.
MAX_SAVED_POINTS = 100_000


def thin_evenly(points: list, limit: int) -> list:
    """At most `limit` (2 or more) of `points`, evenly spread, always the first and the last."""
    if len(points) <= limit:
        return list(points)
    last, gaps = len(points) - 1, limit - 1
    # Index i * last / gaps, rounded; gaps < last, so no index repeats.
    return [points[(i * last + gaps // 2) // gaps] for i in range(limit)]


def freeze_payload(payload: Any) -> Any:
    """Make numpy arrays in a payload read-only, so sharing them between readers is safe."""
    if isinstance(payload, np.ndarray):
        payload.setflags(write=False)
    elif isinstance(payload, dict):
        for value in payload.values():
            freeze_payload(value)
    return payload


class MetricsLog:
    """Per-step loss terms, per-epoch metrics, task snapshots and progress counters.

    The writer holds the lock only to append; `copy()` holds it only to copy the outer lists.
    Entries are never mutated after they are appended, so readers may share them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._losses: dict[str, list[list[float]]] = {}
        self._epoch_metrics: list[dict[str, float]] = []
        self._snapshots: list[dict[str, Any]] = []
        self._counters: dict[str, Any] = {}

    def add_losses(self, step: int, losses: dict[str, float]) -> None:
        with self._lock:
            for term, value in losses.items():
                self._losses.setdefault(term, []).append([step, value])

    def add_epoch(self, metrics: dict[str, float]) -> None:
        with self._lock:
            self._epoch_metrics.append(dict(metrics))

    def add_snapshot(self, snapshot: dict[str, Any]) -> None:
        freeze_payload(snapshot)
        with self._lock:
            self._snapshots.append(snapshot)
            if len(self._snapshots) > MAX_SNAPSHOTS:
                older, recent = self._snapshots[:-1], self._snapshots[-1:]
                self._snapshots = older[::2] + recent

    def latest_snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            return self._snapshots[-1] if self._snapshots else None

    def update(self, **counters: Any) -> None:
        with self._lock:
            self._counters.update(counters)

    def counter(self, name: str, default: Any = None) -> Any:
        with self._lock:
            return self._counters.get(name, default)

    def copy(self) -> dict[str, Any]:
        """losses, epoch_metrics, snapshots and the counters, as new containers."""
        with self._lock:
            losses = {term: list(points) for term, points in self._losses.items()}
            epoch_metrics = list(self._epoch_metrics)
            snapshots = list(self._snapshots)
            counters = dict(self._counters)
        return {
            **counters,
            "losses": losses,
            "epoch_metrics": [dict(m) for m in epoch_metrics],
            "snapshots": snapshots,
        }

    def history(self) -> dict[str, Any]:
        """What a checkpoint keeps: loss curves, each thinned to MAX_SAVED_POINTS, and epoch
        metrics (snapshots are too large)."""
        copied = self.copy()
        losses = {
            term: thin_evenly(points, MAX_SAVED_POINTS) for term, points in copied["losses"].items()
        }
        return {"losses": losses, "epoch_metrics": copied["epoch_metrics"]}

    def restore(self, history: dict[str, Any]) -> None:
        """Continue a log from a checkpoint's history."""
        with self._lock:
            self._losses = {t: [list(p) for p in pts] for t, pts in history["losses"].items()}
            self._epoch_metrics = [dict(m) for m in history["epoch_metrics"]]
