"""Running a lesson: its engine runs on a job manager, stage by stage, then its judge on the
finished jobs.

`run_lesson` blocks (the CLI and the tests, on a private manager of one slot); the page uses
LessonRun, which submits to the class's shared manager under the student's owner id and judges in
a thread of its own, so a rerun never waits for training. Both go through LessonJobs: stage 1
(the lesson's runs), then, once every one of them has finished, stage 2 (its second_stage), whose
runs may start from a first-stage run's checkpoint.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.engine.manager import JobManager, terminal_manager
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError, UnknownJobError
from deeparch.lessons.registry import Lesson, Outcome, check_budget, get_lesson

logger = logging.getLogger(__name__)

# A lesson's judge may train small models of its own or time layers; one at a time in a process,
# so thirty students pressing Run queue here instead of sharing the cores thirty ways.
JUDGE_SLOTS = threading.BoundedSemaphore(1)
RUN_TIMEOUT_S = 1800.0  # a run that has not ended by then is stopped and the lesson fails


def private_manager() -> JobManager:
    """A manager of one training slot and no heartbeat expiry, for a blocking run, on the
    backend the class settings name (threads unless DEEPARCH_BACKEND=ray)."""
    return terminal_manager()


class LessonJobs:
    """A lesson's engine jobs by label, stage by stage, on one manager under one owner.

    Stage 1 is the lesson's `runs`; stage 2 its `second_stage`, submitted once stage 1 has
    finished, each run that takes weights from a first-stage run starting from that run's
    checkpoint (written to a temporary folder, read at submit). Readers on other threads (the
    page) get copies of the jobs.
    """

    def __init__(self, lesson: Lesson, budget: str, manager: Any, owner: str | None) -> None:
        self.lesson, self.budget, self.manager, self.owner = lesson, budget, manager, owner
        self._lock = threading.Lock()
        self._jobs: dict[str, JobHandle] = {}
        self._stages: dict[str, int] = {}
        self._stage = 0
        # Runs not yet submitted: the class lets a student hold jobs_per_student + queue_per_student
        # jobs (3 by default) and a lesson may have more (the optimisers: 6), so the rest wait
        # here and are submitted as the lesson's earlier runs end.
        self._waiting: list[tuple[int, str, Callable[[], JobHandle]]] = []
        self._stopped = False

    @property
    def stage(self) -> int:
        """The stage submitted last: 0 before any, 1, then 2 for a lesson with a second."""
        with self._lock:
            return self._stage

    @property
    def stages(self) -> int:
        return 1 if self.lesson.second_stage is None else 2

    def jobs(self, stage: int | None = None) -> dict[str, JobHandle]:
        """A copy of the jobs by label (of one stage, or all), in the order submitted: each the
        manager's handle of it now. Once an ended run is in the run store the manager holds it
        as an EndedRun (its weights on disk), and the lesson lets go of the trained job too."""
        with self._lock:
            chosen = [
                label for label in self._jobs if stage is None or self._stages[label] == stage
            ]
            for label in chosen:
                self._jobs[label] = self._current(self._jobs[label])
            return {label: self._jobs[label] for label in chosen}

    def _current(self, job: JobHandle) -> JobHandle:
        try:
            return self.manager.get(job.id)
        except UnknownJobError:  # out of the manager's memory: what the lesson holds stays
            return job

    def submit_first(self) -> None:
        with self._lock:
            for label, config in self.lesson.runs(self.budget).items():
                submit = partial(self.manager.submit, config, owner=self.owner)
                self._waiting.append((1, label, submit))
            self._stage = 1
        self._submit_what_fits()

    def _has_waiting(self, stage: int | None = None) -> bool:
        with self._lock:
            return any(stage in (None, waiting[0]) for waiting in self._waiting)

    def _submit_what_fits(self) -> None:
        """Submit waiting runs in order until the class's limit for this student refuses one
        while a run of the lesson is still active (it goes once that ends).

        The page's thread may stop the lesson meanwhile (stop() empties the waiting list): the
        lock is held to read and pop the list, never across a submit (it prepares a model), and
        a run submitted as the lesson stopped is stopped at once."""
        while True:
            with self._lock:
                if not self._waiting:
                    return
                stage, label, submit = self._waiting[0]
            try:
                job = submit()
            except ConfigError as error:
                if error.field != "jobs" or not self._any_active():
                    raise  # not the per-student limit, or no run of ours will free a place
                return
            with self._lock:
                stopped = self._stopped
                if self._waiting and self._waiting[0][1] == label:
                    self._waiting.pop(0)
            self._add(stage, label, job)
            if stopped:
                job.stop("stopped from the lesson")
                return

    def _any_active(self) -> bool:
        return any(job.is_active() for job in self.jobs().values())

    def submit_second(self) -> None:
        """The second stage's runs, from the finished first stage's weights where they ask."""
        first = self.jobs(1)
        with tempfile.TemporaryDirectory(prefix=f"deeparch-{self.lesson.name}-") as folder:
            saved: dict[str, Path] = {}
            for label, run in self.lesson.second_stage(self.budget).items():
                weights_from = None
                if run.weights_from is not None:
                    source, parts = run.weights_from
                    if source not in saved:
                        saved[source] = first[source].save_checkpoint(
                            Path(folder) / f"stage-1-{len(saved)}"
                        )
                    weights_from = WeightsFrom(saved[source], parts)
                submit = partial(
                    self.manager.submit, run.config, owner=self.owner, weights_from=weights_from
                )
                with self._lock:
                    if not self._stopped:  # a lesson stopped meanwhile submits nothing more
                        self._waiting.append((2, label, submit))
            # Within the folder's life: a queued job copies its checkpoint, a waiting one not yet.
            self._submit_what_fits()
            with self._lock:
                self._stage = 2
            while self._has_waiting():
                self._wait_for_a_place()

    def _add(self, stage: int, label: str, job: JobHandle) -> None:
        with self._lock:
            if label in self._jobs:
                job.stop("a run of this label is already in the lesson")
                raise ValueError(f"lesson {self.lesson.name}: two runs are labelled {label!r}")
            self._jobs[label], self._stages[label] = job, stage

    def _wait_for_a_place(self) -> None:
        """Until one of the lesson's active runs ends, then submit what now fits."""
        active = [job for job in self.jobs().values() if job.is_active()]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while active and not any(job.wait(0.2) for job in active):
            if time.monotonic() > deadline:
                break
        self._submit_what_fits()

    def wait(self, stage: int) -> None:
        """Until every job of the stage has ended (its waiting runs submitted as places free up);
        one past RUN_TIMEOUT_S is stopped."""
        while self._has_waiting(stage):
            self._wait_for_a_place()
        for job in self.jobs(stage).values():
            if not job.wait(RUN_TIMEOUT_S):
                job.stop(f"the lesson's run took longer than {RUN_TIMEOUT_S:g} s")
                job.wait()

    def stop(self, reason: str) -> None:
        with self._lock:
            self._stopped = True
            self._waiting.clear()  # a stopped lesson submits nothing more
        for job in self.jobs().values():
            job.stop(reason)

    def remove(self) -> None:
        for job in self.jobs().values():
            self.manager.remove(job.id)

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Each run's stage, state, reason, steps and final metrics, for the outcome's JSON."""
        with self._lock:
            stages = dict(self._stages)
        return {label: run_summary(job, stages[label]) for label, job in self.jobs().items()}


def run_summary(job: JobHandle, stage: int) -> dict[str, Any]:
    snapshot = job.snapshot()
    return {
        "stage": stage,
        "arch": job.arch,
        "dataset": job.dataset,
        "state": str(job.state),
        "reason": job.reason,
        "steps": snapshot.get("step"),
        "final_metrics": dict(snapshot.get("final_metrics") or {}),
    }


def train_and_judge(
    staged: LessonJobs,
    cancelled: threading.Event | None = None,
    on_judge: Callable[[bool], None] | None = None,
) -> Outcome | None:
    """Wait for stage 1 (already submitted); submit stage 2 when there is one and stage 1
    finished; wait; judge. None when `cancelled` was set (nothing judged). `on_judge(False)` is
    called while waiting for the judge's slot, `on_judge(True)` once judging."""
    lesson, budget = staged.lesson, staged.budget
    staged.wait(1)
    if cancelled is not None and cancelled.is_set():
        return None
    if lesson.second_stage is not None:
        problems = unfinished(staged.jobs(1))
        if problems:
            outcome = failed_outcome(lesson, [f"stage 1, {problem}" for problem in problems])
            outcome.runs = staged.summaries()
            return outcome
        staged.submit_second()
        if cancelled is not None and cancelled.is_set():  # stopped while it was submitting
            staged.stop("stopped from the lesson")
        staged.wait(2)
    if cancelled is not None and cancelled.is_set():
        return None
    if on_judge is not None:
        on_judge(False)
    with JUDGE_SLOTS:
        if on_judge is not None:
            on_judge(True)
        outcome = lesson.judge(budget, staged.jobs())
    outcome.runs = staged.summaries()
    return outcome


def run_lesson(name: str, budget: str = "ci", manager: JobManager | None = None) -> Outcome:
    """Train the lesson's runs, stage by stage, wait for them, judge them; blocks until the
    outcome is known."""
    lesson = get_lesson(name)
    check_budget(budget)
    own = manager is None
    manager = private_manager() if own else manager
    staged = LessonJobs(lesson, budget, manager, owner=None)
    try:
        staged.submit_first()
        return train_and_judge(staged)
    finally:
        staged.remove()
        if own:
            manager.shutdown()  # its backend too: a local Ray it started, a pool of workers


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

    The page keeps this object in the session and reads `status`, `stage`, `outcome` and the
    jobs' snapshots; nothing here blocks the caller. The first stage is submitted here (a
    ConfigError reaches the page at once); a second stage is submitted by the thread once the
    first has finished, under the same owner, so both stages' runs are the student's own.
    """

    def __init__(self, lesson: Lesson, budget: str, manager: Any, owner: str | None) -> None:
        self.lesson = lesson
        self.budget = check_budget(budget)
        self._lock = threading.Lock()
        self._status = "training"
        self._outcome: Outcome | None = None
        self._error = ""
        self._cancelled = threading.Event()
        self._staged = LessonJobs(lesson, budget, manager, owner)
        try:
            self._staged.submit_first()
        except Exception:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._finish, name=f"deeparch-lesson-{lesson.name}", daemon=True
        )
        self._thread.start()

    @property
    def jobs(self) -> dict[str, JobHandle]:
        """Every stage's jobs so far, by label (a copy: the thread adds the second stage's)."""
        return self._staged.jobs()

    @property
    def stage(self) -> int:
        """The stage training or trained last: 1, or 2 once the second stage is submitted."""
        return self._staged.stage

    @property
    def stages(self) -> int:
        return self._staged.stages

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
        self._staged.stop("stopped from the lesson")

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set(self, status: str, outcome: Outcome | None = None, error: str = "") -> None:
        with self._lock:
            self._status, self._outcome, self._error = status, outcome, error

    def _finish(self) -> None:
        try:
            outcome = train_and_judge(self._staged, self._cancelled, self._waiting_for_judge)
            if outcome is None:
                self._set("stopped")
            else:
                self._set("done", outcome)
        except Exception as error:  # noqa: BLE001  (the page shows it; the thread must end)
            logger.exception("lesson %s failed", self.lesson.name)
            self.stop()
            self._set("failed", error=f"{type(error).__name__}: {error}")

    def _waiting_for_judge(self, judging: bool) -> None:
        self._set("judging" if judging else "waiting")
