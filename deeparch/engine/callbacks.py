"""What happens around a training step, as callbacks (Lightning's Callback and Logger hooks).

Hooks, each called with the trainer first: on_train_start(), on_step_end(losses),
on_snapshot(payload), on_epoch_end(metrics), on_train_end(state). The default set, in order:
per-epoch evaluation (adds val_<term> to the epoch's metrics), divergence detection (ends the run
as diverged), snapshots (every snapshot_every steps and at the end), and the metrics log last, so
it publishes what the others added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeparch.engine.divergence import divergence_reason, explosion_reason
from deeparch.engine.metrics_log import MetricsLog
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


class DivergenceMonitor(Callback):
    """Ends the run as diverged when a loss term is not finite or the loss explodes 1000x."""

    def __init__(self, log: MetricsLog) -> None:
        self.log = log
        self.first_loss: float | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        # A resumed run compares with the first loss of its history.
        history = self.log.copy()["losses"].get("loss")
        self.first_loss = history[0][1] if history else None

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        step, lr = trainer.progress.global_step, float(trainer.config.lr)
        reason = divergence_reason(losses, step, lr)
        if reason is None:
            self.first_loss = losses["loss"] if self.first_loss is None else self.first_loss
            reason = explosion_reason(self.first_loss, losses["loss"], step, lr)
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
    return [EpochEvaluation(), DivergenceMonitor(log), Snapshots(), MetricsPublisher(log)]
