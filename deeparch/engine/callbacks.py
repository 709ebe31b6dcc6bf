"""What happens around a training step, as callbacks (Lightning's Callback and Logger hooks).

Hooks, each called with the trainer first: on_train_start(), on_step_end(losses),
on_snapshot(payload), on_epoch_end(metrics), on_train_end(state). The default set, in order:
the learning-rate schedule (sets the rate of the next step), per-epoch evaluation (adds
val_<term> to the epoch's metrics), early stopping (reads val_loss, so after the evaluation; puts
the best weights back before the last snapshot), divergence detection (ends the run as diverged),
per-layer weight and gradient statistics (added to each snapshot), snapshots (every
snapshot_every steps and at the end), and the metrics log last, so it publishes what the others
added.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from deeparch.engine.diagnostics import layer_statistics
from deeparch.engine.divergence import divergence_reason, explosion_reason, is_recurrent
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.schedule import LR_FLOOR, scheduled_lr
from deeparch.engine.state import JobState

if TYPE_CHECKING:  # only for annotations: the loop imports nothing from here
    from deeparch.engine.loop import Trainer


class Callback:
    """A no-op for every hook; subclasses override the ones they need."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None: ...

    def on_snapshot(self, trainer: Trainer, payload: dict[str, Any]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer, state: JobState) -> None: ...


def ends_with_wrap_up(trainer: Trainer, state: JobState) -> bool:
    """A finished run, or a stopped one that trained at least a step, ends with a last snapshot
    and evaluation, so the metrics it reports belong to the weights it saves."""
    return state is JobState.FINISHED or (
        state is JobState.STOPPED and trainer.progress.global_step > 0
    )


class EpochEvaluation(Callback):
    """Validation metrics at each epoch end, and at the end of a run stopped mid-epoch."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics.update(trainer.evaluate())
        trainer.progress.final_metrics = dict(metrics)

    def on_train_end(self, trainer: Trainer, state: JobState) -> None:
        progress = trainer.progress
        if not ends_with_wrap_up(trainer, state):
            return
        if progress.final_metrics.get("step") == progress.global_step:
            return
        train_loss = progress.epoch_loss_sum / progress.epoch_step if progress.epoch_step else None
        progress.final_metrics = {
            "epoch": progress.epoch + progress.epoch_step / trainer.steps_per_epoch,
            "step": progress.global_step,
            "train_loss": train_loss,
            **trainer.evaluate(),
        }


class LearningRateSchedule(Callback):
    """Sets every optimizer's rate for the coming step from the schedule (a function of the step,
    so a resumed run needs no saved scheduler). Each parameter group keeps its own ratio to the
    base rate: the rate a task gave a group is scaled, not replaced. No rate goes below LR_FLOOR,
    the least lr a run may set (cosine's eta_min, so a checkpoint's rate is one a run could
    have)."""

    def __init__(self) -> None:
        self.base_lrs: dict[str, list[float]] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self.base_lrs = {
            name: [float(group["lr"]) for group in optimizer.param_groups]
            for name, optimizer in trainer.task.optimizers.items()
        }
        self.apply(trainer)

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        self.apply(trainer)

    def apply(self, trainer: Trainer) -> None:
        config = trainer.config
        if config.lr_schedule == "constant" or trainer.progress.global_step >= trainer.total_steps:
            return  # after the last step the rate stays that of the last step
        factor = scheduled_lr(
            config.lr_schedule,
            1.0,
            trainer.progress.global_step,
            trainer.total_steps,
            trainer.steps_per_epoch,
            int(config.lr_step_epochs),
            float(config.lr_gamma),
        )
        for name, optimizer in trainer.task.optimizers.items():
            for group, base in zip(optimizer.param_groups, self.base_lrs[name], strict=True):
                group["lr"] = max(base * factor, LR_FLOOR)


class EarlyStopping(Callback):
    """Stops when val_loss has not improved for `early_stopping` epochs (the patience), and ends
    the run with the weights of the best epoch (Keras' EarlyStopping with restore_best_weights;
    Prechelt 1998, "Early stopping, but when?"). The final metrics then are the best epoch's,
    with best_epoch and best_val_loss; the last snapshot says best_epoch too.

    The best weights are a CPU copy, one model's worth per job. A run resumed from a checkpoint
    starts its patience afresh (the checkpoint holds the last weights, not the best).
    """

    monitor = "val_loss"

    def __init__(self) -> None:
        self.best: float | None = None
        self.best_metrics: dict[str, Any] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.waited = 0
        self.restored = False

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        patience = int(trainer.config.early_stopping)
        value = metrics.get(self.monitor)
        if patience <= 0 or value is None or not math.isfinite(value):
            return
        if self.best is None or value < self.best:
            self.best, self.best_metrics, self.waited = float(value), dict(metrics), 0
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()
            }
        else:
            self.waited += 1
        summary = self.summary()
        metrics.update(summary)
        trainer.progress.final_metrics.update(summary)
        if self.waited >= patience:
            trainer.should_stop = (
                JobState.FINISHED,
                f"early stopping: {self.monitor} has not improved for {patience} "
                f"epoch{'s' if patience != 1 else ''} since epoch {summary['best_epoch']} "
                f"({self.best:.4g}); the weights of epoch {summary['best_epoch']} are kept",
            )

    def summary(self) -> dict[str, Any]:
        return {"best_epoch": self.best_metrics.get("epoch"), "best_val_loss": self.best}

    def on_train_end(self, trainer: Trainer, state: JobState) -> None:
        if state is not JobState.FINISHED or self.best_state is None:
            return
        final = trainer.progress.final_metrics.get(self.monitor)
        if final is not None and math.isfinite(final) and final <= self.best:
            return  # the last weights are the best ones
        with trainer.step_lock:
            trainer.model.load_state_dict(self.best_state)
        self.restored = True
        progress = trainer.progress
        # The metrics of the weights the run ends with; step stays the run's last, so the
        # evaluation of the wrap-up does not overwrite them.
        progress.final_metrics = {
            **self.best_metrics,
            **self.summary(),
            "restored_from_epoch": self.best_metrics.get("epoch"),
            "step": progress.global_step,
        }
        progress.last_snapshot_step = -1  # the snapshot of the weights kept, not the last ones

    def on_snapshot(self, trainer: Trainer, payload: dict[str, Any]) -> None:
        if self.best is not None:
            payload.update(self.summary(), best_weights_restored=self.restored)


class LayerStatistics(Callback):
    """Each snapshot gets the histograms of every layer's weights and last gradients and their
    norms (deeparch.engine.diagnostics), so the pages draw them over time."""

    def on_snapshot(self, trainer: Trainer, payload: dict[str, Any]) -> None:
        payload["layers"] = layer_statistics(trainer.model)


class DivergenceMonitor(Callback):
    """Ends the run as diverged when a loss term is not finite or the loss explodes 1000x."""

    def __init__(self, log: MetricsLog) -> None:
        self.log = log
        self.first_loss: float | None = None
        self.recurrent = False  # a recurrent model is also advised gradient clipping

    def on_train_start(self, trainer: Trainer) -> None:
        # A resumed run compares with the first loss of its history.
        history = self.log.copy()["losses"].get("loss")
        self.first_loss = history[0][1] if history else None
        self.recurrent = is_recurrent(trainer.model)

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        step, lr = trainer.progress.global_step, float(trainer.config.lr)
        advice = {"recurrent": self.recurrent, "grad_clip": float(trainer.config.grad_clip)}
        reason = divergence_reason(losses, step, lr, **advice)
        if reason is None:
            self.first_loss = losses["loss"] if self.first_loss is None else self.first_loss
            reason = explosion_reason(self.first_loss, losses["loss"], step, lr, **advice)
        if reason is not None:
            trainer.should_stop = (JobState.DIVERGED, reason)


class Snapshots(Callback):
    """The task's snapshot every snapshot_every steps, and a last one when the run wraps up."""

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        if trainer.should_stop is not None:
            return  # a diverged step's weights are not worth drawing
        if trainer.progress.global_step % int(trainer.config.snapshot_every) == 0:
            trainer.take_snapshot()

    def on_train_end(self, trainer: Trainer, state: JobState) -> None:
        progress = trainer.progress
        if progress.last_snapshot_step == progress.global_step:
            return
        if ends_with_wrap_up(trainer, state):
            trainer.take_snapshot()


class MetricsPublisher(Callback):
    """Publishes losses, epoch metrics, snapshots and counters to the job's MetricsLog."""

    def __init__(self, log: MetricsLog) -> None:
        self.log = log

    def on_train_start(self, trainer: Trainer) -> None:
        self.publish_counters(trainer)

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        self.log.add_losses(trainer.progress.global_step, losses)
        self.publish_counters(trainer)

    def on_snapshot(self, trainer: Trainer, payload: dict[str, Any]) -> None:
        self.log.add_snapshot(payload)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.log.add_epoch(metrics)
        self.publish_counters(trainer)

    def on_train_end(self, trainer: Trainer, state: JobState) -> None:
        self.publish_counters(trainer)

    def publish_counters(self, trainer: Trainer) -> None:
        self.log.update(**progress_counters(trainer, trainer.clock.elapsed()))


def progress_counters(trainer: Trainer, elapsed: float | None = None) -> dict[str, Any]:
    """step, epoch, samples/s, elapsed and ETA, as the pages show them."""
    progress, clock = trainer.progress, trainer.clock
    elapsed = 0.0 if elapsed is None else elapsed
    done = progress.global_step - progress.start_step
    rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
    return {
        "step": progress.global_step,
        "total_steps": trainer.total_steps,
        "epoch": progress.epoch,
        "epochs": int(trainer.config.epochs),
        "samples_per_s": (
            done * trainer.batch_size / clock.train_seconds if clock.train_seconds > 0 else 0.0
        ),
        "elapsed_s": progress.elapsed_before + elapsed,
        "eta_s": (trainer.total_steps - progress.global_step) / rate if rate > 0 else None,
        "lr": trainer.current_lr(),
    }


def default_callbacks(log: MetricsLog) -> list[Callback]:
    """The callbacks every job trains with; the metrics log comes last (see the module's doc)."""
    return [
        LearningRateSchedule(),
        EpochEvaluation(),
        EarlyStopping(),
        DivergenceMonitor(log),
        LayerStatistics(),
        Snapshots(),
        MetricsPublisher(log),
    ]
