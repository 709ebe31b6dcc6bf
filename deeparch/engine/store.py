"""The run store: ended runs on disk, so that a class's hour of training does not live in memory.

A folder per session under the store's root (named by a hash of the session's owner id, never the
id itself: the folder names must not hand anyone a session). Each run is three files:
<job id>.safetensors and <job id>.json, the checkpoint (deeparch.checkpoint: weights, optimizer
state, counters, loss curves and epoch metrics), and <job id>.run.json, what the pages list and
compare without loading weights (identity, state, reason, student label and the snapshot's curves).
Reopening a run loads its checkpoint as a finished job; the task's snapshot (what the explore
views draw) is taken again from the weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.handle import JobHandle
from deeparch.engine.metrics_log import thin_evenly

logger = logging.getLogger(__name__)

SUMMARY_SUFFIX = ".run.json"
SUMMARY_POINTS = 1000  # points per loss curve in a summary (enough for a chart's width)
# Summaries kept parsed, the most recently read first out last: a class's day of runs (hundreds,
# tens of KB each) would otherwise stay in memory for the server's life.
SUMMARY_CACHE_ENTRIES = 128  # a 1000-step run's summary parses to about 300 KB
# What a stored summary keeps of a job's snapshot: what Compare and the sidebar show.
SUMMARY_KEYS = (
    "id", "arch", "dataset", "task", "state", "reason", "step", "total_steps", "epoch", "epochs",
    "samples_per_s", "elapsed_s", "config", "final_metrics", "epoch_metrics", "losses",
)  # fmt: skip


def session_folder_name(owner: str | None) -> str:
    """The folder of one session's runs: a hash of its owner id (the CLI's runs go to "cli")."""
    if owner is None:
        return "cli"
    return hashlib.sha256(owner.encode()).hexdigest()[:20]


@dataclass
class StoredRun:
    """One run in the store, as its summary describes it."""

    id: str
    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> Path:
        return self.folder / f"{self.id}{checkpoint.SUFFIX}"

    @property
    def snapshot(self) -> dict[str, Any]:
        """The summary in the shape of a job's snapshot (for Compare and the teacher's view)."""
        return {**self.summary, "stored": True}


class RunStore:
    """Ended runs on disk, a folder per session (see the module's doc)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        # Summaries read once per file version: every tab's sidebar lists its runs on each rerun.
        self._summaries: OrderedDict[Path, tuple[int, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def folder(self, owner: str | None) -> Path:
        return self.root / session_folder_name(owner)

    def save(self, job: JobHandle, label: str = "") -> StoredRun:
        """Write the job's checkpoint and summary; returns the stored run."""
        folder = self.folder(job.owner)
        folder.mkdir(parents=True, exist_ok=True)
        job.save_checkpoint(folder / f"{job.id}{checkpoint.SUFFIX}")
        snap = job.snapshot()
        summary = {key: snap.get(key) for key in SUMMARY_KEYS}
        # Curves thinned (the checkpoint keeps them whole): every tab reads and caches summaries.
        losses = summary.get("losses") or {}
        summary["losses"] = {t: thin_evenly(p, SUMMARY_POINTS) for t, p in losses.items()}
        summary.update(label=label, saved_at=time.time())
        path = folder / f"{job.id}{SUMMARY_SUFFIX}"
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(summary, default=str))
        partial.replace(path)  # a reader never sees half a summary
        return StoredRun(job.id, folder, summary)

    def runs(self, owner: str | None) -> list[StoredRun]:
        """One session's stored runs, newest first."""
        return self._read(self.folder(owner))

    def all_runs(self) -> list[StoredRun]:
        """Every session's stored runs, newest first (the teacher's view)."""
        if not self.root.is_dir():
            return []
        folders = [folder for folder in self.root.iterdir() if folder.is_dir()]
        runs = [run for folder in folders for run in self._read(folder)]
        return sorted(runs, key=lambda run: run.summary.get("saved_at", 0), reverse=True)

    def _summary(self, path: Path) -> dict[str, Any] | None:
        try:
            version = path.stat().st_mtime_ns
            with self._lock:
                cached = self._summaries.get(path)
                if cached is not None and cached[0] == version:
                    self._summaries.move_to_end(path)
                    return cached[1]
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            logger.warning("unreadable run summary %s skipped", path)
            return None
        with self._lock:
            self._summaries[path] = (version, summary)
            self._summaries.move_to_end(path)
            while len(self._summaries) > SUMMARY_CACHE_ENTRIES:
                self._summaries.popitem(last=False)
        return summary

    def summaries_cached(self) -> int:
        with self._lock:
            return len(self._summaries)

    def get(self, owner: str | None, run_id: str) -> StoredRun | None:
        return next((run for run in self.runs(owner) if run.id == run_id), None)

    def _read(self, folder: Path) -> list[StoredRun]:
        if not folder.is_dir():
            return []
        runs = []
        for path in folder.glob(f"*{SUMMARY_SUFFIX}"):
            summary = self._summary(path)
            if summary is None:
                continue
            run = StoredRun(path.name.removesuffix(SUMMARY_SUFFIX), folder, summary)
            if run.weights.is_file():
                runs.append(run)
        return sorted(runs, key=lambda run: run.summary.get("saved_at", 0), reverse=True)
