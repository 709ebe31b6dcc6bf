"""The thread backend's job: a prepared run trained in a background thread of this process.

ThreadJob implements deeparch.engine.handle.JobHandle. Its state changes only through its state
machine (deeparch.engine.state); control requests go through JobControl, which the training loop
honours between steps; what it trains is a Trainer (deeparch.engine.loop). A job that has to
wait for a slot is set aside: it lets go of its model, task and optimizers and keeps its recipe
(deeparch.engine.recipe), from which its training thread builds it again when it starts.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.callbacks import default_callbacks, progress_counters
from deeparch.engine.checkpointing import checkpoint_contents, cpu_copy, restore_trainer
from deeparch.engine.control import JobControl
from deeparch.engine.divergence import (
    EXPLOSION_FACTOR,
    first_nonfinite_output,
    is_recurrent,
    remedy,
    weights_finite,
)
from deeparch.engine.loop import Gate, Progress, Trainer
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.prepare import Prepared, release_cuda_cache
from deeparch.engine.recipe import JobRecipe
from deeparch.engine.state import JobState, StateMachine, StateView
from deeparch.engine.threads import run_in_fresh_thread
from deeparch.errors import DeeparchError
from deeparch.tasks import Task

logger = logging.getLogger(__name__)


class Scheduler(Protocol):
    """What a job asks of the manager that queues it."""

    def queue_position(self, job: Any) -> int: ...

    def job_ended(self, job: Any) -> None: ...


def waiting_reason(position: int) -> str:
    """What a queued job says while it waits (position 1 starts next)."""
    return f"waiting for a free training slot: position {position} in the queue"


def snapshot_identity(job: Any, position: int) -> dict[str, Any]:
    """What a job's snapshot says of the job itself: what trains on what, where, its place."""
    return {
        "id": job.id,
        "arch": job.arch,
        "dataset": job.dataset,
        "task": job.task_name,
        "queue_position": position,
        "device": str(job.device),
        "config": job.config.to_dict(),
    }


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """What a job's page says of its model's size, published once so it needs no model later."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def checkpoint_target(dir_or_path: str | Path, arch: str, dataset: str) -> Path:
    """Where save_checkpoint writes: the path given, or <arch>-<dataset>.safetensors in a folder."""
    target = Path(dir_or_path)
    if target.suffix not in (checkpoint.SUFFIX, ".json"):
        target = target / f"{arch}-{dataset}{checkpoint.SUFFIX}"
    return target


class ThreadJob(StateView):
    """A training run in a thread. Control: pause, resume, step, stop. Read: snapshot, copies."""

    def __init__(
        self,
        job_id: str,
        prepared: Prepared,
        owner: str | None = None,
        scheduler: Scheduler | None = None,
        state: JobState = JobState.QUEUED,
        reason: str = "waiting for a free training slot",
        recipe: JobRecipe | None = None,
    ) -> None:
        """`recipe`: what `prepared` was built from, so that a queued job can be set aside."""
        self.id = job_id
        self.owner = owner
        self.config = prepared.config
        self.arch = prepared.config.arch
        self.dataset = prepared.dataset_name
        self.info = prepared.info
        self.arch_config = prepared.arch_config
        self.task_name = prepared.task_name
        self.device = prepared.device
        self.scheduler = scheduler
        self.log = MetricsLog()
        self.last_seen = time.monotonic()
        self.machine = StateMachine(job_id, state, reason, on_change=self._publish_state)
        self.log.update(state=str(state), reason=reason)
        self.control = JobControl(self.machine)
        self.gate: Gate = self.control  # what the loop asks between steps; the manager wraps it
        self.trainer: Trainer | None = Trainer(prepared, self.gate, default_callbacks(self.log))
        self.log.update(**progress_counters(self.trainer), **parameter_counts(prepared.model))
        self._prepared: Prepared | None = prepared
        self.recipe = recipe
        self._progress_set_aside: Progress | None = None  # its counters while it holds no trainer
        self._built = threading.Lock()  # guards _prepared, trainer and _hooks together
        self._hooks: list[Callable[[ThreadJob], Any]] = []  # called once it is built again
        self._done = threading.Event()
        if state.is_final:
            self._done.set()
        self._thread: threading.Thread | None = None

    # ---- state ------------------------------------------------------------------------------

    def _publish_state(self, state: JobState, reason: str) -> None:
        self.log.update(state=str(state), reason=reason)

    # The live model and task, for this backend's tests and the CLI; pages use model_copy().
    @property
    def model(self) -> nn.Module:
        return self._built_parts().model

    @property
    def task(self) -> Task:
        return self._built_parts().task

    @property
    def progress(self) -> Progress:
        trainer = self.trainer
        return trainer.progress if trainer is not None else self._progress_set_aside

    def _built_parts(self) -> Prepared:
        prepared = self._prepared
        if prepared is None:
            why = "waits for a training slot" if self.is_active() else "ended before it started"
            raise DeeparchError(
                f"job {self.id} {why}: a job's model is built when it starts (model_copy() gives "
                "the weights it starts from)"
            )
        return prepared

    # ---- waiting without a model ------------------------------------------------------------

    def set_aside(self) -> bool:
        """Let go of what was built to check this queued job (model, its initial copy, task,
        optimizers), keeping its recipe with its own copies of the checkpoints it starts from;
        start() builds it again. Called before anyone holds the job (the manager's submit);
        False when it does not wait, is set aside already, or has no recipe."""
        with self.machine.condition:  # start() moves it under the same condition
            if self.state is not JobState.QUEUED or self.recipe is None or self.trainer is None:
                return False
            try:
                self.recipe = self.recipe.staged()
            except (OSError, DeeparchError) as error:  # no room for its checkpoints' copies
                logger.warning("job %s waits holding its model: %s", self.id, error)
                return False
            with self._built:
                self._progress_set_aside = self.trainer.progress
                self._prepared, self.trainer = None, None
        if self.device.type != "cpu":
            release_cuda_cache()  # the device's memory to the jobs that train meanwhile
        return True

    def call_in_training(self, function: Callable[[ThreadJob], Any]) -> Any:
        """function(job) once its model and task exist: now if they do, else in its training
        thread just before the first step (then None here). For tests and diagnostics."""
        with self._built:
            if self.trainer is None:
                self._hooks.append(function)
                return None
        return function(self)

    def _build_again(self) -> None:
        """Build a set-aside job from its recipe (no dry run: it was checked when submitted), in
        a thread that exits afterwards (deeparch.engine.threads), then call the waiting hooks."""
        if self.trainer is None:
            build = self.recipe.build
            prepared, resume = run_in_fresh_thread(build, False, name="deeparch-prepare")
            trainer = Trainer(prepared, self.gate, default_callbacks(self.log))
            if resume is not None:
                restore_trainer(trainer, self.log, *resume)
            with self._built:
                self._prepared, self.trainer = prepared, trainer
                hooks, self._hooks = self._hooks, []
                for hook in hooks:
                    hook(self)
        self.trainer.gate = self.gate  # the manager's turns and threads, set after it was built

    # ---- control ----------------------------------------------------------------------------

    def pause(self) -> bool:
        return self.control.pause()

    def resume(self) -> bool:
        return self.control.resume()

    def step(self) -> bool:
        return self.control.step()

    def stop(self, reason: str = "") -> bool:
        was_queued = self.state is JobState.QUEUED
        stopped = self.control.stop(reason)
        if stopped and was_queued and self.state is JobState.STOPPED:
            # It never started: no thread will end it, so leave the queue here.
            self._release_recipe()
            if self.scheduler is not None:
                self.scheduler.job_ended(self)
            self._done.set()
        return stopped

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def wait_paused(self, timeout: float | None = None) -> bool:
        return self.control.wait_paused(timeout)

    def queue_position(self) -> int:
        return self.scheduler.queue_position(self) if self.scheduler is not None else 0

    # ---- reading ----------------------------------------------------------------------------

    def snapshot(self, owner: str | None = None) -> dict[str, Any]:
        """A copy of everything published so far; reading it as the owner counts as a heartbeat."""
        if owner is not None and owner == self.owner:
            self.last_seen = time.monotonic()
        copied = self.log.copy()
        state, reason = self.machine.read()
        copied["state"], copied["reason"] = str(state), reason
        position = self.queue_position()
        if state is JobState.QUEUED and position:
            copied["reason"] = waiting_reason(position)
        if state is JobState.RUNNING and self.control.pause_requested:
            copied["reason"] = "pausing after the current step"
        copied.update(snapshot_identity(self, position))
        copied["final_metrics"] = dict(self.progress.final_metrics)
        return copied

    def latest_snapshot(self) -> dict[str, Any] | None:
        return self.log.latest_snapshot()

    def model_copy(self) -> nn.Module:
        """A consistent CPU copy of the current weights in eval mode, taken between two steps
        (a set-aside job's: the weights it will start from, built from its recipe)."""
        with self._built:
            prepared, trainer = self._prepared, self.trainer
        if prepared is None or trainer is None:
            return run_in_fresh_thread(
                self.recipe.starting_model, self.info, name="deeparch-prepare"
            )
        with trainer.step_lock:
            state = cpu_copy(prepared.model.state_dict())
        model = copy.deepcopy(prepared.template)
        model.load_state_dict(state)
        return model.eval()

    # ---- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self, dir_or_path: str | Path) -> Path:
        """Write <stem>.safetensors and <stem>.json (a folder gets <arch>-<dataset>.*)."""
        target = checkpoint_target(dir_or_path, self.arch, self.dataset)
        self._built_parts()  # a set-aside job has nothing trained to save
        tensors, meta = checkpoint_contents(self.trainer, self.log, self.state, self.dataset)
        return checkpoint.write_checkpoint(target, tensors, meta)

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from a checkpoint (before the job starts)."""
        restore_trainer(self.trainer, self.log, tensors, meta)
        self.log.update(**progress_counters(self.trainer))

    # ---- the training thread ----------------------------------------------------------------

    def start(self) -> bool:
        """Called by the manager when a slot is free; False when the job no longer waits."""
        with self.machine.condition:
            if self.state is not JobState.QUEUED:
                return False
            self.machine.move(JobState.RUNNING, "training")
        self._thread = threading.Thread(target=self._run, name=f"deeparch-job-{self.id}")
        self._thread.daemon = True
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            self.machine.move(*self._train())
        finally:
            self._release_recipe()
            # The next queued job starts before wait() returns, so a waiter sees it running.
            if self.scheduler is not None:
                self.scheduler.job_ended(self)
            self._done.set()

    def _train(self) -> tuple[JobState, str]:
        """Train to the end; the state and reason the job ends with."""
        not_built = ""
        try:
            self._build_again()
        except Exception as error:  # noqa: BLE001  (no memory left for it: this job fails alone)
            logger.debug("job %s could not be built", self.id, exc_info=True)
            message = str(error).splitlines()[0] if str(error) else ""
            not_built = f"could not be built when its turn came: {type(error).__name__}: {message}"
        if not_built:
            release_cuda_cache()  # out of the except block, whose traceback held the parts built
            return JobState.FAILED, not_built
        try:
            return self.trainer.run()
        except torch.cuda.OutOfMemoryError as error:
            message = str(error).splitlines()[0] if str(error) else "out of memory"
        except Exception as error:  # noqa: BLE001  (one job's failure must not end the process)
            logger.debug("job %s failed", self.id, exc_info=True)
            return self._failure(error)
        # Released here, out of the except block: until it ends, the traceback holds the frames
        # of the failed step and with them its activations, which no gc.collect() can free.
        self._release_device_memory()
        return (
            JobState.FAILED,
            f"out of memory on {self.device} at step {self.trainer.progress.global_step} "
            f"({message}); memory released; try a smaller batch_size or a smaller model",
        )

    def _release_recipe(self) -> None:
        if self.recipe is not None:
            self.recipe.release()

    def _failure(self, error: Exception) -> tuple[JobState, str]:
        step = self.trainer.progress.global_step
        message = str(error).splitlines()[0] if str(error) else ""
        if "out of memory" in message.lower():
            self._release_device_memory()
        blow_up = self._blow_up()
        if blow_up:
            # Exploding weights make later code raise (BCE refuses NaN inputs): report why.
            return (
                JobState.DIVERGED,
                f"{blow_up} at step {step + 1} ({type(error).__name__}: {message}); "
                + remedy(
                    float(self.config.lr), is_recurrent(self.model), float(self.config.grad_clip)
                ),
            )
        return JobState.FAILED, f"{type(error).__name__} at step {step}: {message}"

    def _blow_up(self) -> str:
        """Why an exception looks like divergence: NaN weights, an exploding loss, or a layer
        whose output overflowed on a validation batch; else ''."""
        if not weights_finite(self.model):
            return "the weights became NaN"
        losses = self.log.copy()["losses"].get("loss", [])
        if len(losses) >= 2 and losses[-1][1] > EXPLOSION_FACTOR * max(abs(losses[0][1]), 1e-3):
            return f"the loss exploded from {losses[0][1]:.3g} to {losses[-1][1]:.3g}"
        prepared = self._prepared
        size = min(int(self.config.batch_size), len(prepared.x_val))
        x, y = prepared.x_val[:size], prepared.y_val[:size]
        layer = first_nonfinite_output(self.model, lambda: self.task.loss_terms(x, y))
        if layer is not None:
            return f"the output of {layer} became NaN or infinite"
        return ""

    def _release_device_memory(self) -> None:
        """Give back what a failed job holds on its device: optimizer state, gradients, and the
        model and tensors moved to the CPU (the job's views still read them there)."""
        for optimizer in self.task.optimizers.values():
            optimizer.state.clear()
        for param in self.model.parameters():
            param.grad = None
        if self.device.type != "cpu":
            self.model.to("cpu")
            prepared = self._prepared
            for name in ("x_train", "y_train", "x_val", "y_val"):
                setattr(prepared, name, getattr(prepared, name).to("cpu"))
            for name, value in vars(self.task).items():  # fixed noise, cached batches
                if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                    setattr(self.task, name, value.to("cpu"))
        release_cuda_cache()


def loaded_job(
    job_id: str, prepared: Prepared, tensors: dict, meta: dict, owner: str | None, source: str
) -> ThreadJob:
    """A finished job holding a checkpoint's model, config and metrics, to show or compare, with
    one snapshot so pages show it the way they show a trained one."""
    job = ThreadJob(job_id, prepared, owner, None, JobState.FINISHED, f"loaded from {source}")
    job.restore(tensors, meta)
    job.trainer.take_snapshot()
    return job
