"""Running a lesson: its engine runs on a job manager, then its judge on the finished jobs.

`run_lesson` blocks (the CLI and the tests, on a private manager of one slot); the page uses
LessonRun, which submits to the class's shared manager and judges in a thread of its own, so a
rerun never waits for training.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.engine.manager import JobManager
from deeparch.engine.state import JobState
from deeparch.lessons.registry import Lesson, Outcome, check_budget, get_lesson

logger = logging.getLogger(__name__)

# A lesson's judge may train small models of its own or time layers; one at a time in a process,
# so thirty students pressing Run queue here instead of sharing the cores thirty ways.
JUDGE_SLOTS = threading.BoundedSemaphore(1)
RUN_TIMEOUT_S = 1800.0  # a run that has not ended by then is stopped and the lesson fails


def private_manager() -> JobManager:
    """A manager of one training slot and no heartbeat expiry, for a blocking run."""
    return JobManager(max_running=1, heartbeat_timeout=0)


def run_lesson(name: str, budget: str = "ci", manager: JobManager | None = None) -> Outcome:
    """Train the lesson's runs, wait for them, judge them; blocks until the outcome is known."""
    lesson = get_lesson(name)
    check_budget(budget)
    manager = manager if manager is not None else private_manager()
    jobs = {label: manager.submit(config) for label, config in lesson.runs(budget).items()}
    try:
        for job in jobs.values():
            if not job.wait(RUN_TIMEOUT_S):
                job.stop(f"the lesson's run took longer than {RUN_TIMEOUT_S:g} s")
                job.wait()
        with JUDGE_SLOTS:
            return lesson.judge(budget, jobs)
    finally:
        for job in jobs.values():
            manager.remove(job.id)


def engine_run(
    arch: str, dataset: str, budget: Mapping[str, Any], arch_config: dict | None = None,
    lr: float = 3e-3,
) -> TrainConfig:  # fmt: skip
    """A lesson's run on the engine: seed 0, the budget's fields (max_steps, epochs, ...)."""
    settings = {"arch": arch, "dataset": dataset, "arch_config": arch_config or {}, "lr": lr}
    return TrainConfig.from_dict({**settings, "seed": 0, **budget})


def unfinished(jobs: Mapping[str, JobHandle], expected: Mapping[str, JobState] | None = None):
    """The runs that did not end as expected (finished, unless `expected` says otherwise), as
    'label: state (reason)' sentences; empty when every run ended as it should."""
    expected = expected or {}
    problems = []
    for label, job in jobs.items():
        wanted = expected.get(label, JobState.FINISHED)
        if job.state is not wanted:
            problems.append(f"{label}: {job.state} ({job.reason})")
    return problems


def failed_outcome(lesson: Lesson, problems: list[str]) -> Outcome:
    """An outcome for a lesson whose runs did not end as they should: nothing to judge."""
    return Outcome(
        lesson.name,
        held=False,
        verdict="The experiment did not complete, so nothing was checked: " + "; ".join(problems),
        measured={"problems": problems},
    )


def last_epoch(job: JobHandle) -> dict[str, Any]:
    """The run's last per-epoch metrics (val_loss, val_accuracy, ...), or {} before the first."""
    metrics = job.snapshot().get("epoch_metrics") or []
    return dict(metrics[-1]) if metrics else {}


class LessonRun:
    """One student's run of a lesson: its jobs on a shared manager, then the judge in a thread.

    The page keeps this object in the session and reads `status`, `outcome` and the jobs'
    snapshots; nothing here blocks the caller.
    """

    def __init__(self, lesson: Lesson, budget: str, manager: Any, owner: str | None) -> None:
        self.lesson = lesson
        self.budget = check_budget(budget)
        self._lock = threading.Lock()
        self._status = "training"
        self._outcome: Outcome | None = None
        self._error = ""
        self._cancelled = threading.Event()
        self.jobs: dict[str, JobHandle] = {}
        try:
            for label, config in lesson.runs(budget).items():
                self.jobs[label] = manager.submit(config, owner=owner)
        except Exception:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._finish, name=f"deeparch-lesson-{lesson.name}", daemon=True
        )
        self._thread.start()

    @property
    def status(self) -> str:
        """training, waiting (for another lesson's judge), judging, done, stopped or failed."""
        with self._lock:
            return self._status

    @property
    def outcome(self) -> Outcome | None:
        with self._lock:
            return self._outcome

    @property
    def error(self) -> str:
        with self._lock:
            return self._error

    def is_active(self) -> bool:
        return self.status in ("training", "waiting", "judging")

    def stop(self) -> None:
        self._cancelled.set()
        for job in self.jobs.values():
            job.stop("stopped from the lesson")

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set(self, status: str, outcome: Outcome | None = None, error: str = "") -> None:
        with self._lock:
            self._status, self._outcome, self._error = status, outcome, error

    def _finish(self) -> None:
        try:
            for job in self.jobs.values():
                if not job.wait(RUN_TIMEOUT_S):
                    job.stop(f"the lesson's run took longer than {RUN_TIMEOUT_S:g} s")
                    job.wait()
            if self._cancelled.is_set():
                self._set("stopped")
                return
            self._set("waiting")
            with JUDGE_SLOTS:
                self._set("judging")
                outcome = self.lesson.judge(self.budget, self.jobs)
            self._set("done", outcome)
        except Exception as error:  # noqa: BLE001  (the page shows it; the thread must end)
            logger.exception("lesson %s failed", self.lesson.name)
            self._set("failed", error=f"{type(error).__name__}: {error}")
