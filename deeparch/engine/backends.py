"""Backends: what creates and runs jobs for the manager. The thread backend trains in this process.

A backend turns a validated TrainConfig into a job that implements deeparch.engine.handle.JobHandle
and has `start()`, which the manager calls when a training slot is free; the job tells its
scheduler (the manager) when it ends. The Ray backend (deeparch.engine.ray_backend) plugs in the
same way; make_backend chooses by the class settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.evaluate import checkpoint_config
from deeparch.engine.handle import JobHandle
from deeparch.engine.job import Scheduler, ThreadJob, loaded_job
from deeparch.engine.prepare import prepare
from deeparch.engine.recipe import JobRecipe
from deeparch.engine.threads import run_in_fresh_thread
from deeparch.settings import ClassSettings


class SchedulableJob(JobHandle, Protocol):
    """A job as the manager holds it: a JobHandle it can start."""

    scheduler: Any

    def start(self) -> bool: ...

    def set_aside(self) -> bool:
        """Told by the manager that the job waits for a slot: let go of what start() can build
        again; True when it let go of something."""
        ...


class Backend(Protocol):
    name: str

    def create(
        self,
        job_id: str,
        config: TrainConfig,
        owner: str | None,
        scheduler: Scheduler,
        resume: str | Path | None = None,
        weights_from: WeightsFrom | None = None,
    ) -> SchedulableJob: ...

    def load(self, job_id: str, path: str | Path, owner: str | None) -> JobHandle: ...

    def shutdown(self) -> None: ...


class ThreadBackend:
    """Jobs as threads of this process (the default: a single student never needs more)."""

    name = "threads"

    def create(
        self,
        job_id: str,
        config: TrainConfig,
        owner: str | None,
        scheduler: Scheduler,
        resume: str | Path | None = None,
        weights_from: WeightsFrom | None = None,
    ) -> ThreadJob:
        # Prepared in a thread that exits afterwards, so the caller's thread keeps no OpenMP team
        # that would slow the training thread down (deeparch.engine.threads explains).
        return run_in_fresh_thread(
            self._create, job_id, config, owner, scheduler, resume, weights_from,
            name="deeparch-prepare",
        )  # fmt: skip

    def _create(
        self,
        job_id: str,
        config: TrainConfig,
        owner: str | None,
        scheduler: Scheduler,
        resume: str | Path | None,
        weights_from: WeightsFrom | None,
    ) -> ThreadJob:
        recipe = JobRecipe(config, resume, weights_from)
        prepared, resumed = recipe.build(dry_run=True)
        job = ThreadJob(job_id, prepared, owner, scheduler, recipe=recipe)
        if resumed is not None:
            job.restore(*resumed)
        return job

    def load(self, job_id: str, path: str | Path, owner: str | None) -> ThreadJob:
        return run_in_fresh_thread(self._load, job_id, path, owner, name="deeparch-load")

    def _load(self, job_id: str, path: str | Path, owner: str | None) -> ThreadJob:
        tensors, meta = checkpoint.read_checkpoint(path)
        config = checkpoint_config(path, meta)
        prepared = prepare(config, dry_run=False)
        source = str(checkpoint.checkpoint_paths(path)[0])
        return loaded_job(job_id, prepared, tensors, meta, owner, source)

    def shutdown(self) -> None:
        """Threads are daemons of this process: nothing to release."""


def make_backend(settings: ClassSettings) -> Backend:
    """The backend the class settings ask for: threads of this process, or a Ray cluster's
    workers (ray_address or RAY_ADDRESS, else a local Ray), ray_cpus_per_job and
    ray_gpus_per_job reserved for each worker, ray_jobs_per_worker jobs taking turns on one."""
    if settings.backend != "ray":
        return ThreadBackend()
    # late import: ray is large and optional; a server on the thread backend never loads it
    from deeparch.engine.ray_backend import RayBackend

    return RayBackend(
        local=ThreadBackend(),
        cpus_per_job=settings.ray_cpus_per_job,
        gpus_per_job=settings.ray_gpus_per_job,
        address=settings.ray_address,
        jobs_per_worker=settings.ray_jobs_per_worker,
        slice_s=settings.slice_s,
    )
