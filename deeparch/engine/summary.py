"""A run's results as numbers: the final and the best validation metrics, from its metrics log.

Which metrics a task shows and which one ranks its epochs are the task's own (Task.summary_metrics
and Task.best_by); this module only reads the per-epoch rows a job publishes (its snapshot's
`epoch_metrics`, plus `final_metrics` when a stopped run was evaluated mid-epoch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deeparch.tasks import TASK_CLASSES

# What a student reads for each metric a task reports.
METRIC_LABELS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "val_reconstruction": "reconstruction error",
    "val_mse": "reconstruction MSE",
    "val_kl": "KL divergence",
    "val_d_x": "D(x) on real images",
    "val_d_g_z": "D(G(z)) on fakes",
    "val_d_loss": "discriminator loss",
    "val_g_loss": "generator loss",
}


@dataclass(frozen=True)
class MetricResult:
    """One metric at the run's last evaluation and at its best epoch (None: not reached)."""

    name: str
    label: str
    final: float | None
    at_best: float | None


@dataclass(frozen=True)
class RunSummary:
    """What a run reached: its last evaluated epoch, its best one and the metrics at both."""

    final_epoch: float
    best_epoch: float | None  # None where the task ranks no epoch (a GAN)
    best_by: str | None  # the metric that chose the best epoch
    metrics: tuple[MetricResult, ...]

    def metric(self, name: str) -> MetricResult:
        return next(result for result in self.metrics if result.name == name)


def evaluated_rows(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch rows, plus the last evaluation of a run stopped mid-epoch."""
    rows = [dict(row) for row in snapshot.get("epoch_metrics") or []]
    final = dict(snapshot.get("final_metrics") or {})
    last_step = rows[-1].get("step") if rows else None
    if final.get("epoch") is not None and final.get("step") != last_step:
        rows.append(final)
    return rows


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def best_row(rows: Sequence[Mapping[str, Any]], metric: str, mode: str) -> Mapping[str, Any] | None:
    """The row where `metric` is highest ("max") or lowest ("min"); the earliest on a tie."""
    scored = [
        (value, index)
        for index, row in enumerate(rows)
        if (value := _finite(row.get(metric))) is not None
    ]
    if not scored:
        return None
    pick = max if mode == "max" else min
    best_value = pick(value for value, _ in scored)
    return rows[next(index for value, index in scored if value == best_value)]


def summarize_run(snapshot: Mapping[str, Any]) -> RunSummary | None:
    """The final and best metrics of a job's snapshot; None before its first evaluation."""
    rows = evaluated_rows(snapshot)
    task = TASK_CLASSES.get(str(snapshot.get("task")))
    if not rows or task is None:
        return None
    final = rows[-1]
    best = None
    if task.best_by is not None:
        best = best_row(rows, *task.best_by)
    names = [name for name in task.summary_metrics if any(name in row for row in rows)]
    metrics = tuple(
        MetricResult(
            name=name,
            label=METRIC_LABELS.get(name, name),
            final=_finite(final.get(name)),
            at_best=_finite(best.get(name)) if best is not None else None,
        )
        for name in names
    )
    return RunSummary(
        final_epoch=float(final.get("epoch") or 0.0),
        best_epoch=float(best["epoch"]) if best is not None else None,
        best_by=task.best_by[0] if best is not None and task.best_by else None,
        metrics=metrics,
    )


def format_metric(name: str, value: float | None) -> str:
    """A metric as a student reads it: accuracy and D's outputs in per cent, the others to 4
    significant digits; "—" for a value the run never reached (it diverged)."""
    if value is None:
        return "—"
    if name.endswith("accuracy") or name in ("val_d_x", "val_d_g_z"):
        return f"{value:.1%}"
    return f"{value:.4g}"


def format_epoch(epoch: float) -> str:
    """Epoch 3, or 2.4 for a run stopped 40 % into its third epoch."""
    return f"{epoch:g}" if float(epoch).is_integer() else f"{epoch:.1f}"
