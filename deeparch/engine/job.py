"""One training job: a task trained in a background thread, controllable and readable anytime."""

from __future__ import annotations

import copy
import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.data.info import DataInfo
from deeparch.engine.divergence import EXPLOSION_FACTOR, weights_finite
from deeparch.engine.metrics_log import MetricsLog
from deeparch.tasks.base import Task

logger = logging.getLogger(__name__)

STATES = ("queued", "running", "paused", "finished", "stopped", "failed", "diverged")
ACTIVE_STATES = ("queued", "running", "paused")
SNAPSHOT_SAMPLES = 500  # validation samples a snapshot looks at (accuracy, confusion, latents)
# Datasets up to this size live on the accelerator for the whole job; larger ones go per batch
# through pinned memory.
DEVICE_RESIDENT_BYTES = 1 << 30


@dataclass
class Prepared:
    """Everything a job needs, built and checked before its training thread starts."""

    config: Any  # TrainConfig
    dataset_name: str
    info: DataInfo
    arch_config: Any
    task_name: str
    device: torch.device
    model: nn.Module
    template: nn.Module  # an untouched CPU copy of the model, the mould for model_copy()
    task: Task
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def step_seed(seed: int, step: int) -> int:
    """The seed of one step: a function of (seed, step) only, so a resumed run draws the same."""
    return (seed * 1_000_003 + step) % (2**63 - 1)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled sample order of one epoch, from its own generator (no global RNG)."""
    generator = torch.Generator().manual_seed(step_seed(seed + 7919, epoch))
    return torch.randperm(n, generator=generator)


def seed_global_generators(seed: int, device: torch.device) -> None:
    """Seed the default generators dropout and the reparameterisation trick draw from.

    torch.manual_seed would do, but it visits every backend (about 150 us); this is about 2 us.
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


class Job:
    """A training run. Control: pause, resume, step, stop. Read: snapshot, model_copy."""

    def __init__(self, job_id: str, prepared: Prepared, owner: str | None, manager: Any) -> None:
        self.id = job_id
        self.owner = owner
        self.config = prepared.config
        self.arch = prepared.config.arch
        self.dataset = prepared.dataset_name
        self.info = prepared.info
        self.arch_config = prepared.arch_config
        self.task_name = prepared.task_name
        self.device = prepared.device
        self._prepared = prepared
        self._manager = manager
        self.log = MetricsLog()
        self.last_seen = time.monotonic()
        n = len(prepared.x_train)
        batch_size = min(int(self.config.batch_size), n)
        self.batch_size = batch_size
        # The last partial batch is dropped: equal batches, and no batch of 1 for BatchNorm.
        self.steps_per_epoch = max(1, n // batch_size)
        total = int(self.config.epochs) * self.steps_per_epoch
        self.total_steps = (
            min(total, int(self.config.max_steps)) if self.config.max_steps else total
        )
        self.global_step = 0
        self.epoch = 0  # completed epochs
        self.epoch_step = 0  # batches done in the current epoch
        self.epoch_loss_sum = 0.0
        self.final_metrics: dict[str, float] = {}
        self._state = "queued"
        self._reason = "waiting for a free training slot"
        self._control = threading.Condition()
        self._pause_requested = False
        self._stop_requested = False
        self._single_steps = 0
        self._waiting = threading.Event()  # set while the thread sits between steps, paused
        self._done = threading.Event()
        self._step_lock = threading.Lock()  # held for one optimizer step; readers copy between
        self._thread: threading.Thread | None = None
        self._elapsed_before = 0.0  # seconds trained in earlier runs (a resumed checkpoint)
        self._last_snapshot_step = -1
        self._start_step = 0  # the step this run started from (after a resume, not 0)
        self._paused_seconds = 0.0
        self._stop_reason = ""
        self._publish_counters()

    # ---- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._control:
            return self._state

    @property
    def reason(self) -> str:
        with self._control:
            return self._reason

    @property
    def model(self) -> nn.Module:
        """The live model (on its device, being trained): read it through model_copy() instead."""
        return self._prepared.model

    @property
    def task(self) -> Task:
        return self._prepared.task

    def _set_state(self, state: str, reason: str) -> None:
        with self._control:
            self._state, self._reason = state, reason
            self._control.notify_all()
        self.log.update(state=state, reason=reason)
        logger.info("job %s %s: %s", self.id, state, reason)

    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    # ---- control ---------------------------------------------------------------------------------

    def pause(self) -> bool:
        """Pause after the current step; returns False when the job is not running."""
        with self._control:
            if self._state != "running":
                return False
            self._pause_requested = True
            self._state, self._reason = "paused", "pausing after the current step"
        self.log.update(state="paused", reason=self.reason)
        return True

    def resume(self) -> bool:
        """Continue a paused job; returns False when it is not paused."""
        with self._control:
            if self._state != "paused":
                return False
            self._pause_requested = False
            self._state, self._reason = "running", "training"
            self._control.notify_all()
        self.log.update(state="running", reason="training")
        return True

    def step(self) -> bool:
        """Train exactly one batch while paused, then stay paused."""
        with self._control:
            if self._state != "paused":
                return False
            self._single_steps += 1
            self._waiting.clear()
            self._control.notify_all()
        return True

    def stop(self, reason: str = "") -> bool:
        """Stop after the current step (a queued job never starts); False when already ended."""
        with self._control:
            if self._state not in ACTIVE_STATES:
                return False
            self._stop_requested = True
            self._stop_reason = reason
            self._control.notify_all()
            queued = self._state == "queued"
        if queued:
            self._manager._dequeue(self)
            self._set_state("stopped", reason or "stopped by the user before it started")
            self._done.set()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (finished, stopped, failed, diverged); False on timeout."""
        return self._done.wait(timeout)

    def wait_paused(self, timeout: float | None = None) -> bool:
        """Block until a paused job's thread really sits between steps; False on timeout."""
        return self._waiting.wait(timeout)

    def _wait_turn(self) -> bool:
        """Between steps: honour pause and single steps; False means stop now."""
        with self._control:
            if not self._pause_requested or self._stop_requested:
                return not self._stop_requested
            paused_at = time.perf_counter()
            while True:
                if self._stop_requested:
                    result = False
                    break
                if not self._pause_requested:
                    result = True
                    break
                if self._single_steps > 0:
                    self._single_steps -= 1
                    result = True
                    break
                if not self._waiting.is_set():
                    self._reason = f"paused by the user at step {self.global_step}"
                    self.log.update(reason=self._reason)
                    self._waiting.set()
                self._control.wait()
            self._waiting.clear()
        self._paused_seconds += time.perf_counter() - paused_at
        return result

    # ---- reading ---------------------------------------------------------------------------------

    def snapshot(self, owner: str | None = None) -> dict[str, Any]:
        """A copy of everything published so far; reading it as the owner counts as a heartbeat."""
        if owner is not None and owner == self.owner:
            self.last_seen = time.monotonic()
        copied = self.log.copy()
        with self._control:
            copied["state"], copied["reason"] = self._state, self._reason
        position = self._manager.queue_position(self)
        if copied["state"] == "queued" and position:
            copied["reason"] = f"waiting for a free training slot: position {position} in the queue"
        copied.update(
            id=self.id,
            arch=self.arch,
            dataset=self.dataset,
            task=self.task_name,
            queue_position=position,
            device=str(self.device),
            config=self.config.to_dict(),
            final_metrics=dict(self.final_metrics),
        )
        return copied

    def _publish_counters(self, elapsed: float | None = None, train_seconds: float = 0.0) -> None:
        elapsed = self._elapsed_before if elapsed is None else elapsed
        done = self.global_step - self._start_step
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        self.log.update(
            step=self.global_step,
            total_steps=self.total_steps,
            epoch=self.epoch,
            epochs=int(self.config.epochs),
            samples_per_s=done * self.batch_size / train_seconds if train_seconds > 0 else 0.0,
            elapsed_s=self._elapsed_before + elapsed,
            eta_s=(self.total_steps - self.global_step) / rate if rate > 0 else None,
            lr=self._current_lr(),
        )

    def _current_lr(self) -> float:
        for optimizer in self.task.optimizers.values():
            return float(optimizer.param_groups[0]["lr"])
        return float(self.config.lr)

    def model_copy(self) -> nn.Module:
        """A consistent CPU copy of the current weights in eval mode, taken between two steps."""
        with self._step_lock:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        model = copy.deepcopy(self._prepared.template)
        model.load_state_dict(state)
        return model.eval()

    # ---- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self, dir_or_path: str | Path) -> Path:
        """Write <stem>.safetensors and <stem>.json (a folder gets <arch>-<dataset>.*)."""
        target = Path(dir_or_path)
        if target.suffix not in (checkpoint.SUFFIX, ".json"):
            target = target / f"{self.arch}-{self.dataset}{checkpoint.SUFFIX}"
        with self._step_lock:  # weights, optimizer state and counters from the same moment
            tensors = {
                k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
            }
            opt_tensors, opt_described = checkpoint.optimizer_state(self.task.optimizers)
            tensors.update({k: v.detach().to("cpu", copy=True) for k, v in opt_tensors.items()})
            opt_described = copy.deepcopy(opt_described)
            progress = {
                "step": self.global_step,
                "epoch": self.epoch,
                "epoch_step": self.epoch_step,
                "epoch_loss_sum": self.epoch_loss_sum,
                "elapsed_s": self.log.counter("elapsed_s", 0.0),
            }
        meta = {
            "format": "deeparch-checkpoint-1",
            "arch": self.arch,
            "arch_config": self.config.to_dict()["arch_config"],
            "dataset": self.dataset,
            "task": self.task_name,
            "train_config": self.config.to_dict(),
            "state": self.state,
            "progress": progress,
            "final_metrics": self.final_metrics,
            "history": self.log.history(),
            "optimizer": opt_described,
        }
        return checkpoint.write_checkpoint(target, tensors, meta)

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer state, counters and history.

        `meta` comes from checkpoint.read_checkpoint, which has checked the type of every field
        read here; weights and optimizer state are checked against the model's shapes.
        """
        model_state, optimizer_tensors = checkpoint.split_tensors(tensors)
        checkpoint.load_model_state(self.model, model_state, self.arch)
        saved_optimizer = meta["train_config"].get("optimizer")
        if saved_optimizer == self.config.optimizer and meta.get("optimizer"):
            checkpoint.restore_optimizers(
                self.task.optimizers, optimizer_tensors, meta["optimizer"], self.model
            )
            match_parameter_layouts(self.task.optimizers)
        progress = meta["progress"]
        self.global_step = int(progress["step"])
        self.epoch = int(progress["epoch"])
        self.epoch_step = int(progress["epoch_step"])
        self.epoch_loss_sum = float(progress["epoch_loss_sum"])
        self._elapsed_before = float(progress.get("elapsed_s") or 0.0)
        self.final_metrics = dict(meta.get("final_metrics") or {})
        self.log.restore(meta["history"])
        self._publish_counters()

    # ---- the training thread ---------------------------------------------------------------------

    def _start(self) -> None:
        """Called by the manager when a slot is free."""
        with self._control:
            if self._state != "queued":
                return
            self._state, self._reason = "running", "training"
        self.log.update(state="running", reason="training")
        self._thread = threading.Thread(target=self._run, name=f"deeparch-job-{self.id}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        try:
            from deeparch.engine.loop import train_loop  # the loop body lives in its own module

            outcome, reason = train_loop(self)
            self._set_state(outcome, reason)
        except torch.cuda.OutOfMemoryError as error:
            self._release_device_memory()
            self._set_state(
                "failed",
                f"out of memory on {self.device} at step {self.global_step} "
                f"({str(error).splitlines()[0]}); memory released; try a smaller batch_size "
                "or a smaller model",
            )
        except Exception as error:  # noqa: BLE001  (one job's failure must not end the process)
            logger.debug("job %s failed", self.id, exc_info=True)
            message = str(error).splitlines()[0] if str(error) else ""
            if "out of memory" in message.lower():
                self._release_device_memory()
            blow_up = self._blow_up()
            if blow_up:
                # Exploding weights make later code raise (BCE refuses NaN inputs): report why.
                self._set_state(
                    "diverged",
                    f"{blow_up} at step {self.global_step + 1} ({type(error).__name__}: "
                    f"{message}); try a learning rate below {float(self.config.lr):g}",
                )
            else:
                self._set_state(
                    "failed", f"{type(error).__name__} at step {self.global_step}: {message}"
                )
        finally:
            # The next queued job starts before wait() returns, so a waiter sees it running.
            self._manager._job_ended(self)
            self._done.set()

    def _blow_up(self) -> str:
        """Why an exception looks like divergence: NaN weights or an exploding loss; else ''."""
        if not weights_finite(self.model):
            return "the weights became NaN"
        losses = self.log.copy()["losses"].get("loss", [])
        if len(losses) >= 2 and losses[-1][1] > EXPLOSION_FACTOR * max(abs(losses[0][1]), 1e-3):
            return f"the loss exploded from {losses[0][1]:.3g} to {losses[-1][1]:.3g}"
        return ""

    def _release_device_memory(self) -> None:
        for optimizer in self.task.optimizers.values():
            optimizer.state.clear()
        for param in self.model.parameters():
            param.grad = None
        self._prepared.x_train = self._prepared.x_train.to("cpu")
        self._prepared.x_val = self._prepared.x_val.to("cpu")
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _finished_reason(self) -> str:
        if self.config.max_steps and self.global_step >= int(self.config.max_steps):
            return f"reached max_steps {self.global_step}"
        epochs = "epoch" if self.epoch == 1 else "epochs"
        return f"trained {self.epoch} {epochs} ({self.global_step} steps)"


def match_parameter_layouts(optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Give restored optimizer state its parameter's memory layout (a checkpoint stores tensors
    contiguous; a channels-last weight's moments must be channels-last too, because fused
    optimizers update parameter and state element by element in memory order)."""
    for optimizer in optimizers.values():
        for param, entries in optimizer.state.items():
            for key, value in entries.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == param.shape
                    and value.stride() != param.stride()
                ):
                    entries[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
