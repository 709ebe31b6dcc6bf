"""The training engine: TrainConfig, and a process-wide JobManager that queues and runs Jobs.

Jobs live in the manager, not in a page, so they outlive page switches and reruns. The trainer knows
tasks (deeparch.tasks.base), never model families.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeparch.checkpoint import files as checkpoint
from deeparch.config import FieldSpec, check_value, coerce, config_to_dict, field_specs, hp
from deeparch.data.catalogue import dataset_info, list_datasets
from deeparch.engine.job import ACTIVE_STATES, SNAPSHOT_SAMPLES, Job
from deeparch.engine.loop import take_snapshot
from deeparch.engine.optim import (
    DEVICE_CHOICES,
    OPTIMIZERS,
    choose_device,
    default_max_running,
)
from deeparch.engine.prepare import prepare
from deeparch.engine.threads import run_in_fresh_thread
from deeparch.errors import ConfigError, DeeparchError, UnknownNameError
from deeparch.models import build_config, get_arch, list_archs
from deeparch.models.registry import check_compatible

__all__ = [
    "Job",
    "JobManager",
    "TrainConfig",
    "evaluate_checkpoint",
    "get_manager",
    "train_defaults",
    "train_field_specs",
]

logger = logging.getLogger(__name__)

# The fields of TrainConfig that are hyperparameters of training (widgets); the others say what
# is trained on what.
IDENTITY_FIELDS = ("arch", "dataset", "arch_config")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: which architecture on which data, and how to optimise it."""

    arch: str = hp("mlp", "Architecture name, one of deeparch.models.list_archs()")
    dataset: str | None = hp(None, "Dataset name; None trains on the architecture's default")
    arch_config: dict = dataclasses.field(
        default_factory=dict,
        metadata={"help": "The architecture's own hyperparameters (its config's fields)"},
    )
    optimizer: str = hp(
        "adam",
        "Update rule: sgd (with momentum 0.9), adam, adamw, rmsprop or adagrad",
        choices=tuple(OPTIMIZERS),
    )
    lr: float = hp(
        1e-3,
        "Learning rate: the step size of each update; too large diverges",
        min=1e-6,
        max=10.0,
        log=True,
    )
    batch_size: int = hp(
        64,
        "Samples per update: larger means smoother gradients and more samples/s",
        min=1,
        max=4096,
    )
    epochs: int = hp(2, "Passes over the training set", min=1, max=1000)
    weight_decay: float = hp(
        0.0,
        "L2 penalty on the weights, applied by the optimizer (shrinks weights every step)",
        min=0.0,
        max=1.0,
        step=1e-4,
    )
    l1: float = hp(
        0.0,
        "L1 penalty on the weights added to the loss (drives weights to exactly zero)",
        min=0.0,
        max=1.0,
        step=1e-5,
    )
    grad_clip: float = hp(
        0.0,
        "Clip the gradient norm to this value (0: off); tames exploding gradients in RNNs",
        min=0.0,
        max=1000.0,
        step=0.1,
    )
    seed: int = hp(
        0, "Seed of initial weights, shuffling and noise: same seed, same run", min=0, max=2**31 - 1
    )
    device: str = hp(
        "auto",
        "Where to train: auto takes a CUDA GPU, then Apple MPS, then the CPU",
        choices=DEVICE_CHOICES,
    )
    snapshot_every: int = hp(
        50,
        "Steps between snapshots (reconstructions, samples, confusion matrix)",
        min=1,
        max=100_000,
    )
    max_steps: int = hp(
        0, "Stop after this many steps (0: train all epochs)", min=0, max=10_000_000
    )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that TrainConfig.from_dict turns back into an equal config."""
        values = config_to_dict(self)
        values["arch_config"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.arch_config.items()
        }
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A validated config from a dict (values may be strings, as from a CLI or a URL)."""
        values = dict(values)
        specs = {s.name: s for s in train_field_specs()}
        known = set(specs) | set(IDENTITY_FIELDS)
        unknown = sorted(set(values) - known)
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(unknown[0], values[unknown[0]], "a TrainConfig field: " + names)
        typed: dict[str, Any] = {}
        for name, value in values.items():
            if name in specs:
                typed[name] = coerce(specs[name], value)
        arch_config = values.get("arch_config") or {}
        if not isinstance(arch_config, dict):
            raise ConfigError("arch_config", arch_config, "a dict of the architecture's fields")
        dataset = values.get("dataset") or None
        config = cls(
            arch=str(values.get("arch", "mlp")),
            dataset=None if dataset is None else str(dataset),
            # JSON turned tuples (layer widths) into lists; the architecture's configs hold tuples.
            arch_config={k: tuple(v) if isinstance(v, list) else v for k, v in arch_config.items()},
            **typed,
        )
        config.validate()
        # Typed values ("32" from a CLI becomes (32,)), so configs compare and save the same.
        typed_arch = spec_config(config)
        arch_values = {k: getattr(typed_arch, k) for k in config.arch_config}
        return dataclasses.replace(config, arch_config=arch_values)

    def validate(self) -> None:
        """Raise ConfigError naming the field for a bad value, name or combination."""
        for spec in train_field_specs():
            check_value(spec, coerce(spec, getattr(self, spec.name)))
        try:
            spec = get_arch(self.arch)
        except UnknownNameError:
            raise ConfigError("arch", self.arch, "one of " + ", ".join(list_archs())) from None
        dataset = self.dataset or spec.default_dataset
        try:
            info = dataset_info(dataset)
        except UnknownNameError:
            raise ConfigError("dataset", dataset, "one of " + ", ".join(list_datasets())) from None
        arch_config = spec_config(self)
        check_compatible(spec, info)
        if spec.check is not None:
            spec.check(arch_config, info)
        choose_device(self.device)


def spec_config(config: TrainConfig) -> Any:
    """The architecture's validated config (ConfigError names the architecture's field)."""
    return build_config(config.arch, config.arch_config)


def train_field_specs() -> list[FieldSpec]:
    """The training hyperparameters of TrainConfig, for widgets (arch and dataset left out)."""
    return [s for s in field_specs(TrainConfig) if s.name not in IDENTITY_FIELDS]


def train_defaults(arch: str) -> dict[str, Any]:
    """The training settings an architecture starts from: TrainConfig's, with its own on top."""
    return {**{s.name: s.default for s in train_field_specs()}, **get_arch(arch).train_defaults}


def evaluate_checkpoint(path: str | Path, dataset: str | None = None) -> dict[str, Any]:
    """Validation metrics of a checkpoint, on its own dataset or on another of the same shape."""
    tensors, meta = checkpoint.read_checkpoint(path)
    weights_path = checkpoint.checkpoint_paths(path)[0]
    try:
        config = TrainConfig.from_dict(meta["train_config"])
    except ConfigError as error:
        raise DeeparchError(
            f"{weights_path} has a train_config deeparch cannot use: {error}"
        ) from None
    if dataset:
        config = TrainConfig.from_dict({**config.to_dict(), "dataset": dataset})
    prepared = prepare(config)
    model_state, _ = checkpoint.split_tensors(tensors)
    checkpoint.load_model_state(prepared.model, model_state, prepared.config.arch)
    metrics = prepared.task.evaluate(prepared.x_val, prepared.y_val)
    return {
        "checkpoint": str(weights_path),
        "arch": prepared.config.arch,
        "dataset": prepared.dataset_name,
        "val_samples": len(prepared.x_val),
        **metrics,
    }


# ---- the manager --------------------------------------------------------------------------------


class JobManager:
    """Holds jobs by id, runs at most `max_running` at once, stops jobs whose owner went away."""

    def __init__(self, max_running: int | None = None, heartbeat_timeout: float = 600.0) -> None:
        self.max_running = max_running if max_running is not None else default_max_running()
        self.heartbeat_timeout = float(heartbeat_timeout)  # seconds; 0 switches expiry off
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._ids = itertools.count(1)
        self._watchdog: threading.Thread | None = None

    # -- jobs --

    def submit(
        self, config: TrainConfig, owner: str | None = None, resume: str | Path | None = None
    ) -> Job:
        """Validate, build, dry-run one batch, then queue the job (it starts when a slot frees).

        `resume` continues from a checkpoint of the same architecture: weights, optimizer state,
        counters and history, so the run continues as if it had never stopped.
        """
        # Prepared in a thread that exits afterwards, so the caller's thread keeps no OpenMP team
        # that would slow the training thread down (deeparch.engine.threads explains).
        job = run_in_fresh_thread(self._prepare_job, config, owner, resume, name="deeparch-prepare")
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
        self._ensure_watchdog()
        self._schedule()
        return job

    def _prepare_job(
        self, config: TrainConfig, owner: str | None, resume: str | Path | None
    ) -> Job:
        job = Job(self._new_id(), prepare(config), owner, self)
        if resume is not None:
            tensors, meta = checkpoint.read_checkpoint(resume)
            if meta.get("arch") != config.arch:
                raise ConfigError("arch", config.arch, f"{meta.get('arch')!r}, the checkpoint's")
            job.restore(tensors, meta)
        return job

    def load_checkpoint(self, path: str | Path, owner: str | None = None) -> Job:
        """A finished job holding a checkpoint's model, config and metrics, to show or compare."""
        return run_in_fresh_thread(self._load_job, path, owner, name="deeparch-load")

    def _load_job(self, path: str | Path, owner: str | None) -> Job:
        tensors, meta = checkpoint.read_checkpoint(path)
        weights_path = checkpoint.checkpoint_paths(path)[0]
        try:
            config = TrainConfig.from_dict(meta["train_config"])
        except ConfigError as error:
            raise DeeparchError(
                f"{weights_path} has a train_config deeparch cannot use: {error}"
            ) from None
        prepared = prepare(config, dry_run=False)
        job = Job(self._new_id(), prepared, owner, self)
        job.restore(tensors, meta)
        job._set_state("finished", f"loaded from {weights_path}")
        job._done.set()
        # One snapshot, so a page shows a loaded model the way it shows a trained one.
        take_snapshot(job, prepared.x_val[:SNAPSHOT_SAMPLES], prepared.y_val[:SNAPSHOT_SAMPLES])
        with self._lock:
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise UnknownNameError("job", job_id, list(self._jobs))
            return self._jobs[job_id]

    def jobs(self, owner: str | None = None) -> list[Job]:
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

    def queue_position(self, job: Job) -> int:
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
            return sum(1 for j in self._jobs.values() if j.state in ("running", "paused"))

    # -- scheduling --

    def _new_id(self) -> str:
        # A counter for people, a random part so that nobody reaches another session's job (a
        # ?job=<id> link adopts the job's owner) by guessing the next number.
        return f"job-{next(self._ids)}-{secrets.token_hex(4)}"

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and self.running_count() < self.max_running:
                job = self._queue.pop(0)
                job._start()

    def _dequeue(self, job: Job) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)

    def _job_ended(self, job: Job) -> None:
        self._schedule()

    # -- heartbeats --

    def expire_abandoned(self) -> list[Job]:
        """Stop active jobs whose owner has not looked for heartbeat_timeout seconds."""
        if self.heartbeat_timeout <= 0:
            return []
        now = time.monotonic()
        expired = []
        for job in self.jobs():
            if job.owner is None or job.state not in ACTIVE_STATES:
                continue
            if now - job.last_seen > self.heartbeat_timeout:
                reason = (
                    f"stopped at step {job.global_step}: its owner has not looked at it for "
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
    """The process-wide manager. DEEPARCH_MAX_JOBS and DEEPARCH_HEARTBEAT_S configure it."""
    global _manager
    with _manager_lock:
        if _manager is None:
            max_jobs = os.environ.get("DEEPARCH_MAX_JOBS")
            timeout = os.environ.get("DEEPARCH_HEARTBEAT_S")
            _manager = JobManager(
                max_running=int(max_jobs) if max_jobs else None,
                heartbeat_timeout=float(timeout) if timeout else 600.0,
            )
        return _manager
