"""The process-wide JobManager: queues jobs, runs at most `max_running` at once, and stops jobs
whose owner went away. Jobs live in the manager, not in a page, so they outlive page switches and
reruns; a backend (deeparch.engine.backends) creates and runs them.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
import weakref
from pathlib import Path

from deeparch.engine.backends import Backend, SchedulableJob, ThreadBackend
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.engine.optim import default_max_running
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError, UnknownNameError
from deeparch.settings import load_settings

logger = logging.getLogger(__name__)


# ---- the manager --------------------------------------------------------------------------------


class JobManager:
    """Holds jobs by id, runs at most `max_running` at once, stops jobs whose owner went away."""

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float = 600.0,
        backend: Backend | None = None,
    ) -> None:
        self.backend = backend if backend is not None else ThreadBackend()
        self.max_running = max_running if max_running is not None else default_max_running()
        self.heartbeat_timeout = float(heartbeat_timeout)  # seconds; 0 switches expiry off
        self._lock = threading.RLock()
        self._jobs: dict[str, JobHandle] = {}
        self._queue: list[SchedulableJob] = []
        self._ids = itertools.count(1)
        self._watchdog: threading.Thread | None = None

    # -- jobs --

    def submit(
        self, config: TrainConfig, owner: str | None = None, resume: str | Path | None = None
    ) -> JobHandle:
        """Validate, build, dry-run one batch, then queue the job (it starts when a slot frees).

        `resume` continues from a checkpoint of the same architecture: weights, optimizer state,
        counters and history, so the run continues as if it had never stopped.
        """
        job = self.backend.create(self._new_id(), config, owner, self, resume)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
        self._ensure_watchdog()
        self._schedule()
        return job

    def load_checkpoint(self, path: str | Path, owner: str | None = None) -> JobHandle:
        """A finished job holding a checkpoint's model, config and metrics, to show or compare."""
        job = self.backend.load(self._new_id(), path, owner)
        with self._lock:
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> JobHandle:
        with self._lock:
            if job_id not in self._jobs:
                raise UnknownNameError("job", job_id, list(self._jobs))
            return self._jobs[job_id]

    def jobs(self, owner: str | None = None) -> list[JobHandle]:
        """All jobs, or one owner's, oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def remove(self, job_id: str) -> None:
        """Stop a job if it runs and forget it (frees its model and data)."""
        job = self.get(job_id)
        job.stop()
        with self._lock:
            self._jobs.pop(job_id, None)

    def heartbeat(self, job_id: str) -> None:
        """The owner is still looking: keep the job alive."""
        self.get(job_id).last_seen = time.monotonic()

    def queue_position(self, job: JobHandle) -> int:
        """1 for the next job to start, 2 after it, ...; 0 when not queued."""
        with self._lock:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def set_max_running(self, max_running: int) -> None:
        """Change how many jobs may train at once; queued jobs start if slots opened."""
        if max_running < 0:
            raise ConfigError("max_running", max_running, "0 or more")
        with self._lock:
            self.max_running = max_running
        self._schedule()

    def running_count(self) -> int:
        """Jobs holding a slot (running or paused: a paused job keeps its memory)."""
        with self._lock:
            return sum(
                1 for j in self._jobs.values() if j.state in (JobState.RUNNING, JobState.PAUSED)
            )

    # -- scheduling --

    def _new_id(self) -> str:
        # A counter for people, a random part so that nobody reaches another session's job (a
        # ?job=<id> link adopts the job's owner) by guessing the next number.
        return f"job-{next(self._ids)}-{secrets.token_hex(4)}"

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and self.running_count() < self.max_running:
                self._queue.pop(0).start()

    def job_ended(self, job: JobHandle) -> None:
        """Called by a job when it ends (or is stopped while queued): free its place."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
        self._schedule()

    # -- heartbeats --

    def expire_abandoned(self) -> list[JobHandle]:
        """Stop active jobs whose owner has not looked for heartbeat_timeout seconds."""
        if self.heartbeat_timeout <= 0:
            return []
        now = time.monotonic()
        expired = []
        for job in self.jobs():
            if job.owner is None or not job.is_active():
                continue
            if now - job.last_seen > self.heartbeat_timeout:
                step = job.snapshot().get("step", 0)
                reason = (
                    f"stopped at step {step}: its owner has not looked at it for "
                    f"{self.heartbeat_timeout:g} s"
                )
                if job.stop(reason):
                    expired.append(job)
        return expired

    def _ensure_watchdog(self) -> None:
        """Start the heartbeat checker once expiry is on; it ends when the manager is dropped."""
        with self._lock:
            if self.heartbeat_timeout <= 0:
                return
            if self._watchdog is not None and self._watchdog.is_alive():
                return
            self._watchdog = threading.Thread(
                target=_watch, args=(weakref.ref(self),), name="deeparch-heartbeat", daemon=True
            )
            self._watchdog.start()


def _watch(manager_ref: weakref.ref) -> None:
    """Every quarter of the timeout (0.05 s to 5 s), stop the jobs nobody looks at any more."""
    while True:
        manager = manager_ref()
        if manager is None or manager.heartbeat_timeout <= 0:
            return
        interval = min(5.0, max(0.05, manager.heartbeat_timeout / 4))
        del manager  # hold no reference while sleeping, so the manager can be collected
        time.sleep(interval)
        manager = manager_ref()
        if manager is None:
            return
        try:
            manager.expire_abandoned()
        except Exception:  # noqa: BLE001  (the watchdog must outlive any one bad job)
            logger.exception("heartbeat check failed")
        del manager


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide manager, configured by the class settings (deeparch.settings)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            settings = load_settings()
            _manager = JobManager(
                max_running=settings.max_running or None,
                heartbeat_timeout=settings.heartbeat_s,
            )
        return _manager
