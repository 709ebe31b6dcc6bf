"""A job's state: an enum, one table of allowed transitions, and the one method applying them."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class JobState(enum.StrEnum):
    """Where a job is. A str, so snapshots and JSON carry plain words ("running")."""

    QUEUED = "queued"  # waiting for a training slot
    RUNNING = "running"  # training, or about to (a pause may have been asked for)
    PAUSED = "paused"  # really paused: the training thread sits between two steps
    FINISHED = "finished"  # trained every epoch or max_steps
    STOPPED = "stopped"  # stopped by its owner, the teacher or the heartbeat watchdog
    FAILED = "failed"  # an error ended it (out of memory, a bug); other jobs go on
    DIVERGED = "diverged"  # its loss became NaN or exploded

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        return self not in ACTIVE_STATES


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED})
FINAL_STATES = frozenset(JobState) - ACTIVE_STATES
# A checkpoint holds weights from between two steps: a paused or ended job has them.
SAVABLE_STATES = FINAL_STATES | {JobState.PAUSED}
# Final states shown to people in this order (the sidebar's "Ended runs" line, Compare).
FINAL_ORDER = (JobState.FINISHED, JobState.STOPPED, JobState.FAILED, JobState.DIVERGED)

_ENDINGS = {JobState.FINISHED, JobState.STOPPED, JobState.FAILED, JobState.DIVERGED}
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # A queued job starts, or is stopped (or fails to start) before it trains a step.
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.STOPPED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.PAUSED} | _ENDINGS),
    # A single step taken while paused can finish, fail or diverge the run.
    JobState.PAUSED: frozenset({JobState.RUNNING} | _ENDINGS),
    JobState.FINISHED: frozenset(),
    JobState.STOPPED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.DIVERGED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the transition table does not allow (a bug in the caller, never a student's)."""


class StateMachine:
    """A job's state and its reason, changed only by `move`, read and waited on by anyone.

    `condition` is shared with the job's control flags, so a flag and the state change together.
    """

    def __init__(
        self,
        job_id: str,
        state: JobState = JobState.QUEUED,
        reason: str = "waiting for a free training slot",
        on_change: Callable[[JobState, str], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.condition = threading.Condition()
        self._state = JobState(state)
        self._reason = reason
        self._on_change = on_change

    @property
    def state(self) -> JobState:
        with self.condition:
            return self._state

    @property
    def reason(self) -> str:
        with self.condition:
            return self._reason

    def read(self) -> tuple[JobState, str]:
        with self.condition:
            return self._state, self._reason

    def move(self, to: JobState, reason: str) -> None:
        """Change state (the only place that does); raises IllegalTransition if not allowed."""
        with self.condition:
            if to not in TRANSITIONS[self._state]:
                raise IllegalTransition(
                    f"job {self.job_id}: {self._state} -> {to} is not allowed "
                    f"(from {self._state}: {', '.join(sorted(TRANSITIONS[self._state])) or 'none'})"
                )
            self._state, self._reason = to, reason
            self.condition.notify_all()
            if self._on_change is not None:
                self._on_change(to, reason)
        logger.info("job %s %s: %s", self.job_id, to, reason)

    def explain(self, reason: str) -> None:
        """A new reason for the same state (a paused job's step, a queued job's position)."""
        with self.condition:
            self._reason = reason
            if self._on_change is not None:
                self._on_change(self._state, reason)

    def wait_final(self, timeout: float | None = None) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: self._state.is_final, timeout)


class StateView:
    """A job's state, reason and whether it is active, read from its `machine`."""

    machine: StateMachine

    @property
    def state(self) -> JobState:
        return self.machine.state

    @property
    def reason(self) -> str:
        return self.machine.reason

    def is_active(self) -> bool:
        return self.state.is_active
