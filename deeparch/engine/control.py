"""Pause, single steps and stop: requests from any thread, honoured by the training thread
between two steps (TensorFlow Playground's Player: cheap, explicit, checked every step)."""

from __future__ import annotations

import threading
import time

from deeparch.engine.state import JobState, StateMachine


class JobControl:
    """A job's control flags, guarded by its state machine's condition.

    Callers ask (`pause`, `resume`, `step`, `stop`); the training thread calls `between_steps`
    before every step, which is where a pause really happens: the job becomes PAUSED only once
    its thread sits between two steps, and RUNNING again when it is resumed.
    """

    def __init__(self, machine: StateMachine) -> None:
        self.machine = machine
        self._condition = machine.condition
        self._pause_requested = False
        self._stop_requested = False
        self._stop_reason = ""
        self._single_steps = 0
        self._waiting = threading.Event()  # set while the thread sits paused between steps

    # ---- requests (any thread) --------------------------------------------------------------

    def pause(self) -> bool:
        with self._condition:
            if self.machine.state is not JobState.RUNNING:
                return False
            self._pause_requested = True
            return True

    @property
    def pause_requested(self) -> bool:
        with self._condition:
            return self._pause_requested

    def resume(self) -> bool:
        with self._condition:
            state = self.machine.state
            if state is JobState.PAUSED:
                self._pause_requested = False
                self._waiting.clear()
                self.machine.move(JobState.RUNNING, "training")
                return True
            if state is JobState.RUNNING and self._pause_requested:
                self._pause_requested = False  # asked to pause, not paused yet: carry on
                return True
            return False

    def step(self) -> bool:
        with self._condition:
            if self.machine.state is not JobState.PAUSED:
                return False
            self._single_steps += 1
            self._waiting.clear()
            self._condition.notify_all()
            return True

    def stop(self, reason: str = "") -> bool:
        """Ask to stop; True unless the job has ended. A queued job is stopped here at once."""
        with self._condition:
            state = self.machine.state
            if state.is_final:
                return False
            self._stop_requested = True
            self._stop_reason = reason
            if state is JobState.QUEUED:
                before_start = reason or "stopped by the user before it started"
                self.machine.move(JobState.STOPPED, before_start)
            self._condition.notify_all()
            return True

    @property
    def stop_requested(self) -> bool:
        with self._condition:
            return self._stop_requested

    @property
    def stop_reason(self) -> str:
        with self._condition:
            return self._stop_reason

    def wait_paused(self, timeout: float | None = None) -> bool:
        return self._waiting.wait(timeout)

    # ---- the training thread ----------------------------------------------------------------

    def between_steps(self, step: int) -> tuple[bool, float]:
        """Honour pause and single steps before the next step.

        Returns (go on?, seconds spent paused); go-on is False when a stop was asked for.
        """
        with self._condition:
            if self._stop_requested:
                return False, 0.0
            if not self._pause_requested:
                return True, 0.0
            paused_at = time.perf_counter()
            reason = f"paused by the user at step {step}"
            if self.machine.state is JobState.RUNNING:
                self.machine.move(JobState.PAUSED, reason)
            else:  # back from a single step, still paused
                self.machine.explain(reason)
            self._waiting.set()
            while True:
                if self._stop_requested:
                    go = False
                    break
                if not self._pause_requested:
                    go = True
                    break
                if self._single_steps > 0:
                    self._single_steps -= 1
                    go = True
                    break
                self._condition.wait()
            self._waiting.clear()
        return go, time.perf_counter() - paused_at
