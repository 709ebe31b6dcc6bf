"""A job's published snapshot copied into another process by increments.

A job that trains in another process (the Ray backend's workers) is read by pages every second or
so. Sending its whole snapshot each time costs more the longer it trains (every loss point, up to
MAX_SNAPSHOTS task snapshots); `changes_since` sends only what the reader lacks, given a cursor of
what it holds, and a SnapshotMirror applies that and hands out copies the way MetricsLog does.
"""

from __future__ import annotations

import threading
from typing import Any

from deeparch.engine.metrics_log import freeze_payload

# The parts of a snapshot that grow while a job trains; everything else is sent whole.
GROWING = ("losses", "epoch_metrics", "snapshots")


def changes_since(snapshot: dict[str, Any], cursor: dict[str, Any]) -> dict[str, Any]:
    """What a mirror holding `cursor` (SnapshotMirror.cursor()) lacks of `snapshot`.

    Lists are sent as (start, entries from start): the reader keeps its first `start` entries.
    Task snapshots are sent only for steps the reader does not hold, with the steps now kept (the
    log thins older ones, deeparch.engine.metrics_log.MAX_SNAPSHOTS).
    """
    held_losses = cursor.get("losses", {})
    losses = {}
    for term, points in snapshot["losses"].items():
        start = held_losses.get(term, 0)
        start = start if start <= len(points) else 0  # the log was replaced: send it all again
        losses[term] = (start, points[start:])
    epochs = snapshot["epoch_metrics"]
    epoch_start = cursor.get("epochs", 0)
    epoch_start = epoch_start if epoch_start <= len(epochs) else 0
    held_steps = set(cursor.get("snapshot_steps", ()))
    return {
        "fields": {key: value for key, value in snapshot.items() if key not in GROWING},
        "losses": losses,
        "epoch_metrics": (epoch_start, epochs[epoch_start:]),
        "snapshot_steps": [payload["step"] for payload in snapshot["snapshots"]],
        "new_snapshots": [p for p in snapshot["snapshots"] if p["step"] not in held_steps],
    }


class SnapshotMirror:
    """The reader's side: applies changes_since() results, copies out like MetricsLog.copy()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fields: dict[str, Any] = {}
        self._losses: dict[str, list] = {}
        self._epoch_metrics: list[dict[str, Any]] = []
        self._snapshots: list[dict[str, Any]] = []

    def cursor(self) -> dict[str, Any]:
        with self._lock:
            return {
                "losses": {term: len(points) for term, points in self._losses.items()},
                "epochs": len(self._epoch_metrics),
                "snapshot_steps": [payload["step"] for payload in self._snapshots],
            }

    def apply(self, changes: dict[str, Any]) -> None:
        with self._lock:
            self._fields = dict(changes["fields"])
            losses = {}
            for term, (start, points) in changes["losses"].items():
                kept = self._losses.get(term, [])
                del kept[start:]
                kept.extend(points)
                losses[term] = kept
            self._losses = losses
            start, metrics = changes["epoch_metrics"]
            del self._epoch_metrics[start:]
            self._epoch_metrics.extend(metrics)
            by_step = {payload["step"]: payload for payload in self._snapshots}
            for payload in changes["new_snapshots"]:
                # Arrays that crossed a process boundary are writable again: share them read-only.
                by_step[payload["step"]] = freeze_payload(payload)
            self._snapshots = [by_step[s] for s in changes["snapshot_steps"] if s in by_step]

    def copy(self) -> dict[str, Any]:
        """Everything held, as new containers (entries are shared and never changed)."""
        with self._lock:
            return {
                **self._fields,
                "losses": {term: list(points) for term, points in self._losses.items()},
                "epoch_metrics": [dict(metrics) for metrics in self._epoch_metrics],
                "snapshots": list(self._snapshots),
            }

    def latest_snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            return self._snapshots[-1] if self._snapshots else None
