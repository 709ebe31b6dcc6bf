"""The Ray backend's worker: a process that trains the jobs a RayBackend hands it.

Worker is a plain class; deeparch.engine.ray_backend makes it a threaded Ray actor, so that reads
and controls are answered while a job trains. Each job it trains is a WorkerJob: the thread
backend's ThreadJob (prepare, the Trainer and its callbacks, JobControl, checkpointing), whose
training thread runs here, in the worker's process. A worker trains one job at a time, or, with
`jobs_at_once` above one, that many taking turns on its cores as the thread backend's jobs do
(deeparch.engine.threads: TimeSlices, ThreadBudget), away from the web server's interpreter.
Nothing in this module imports ray.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.checkpointing import WeightsFrom, checkpoint_contents, load_weights_from
from deeparch.engine.config import TrainConfig
from deeparch.engine.job import ThreadJob
from deeparch.engine.mirror import changes_since
from deeparch.engine.prepare import prepare
from deeparch.engine.state import JobState
from deeparch.engine.threads import (
    BudgetedGate,
    ThreadBudget,
    TimeSlices,
    give_freed_memory_back,
    run_in_fresh_thread,
)
from deeparch.errors import DeeparchError

# (tensors, description) of a checkpoint to continue from, as deeparch.checkpoint reads them.
Resume = tuple[dict[str, torch.Tensor], dict[str, Any]]
CONTROLS = ("pause", "resume", "step", "stop")


class Start(NamedTuple):
    """What a job starts from besides its seed, read on the server and handed to the worker by
    Ray (ray.put, then an argument): a worker of a cluster may not see the server's files, and a
    lesson's checkpoint of its first stage lives in a temporary folder only until the submit.

    `resume` continues a checkpoint (weights, optimizer state, counters, history); `weights_from`
    names the parts a new run takes from one, `weights` are that checkpoint's model weights
    (deeparch.engine.checkpointing.read_weights).
    """

    resume: Resume | None = None
    weights_from: WeightsFrom | None = None
    weights: dict[str, torch.Tensor] | None = None


class Status(NamedTuple):
    """A job's state as its worker last saw it; `version` counts its state changes."""

    version: int
    state: str
    reason: str
    step: int


class WorkerJob(ThreadJob):
    """A ThreadJob that numbers its state changes, so that a caller can wait for the next one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.version = 0
        super().__init__(*args, **kwargs)

    def _publish_state(self, state: JobState, reason: str) -> None:
        super()._publish_state(state, reason)
        # The state machine calls this under its condition (deeparch.engine.state).
        self.version += 1
        self.machine.condition.notify_all()

    def status(self) -> Status:
        with self.machine.condition:
            state, reason = self.machine.read()
            return Status(self.version, str(state), reason, self.trainer.progress.global_step)

    def wait_for_change(self, version: int, timeout: float) -> Status:
        """The status once it differs from `version`, or after `timeout` seconds."""
        with self.machine.condition:
            self.machine.condition.wait_for(lambda: self.version != version, timeout)
            return self.status()


def build_job(job_id: str, config: TrainConfig, start: Start | None) -> WorkerJob:
    """Prepare (one dry-run batch included) a job, take a checkpoint's parts or restore one, as
    the thread backend does."""
    prepared = prepare(config)
    if start is not None and start.weights_from is not None:
        load_weights_from(prepared.model, start.weights_from, config.arch, start.weights)
    job = WorkerJob(job_id, prepared)
    if start is not None and start.resume is not None:
        job.restore(*start.resume)
    return job


class Worker:
    """One worker process's jobs by id. A DeeparchError is returned, not raised, so that it
    reaches the server as itself rather than wrapped in Ray's RayTaskError.

    With `jobs_at_once` above one, its jobs take turns: one computes at a time, with all of the
    worker's threads, for `slice_s` seconds (a first turn shorter and ahead of the others, so a
    newly started job shows its first loss point at once).
    """

    def __init__(self, threads: int, jobs_at_once: int = 1, slice_s: float = 0.0) -> None:
        # Ray reserves num_cpus for this actor; torch uses as many threads, at least one.
        threads = max(1, threads)
        torch.set_num_threads(threads)
        self._jobs: dict[str, WorkerJob] = {}
        self._lock = threading.Lock()
        self.jobs_at_once = max(1, int(jobs_at_once))
        self._slices = TimeSlices(1, slice_s) if self.jobs_at_once > 1 else None
        self._budget = ThreadBudget(threads)

    def where(self) -> tuple[str, int]:
        """(host name, process id): which machine and process train here."""
        return socket.gethostname(), os.getpid()

    def warm(self) -> str:
        """Build the default run once and keep nothing of it but what later jobs reuse (the
        parsed dataset, torch.optim's first import of torch._dynamo: deeparch.warmup), so that
        a student's first Start on a new worker does not wait for them; its architecture."""
        config = TrainConfig()
        run_in_fresh_thread(prepare, config, False, name="deeparch-warm")
        return config.arch

    def jobs_held(self) -> int:
        """Jobs this worker holds: the one it trains, or one whose end has not reached the
        server yet (final() forgets it)."""
        with self._lock:
            return len(self._jobs)

    def _job(self, job_id: str) -> WorkerJob:
        with self._lock:
            return self._jobs[job_id]

    @staticmethod
    def _build(job_id: str, config: TrainConfig, start: Start | None) -> WorkerJob:
        # In a thread that ends afterwards: the actor's call threads live on, and one that ran
        # torch's parallel kernels would keep an OpenMP team (deeparch.engine.threads explains).
        return run_in_fresh_thread(build_job, job_id, config, start, name="deeparch-prepare")

    def describe(
        self, job_id: str, config: TrainConfig, start: Start | None
    ) -> dict[str, Any] | DeeparchError:
        """Build the job as `begin` will, and return its first snapshot; keep nothing."""
        try:
            return self._build(job_id, config, start).snapshot()
        except DeeparchError as error:
            return error

    def begin(
        self,
        job_id: str,
        config: TrainConfig,
        start: Start | None,
        hooks: list[Callable[[WorkerJob], Any]],
    ) -> Status | DeeparchError:
        """Build the job, call each hook on it, and start its training thread."""
        try:
            job = self._build(job_id, config, start)
        except DeeparchError as error:
            return error
        for hook in hooks:
            hook(job)
        if self._slices is not None:
            control = job.control
            job.gate = BudgetedGate(
                job.gate, job_id, self._slices, self._budget, lambda: control.stop_requested
            )
            job.scheduler = self  # its turn is given back when it ends (job_ended)
        with self._lock:
            self._jobs[job_id] = job
        job.start()
        return job.status()

    # The jobs' scheduler on the worker (deeparch.engine.job.Scheduler); the server's manager
    # queues them.

    def queue_position(self, job: WorkerJob) -> int:
        """0: a job on a worker has left the manager's queue (a wait for a turn is no queue)."""
        return 0

    def job_ended(self, job: WorkerJob) -> None:
        """Called by a job of this worker as it ends, however it ends: its turn goes to the next
        (the manager does the same for the thread backend's jobs)."""
        if self._slices is not None:
            self._slices.release(job.id)
        self._budget.leave(job.id)

    def watch(self, job_id: str, version: int, timeout: float) -> Status:
        return self._job(job_id).wait_for_change(version, timeout)

    def control(self, job_id: str, action: str, reason: str = "") -> tuple[bool, Status]:
        if action not in CONTROLS:
            raise ValueError(f"unknown control {action!r}; known: {', '.join(CONTROLS)}")
        job = self._job(job_id)
        done = job.stop(reason) if action == "stop" else getattr(job, action)()
        return done, job.status()

    def wait_paused(self, job_id: str, timeout: float) -> tuple[bool, Status]:
        job = self._job(job_id)
        return job.wait_paused(timeout), job.status()

    def changes(self, job_id: str, cursor: dict[str, Any]) -> dict[str, Any]:
        """What a mirror at `cursor` lacks of the job's snapshot, and the job's status."""
        job = self._job(job_id)
        status = job.status()
        return {"status": status, **changes_since(job.snapshot(), cursor)}

    def model_copy(self, job_id: str) -> nn.Module:
        return self._job(job_id).model_copy()

    def checkpoint(self, job_id: str) -> Resume:
        job = self._job(job_id)
        return checkpoint_contents(job.trainer, job.log, job.state, job.dataset)

    def initial_model(self, config: TrainConfig, start: Start | None = None) -> nn.Module:
        """A queued job's weights: the model its seed builds, with the parts or the checkpoint
        it starts from, in eval mode, on the CPU (what the thread backend's queued job holds)."""
        prepared = run_in_fresh_thread(prepare, config, False, name="deeparch-prepare")
        model = prepared.template
        if start is not None and start.weights_from is not None:
            load_weights_from(model, start.weights_from, config.arch, start.weights)
        if start is not None and start.resume is not None:
            state, _optimizer = checkpoint.split_tensors(start.resume[0])
            checkpoint.load_model_state(model, state, config.arch)
        return model

    def call(self, job_id: str, function: Callable[[WorkerJob], Any]) -> Any:
        """function(job) here, for tests and diagnostics."""
        return function(self._job(job_id))

    def final(self, job_id: str, cursor: dict[str, Any]) -> dict[str, Any]:
        """An ended job's last changes, weights and checkpoint contents; then it is forgotten."""
        job = self._job(job_id)
        job.wait()
        ended = {
            "changes": self.changes(job_id, cursor),
            "model": job.model_copy(),
            "checkpoint": self.checkpoint(job_id),
        }
        with self._lock:
            del self._jobs[job_id]
        del job
        # As the server does when a run ends: freed pages back to the system, or a worker that
        # trains a class's runs all hour only grows (measured: 1.3 to 2.3 GB in 410 runs).
        give_freed_memory_back()
        return ended
