"""A job training on a Ray worker, seen from the server: the Ray backend's JobHandle.

Its state is a local StateMachine kept current by a thread that follows the worker (a long-polled
`watch` call, answered at each change of state), its snapshot a SnapshotMirror refreshed by
increments when it is read, its controls are actor calls. When the job ends, its last changes,
weights and checkpoint contents come back here and its worker returns to the pool
(deeparch.engine.ray_backend). A worker that dies fails its job with a message; the others go on.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.checkpointing import WeightsFrom, read_resume, read_weights
from deeparch.engine.config import TrainConfig
from deeparch.engine.job import (
    Scheduler,
    checkpoint_target,
    snapshot_identity,
    waiting_reason,
)
from deeparch.engine.mirror import SnapshotMirror, changes_since
from deeparch.engine.ray_worker import Start, Status, WorkerJob
from deeparch.engine.recipe import JobRecipe
from deeparch.engine.state import JobState, StateMachine, StateView
from deeparch.errors import DeeparchError

logger = logging.getLogger(__name__)

WATCH_S = 30.0  # the longest a worker holds a watch call before answering "no change"
CONTROL_WAIT_S = 60.0  # how long a control waits for its job to reach its worker
STARTING_REASON = "starting on a Ray worker"


class RayJobError(DeeparchError):
    """What a Ray job cannot give: it has no worker (not started, or its worker died)."""


def ray_module() -> Any:
    import ray  # late import: ray is large and optional

    return ray


def read_start(
    resume: str | Path | None, weights_from: WeightsFrom | None, arch: str
) -> Start | None:
    """What a job starts from besides its seed, read on the server for its worker (which may not
    see the server's files); None for the seed alone."""
    if resume is not None:
        return Start(resume=read_resume(resume, arch))
    if weights_from is not None:
        return Start(weights_from=weights_from, weights=read_weights(weights_from, arch))
    return None


def is_worker_lost(error: BaseException) -> bool:
    """Whether a Ray call failed because its actor (process or node) died."""
    return isinstance(error, ray_module().exceptions.RayActorError)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Pool(Protocol):
    """What a job asks of the backend's workers (deeparch.engine.ray_backend.WorkerPool)."""

    closed: bool
    shared: bool  # a worker trains several jobs: one job's failure must not end it

    def acquire(self) -> Any: ...

    def release(self, worker: Any) -> None: ...

    def discard(self, worker: Any) -> None: ...

    def any(self) -> Any: ...

    def where(self, worker: Any, timeout: float = ...) -> tuple[str, int]: ...


class RayJob(StateView):
    """A job training on a Ray worker, as a JobHandle the manager can start."""

    def __init__(
        self,
        job_id: str,
        config: TrainConfig,
        owner: str | None,
        scheduler: Scheduler | None,
        pool: Pool,
        described: dict[str, Any],
        start_ref: Any = None,
        recipe: JobRecipe | None = None,
    ) -> None:
        """`start_ref`: what it starts from besides its seed (a ray_worker.Start: the checkpoint
        it resumes or the parts it takes), in Ray's object store; `recipe` says where that was
        read from, so that a queued job can let go of it (set_aside)."""
        self.id = job_id
        self.owner = owner
        self.config = config
        self.arch = config.arch
        self.dataset = described["dataset"]
        self.task_name = described["task"]
        self.device = described["device"]
        self.scheduler = scheduler
        self.last_seen = time.monotonic()
        self.machine = StateMachine(job_id)
        self._pool = pool
        self._start_ref = start_ref  # ObjectRef of a ray_worker.Start; None: the seed alone
        self._recipe = recipe
        self._mirror = SnapshotMirror()
        self._mirror.apply(changes_since(described, {}))
        self._lock = threading.Lock()  # guards the fields below up to _pending_stop
        self._sent = False  # begin() was sent to a worker, with the hooks so far
        self._begun = False  # the worker has the job
        self._hooks: list[Callable[[WorkerJob], Any]] = []
        self._pending_stop: str | None = None
        self._settled = threading.Event()  # begin() has answered, either way
        self._refresh_lock = threading.Lock()  # one read of the worker at a time
        self._version = -1
        self._step = 0
        self._worker: Any = None
        self._worker_lost = False  # it died, or failed unexpectedly: not to be reused
        self._final_model: nn.Module | None = None
        self._final_checkpoint: tuple[dict, dict] | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- state ------------------------------------------------------------------------------

    def _apply(self, status: Status) -> None:
        """Follow the worker's state up to its end (only the following thread ends the job)."""
        with self.machine.condition:
            if status.version < self._version:
                return  # an answer older than one already applied
            self._version, self._step = status.version, status.step
            state, current = JobState(status.state), self.machine.state
            if state.is_final or current.is_final:
                return
            if state is current:
                if status.reason != self.machine.reason:
                    self.machine.explain(status.reason)
            else:
                self.machine.move(state, status.reason)

    # ---- starting and following -------------------------------------------------------------

    def set_aside(self) -> bool:
        """A queued Ray job holds no worker and no model (it was checked on a worker, which kept
        nothing); what it lets go of is the checkpoint it resumes, held in Ray's object store,
        read again from its own copy when it starts. False when there is none."""
        with self.machine.condition:
            waiting = self.state is JobState.QUEUED and self._recipe is not None
            if not waiting or self._start_ref is None:
                return False
            try:
                self._recipe = self._recipe.staged()
            except (OSError, DeeparchError) as error:  # no room for the copy: keep the object
                logger.warning("job %s waits holding its checkpoint: %s", self.id, error)
                return False
            self._start_ref = None
        return True

    def start(self) -> bool:
        """Called by the manager when a slot is free; False when the job no longer waits."""
        with self.machine.condition:
            if self.state is not JobState.QUEUED:
                return False
            self.machine.move(JobState.RUNNING, STARTING_REASON)
        self._worker = self._pool.acquire()
        self._thread = threading.Thread(
            target=self._follow, name=f"deeparch-ray-{self.id}", daemon=True
        )
        self._thread.start()
        return True

    def _follow(self) -> None:
        try:
            status = self._begin()
            if status is not None:
                while not JobState(status.state).is_final:
                    call = self._worker.watch.remote(self.id, status.version, WATCH_S)
                    status = ray_module().get(call)
                    self._apply(status)
                self._finish()
        except Exception as error:  # noqa: BLE001  (one job's failure must not end the server)
            self._failed(error)
        finally:
            self._settled.set()
            self._start_ref = None
            self._release_recipe()
            if self._worker_lost:
                self._pool.discard(self._worker)
            else:
                self._pool.release(self._worker)
            # The next queued job starts before wait() returns, as on the thread backend.
            if self.scheduler is not None:
                self.scheduler.job_ended(self)
            self._done.set()

    def _release_recipe(self) -> None:
        if self._recipe is not None:
            self._recipe.release()

    def _read_start_again(self) -> bool:
        """Put a set-aside job's checkpoint back into the object store; False (the job failed,
        its healthy worker kept) when its copy cannot be read."""
        recipe = self._recipe
        if self._start_ref is not None or recipe is None:
            return True
        try:
            start = read_start(recipe.resume, recipe.weights_from, self.config.arch)
        except (OSError, DeeparchError) as error:
            self._end(JobState.FAILED, f"could not read the checkpoint it starts from: {error}")
            return False
        self._start_ref = ray_module().put(start) if start is not None else None
        return True

    def _begin(self) -> Status | None:
        ray = ray_module()
        if not self._read_start_again():
            return None
        with self._lock:
            self._sent = True
            hooks = list(self._hooks)
        for attempt in (1, 2):
            call = self._worker.begin.remote(self.id, self.config, self._start_ref, hooks)
            try:
                answer = ray.get(call)
                break
            except Exception as error:
                if attempt == 2 or not is_worker_lost(error) or self._pool.closed:
                    raise
                # The worker died while idle: once, take another.
                self._pool.discard(self._worker)
                self._worker = self._pool.acquire()
        if isinstance(answer, DeeparchError):
            self._end(JobState.FAILED, f"could not start on its Ray worker: {answer}")
            return None
        with self._lock:
            self._begun = True
            pending_stop = self._pending_stop
        self._apply(answer)
        self._settled.set()
        if pending_stop is not None:
            self._control("stop", pending_stop)
        return answer

    def _finish(self) -> None:
        """Bring the ended job's last changes, weights and checkpoint here, then end it."""
        with self._refresh_lock:
            ended = ray_module().get(self._worker.final.remote(self.id, self._mirror.cursor()))
            self._mirror.apply(ended["changes"])
            self._final_model = ended["model"]
            self._final_checkpoint = ended["checkpoint"]
        status = ended["changes"]["status"]
        self._step = status.step
        self._end(JobState(status.state), status.reason)

    def _end(self, state: JobState, reason: str) -> None:
        with self.machine.condition:
            if not self.machine.state.is_final:
                self.machine.move(state, reason)

    def _failed(self, error: Exception) -> None:
        step = self._step
        # A worker that failed unexpectedly is not reused, unless other jobs train on it.
        self._worker_lost = is_worker_lost(error) or not self._pool.shared
        if not is_worker_lost(error):
            logger.warning("job %s failed on the Ray backend", self.id, exc_info=True)
            message = f"{type(error).__name__} at step {step}: {first_line(error)}"
            self._end(JobState.FAILED, message)
            return
        if self._pool.closed:
            self._end(JobState.STOPPED, f"stopped at step {step}: the Ray backend shut down")
            return
        try:
            host, pid = self._pool.where(self._worker, timeout=1.0)
            worker = f"its Ray worker (process {pid} on {host})"
        except Exception:  # noqa: BLE001  (where it ran is a detail of the message)
            worker = "its Ray worker"
        self._end(
            JobState.FAILED,
            f"{worker} died at step {step} ({first_line(error)}); the other jobs go on: start "
            "this one again",
        )

    # ---- control ----------------------------------------------------------------------------

    def _wait_begun(self, timeout: float = CONTROL_WAIT_S) -> bool:
        """Whether the worker has the job and it has not ended (waiting for its begin call)."""
        if self._worker is None:
            return False  # never started
        self._settled.wait(timeout)
        with self._lock:
            return self._begun and not self._done.is_set()

    def _control(self, action: str, reason: str = "") -> bool:
        if self.state.is_final or not self._wait_begun():
            return False
        try:
            done, status = ray_module().get(self._worker.control.remote(self.id, action, reason))
        except Exception:  # noqa: BLE001  (the job ended or its worker died: the follower says)
            logger.debug("job %s: %s failed", self.id, action, exc_info=True)
            return False
        self._apply(status)
        return done

    def pause(self) -> bool:
        return self.state is JobState.RUNNING and self._control("pause")

    def resume(self) -> bool:
        return self.state in (JobState.RUNNING, JobState.PAUSED) and self._control("resume")

    def step(self) -> bool:
        return self.state in (JobState.RUNNING, JobState.PAUSED) and self._control("step")

    def stop(self, reason: str = "") -> bool:
        with self.machine.condition:
            state = self.state
            if state.is_final:
                return False
            if state is JobState.QUEUED:
                before_start = reason or "stopped by the user before it started"
                self.machine.move(JobState.STOPPED, before_start)
        if state is JobState.QUEUED:
            # It never started: no follower will end it, so leave the queue here.
            self._release_recipe()
            if self.scheduler is not None:
                self.scheduler.job_ended(self)
            self._done.set()
            return True
        with self._lock:
            if not self._begun:
                self._pending_stop = reason  # sent as soon as the worker has the job
                return True
        return self._control("stop", reason)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def wait_paused(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._wait_begun(CONTROL_WAIT_S if timeout is None else timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            call = self._worker.wait_paused.remote(self.id, left)
            paused, status = ray_module().get(call)
        except Exception:  # noqa: BLE001  (the job ended or its worker died: not paused)
            return False
        self._apply(status)
        return paused

    def queue_position(self) -> int:
        return self.scheduler.queue_position(self) if self.scheduler is not None else 0

    def call_in_worker(self, function: Callable[[WorkerJob], Any]) -> Any:
        """function(job) on the worker's WorkerJob (a ThreadJob): now if it trains, else just
        before it starts (then None here). For tests and diagnostics; it travels by pickle."""
        with self._lock:
            if not self._sent:
                self._hooks.append(function)
                return None
        if not self._wait_begun():
            raise RayJobError(f"job {self.id} is not on a worker ({self.reason})")
        return ray_module().get(self._worker.call.remote(self.id, function))

    def worker_process(self) -> tuple[str, int]:
        """(host, process id) of the worker training this job."""
        if self._worker is None:
            raise RayJobError(f"job {self.id} has not started on a worker")
        return self._pool.where(self._worker)

    # ---- reading ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Bring the mirror up to date with what the worker published since the last read."""
        with self._refresh_lock:
            with self._lock:
                reading = self._begun and self._final_model is None and not self._done.is_set()
            if not reading or self._worker_lost:
                return
            try:
                call = self._worker.changes.remote(self.id, self._mirror.cursor())
                changes = ray_module().get(call)
            except Exception:  # noqa: BLE001  (it just ended or its worker died: the follower says)
                logger.debug("job %s: reading its worker failed", self.id, exc_info=True)
                return
            self._mirror.apply(changes)
            self._apply(changes["status"])

    def snapshot(self, owner: str | None = None) -> dict[str, Any]:
        """A copy of everything published so far; reading it as the owner counts as a heartbeat."""
        if owner is not None and owner == self.owner:
            self.last_seen = time.monotonic()
        self._refresh()
        copied = self._mirror.copy()
        state, reason = self.machine.read()
        if copied.get("state") != str(state):  # the worker's own reason says more when it has one
            copied["state"], copied["reason"] = str(state), reason
        position = self.queue_position()
        if state is JobState.QUEUED and position:
            copied["reason"] = waiting_reason(position)
        copied.update(snapshot_identity(self, position))
        return copied

    def latest_snapshot(self) -> dict[str, Any] | None:
        self._refresh()
        return self._mirror.latest_snapshot()

    def model_copy(self) -> nn.Module:
        """A CPU copy of the current weights in eval mode (a queued job's: its seed's, with what
        it starts from)."""
        if self._final_model is None and self.state is JobState.QUEUED:
            start_ref = self._start_ref
            if start_ref is None and self._recipe is not None:  # set aside: from its own copy
                start = read_start(self._recipe.resume, self._recipe.weights_from, self.config.arch)
                start_ref = ray_module().put(start) if start is not None else None
            call = self._pool.any().initial_model.remote(self.config, start_ref)
            return ray_module().get(call)
        if self._final_model is None and self._wait_begun() and not self._worker_lost:
            try:
                return ray_module().get(self._worker.model_copy.remote(self.id))
            except Exception:  # noqa: BLE001  (it ended meanwhile: its weights come here)
                self._done.wait(CONTROL_WAIT_S)
        if self._final_model is None:
            raise RayJobError(f"the weights of job {self.id} are gone ({self.reason})")
        return copy.deepcopy(self._final_model)

    def save_checkpoint(self, dir_or_path: str | Path) -> Path:
        """Write <stem>.safetensors and <stem>.json here (on the server); returns the weights."""
        target = checkpoint_target(dir_or_path, self.arch, self.dataset)
        contents = self._final_checkpoint
        if contents is None and self._wait_begun() and not self._worker_lost:
            try:
                contents = ray_module().get(self._worker.checkpoint.remote(self.id))
            except Exception:  # noqa: BLE001  (it ended meanwhile: its checkpoint comes here)
                self._done.wait(CONTROL_WAIT_S)
                contents = self._final_checkpoint
        if contents is None:
            raise RayJobError(f"job {self.id} has no weights to save ({self.reason})")
        tensors, meta = contents
        return checkpoint.write_checkpoint(target, tensors, meta)
