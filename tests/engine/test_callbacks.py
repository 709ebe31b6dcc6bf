"""The loop fires its callbacks at clear points, and a callback can end the run."""

import dataclasses

from deeparch.engine.callbacks import Callback, default_callbacks
from deeparch.engine.config import TrainConfig
from deeparch.engine.loop import Trainer
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.prepare import prepare
from deeparch.engine.state import JobState

CONFIG = TrainConfig(
    arch="mlp",
    arch_config={"hidden_sizes": (16,)},
    batch_size=1000,
    epochs=2,
    snapshot_every=3,
)  # 4,000 training images: 4 steps per epoch


class AlwaysGo:
    stop_reason = ""

    def between_steps(self, step):
        return True, 0.0


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_start(self, trainer):
        self.calls.append(("start", trainer.progress.global_step))

    def on_step_end(self, trainer, losses):
        self.calls.append(("step", trainer.progress.global_step))

    def on_snapshot(self, trainer, payload):
        self.calls.append(("snapshot", payload["step"]))

    def on_epoch_end(self, trainer, metrics):
        self.calls.append(("epoch", metrics["epoch"], "val_loss" in metrics))

    def on_train_end(self, trainer, state):
        self.calls.append(("end", str(state)))


def test_hooks_fire_in_order_with_the_default_callbacks_before_the_recorder():
    recorder = Recorder()
    log = MetricsLog()
    trainer = Trainer(prepare(CONFIG), AlwaysGo(), [*default_callbacks(log), recorder])
    assert trainer.run() == (JobState.FINISHED, "trained 2 epochs (8 steps)")
    steps = [("step", s) for s in range(1, 9)]
    # The snapshot callback comes before the recorder: a step's snapshot is announced first.
    assert (
        recorder.calls
        == [
            ("start", 0),
            *steps[:2],
            ("snapshot", 3),
            *steps[2:4],
            ("epoch", 1, True),  # evaluation ran before the recorder saw the metrics
            steps[4],
            ("snapshot", 6),
            *steps[5:8],
            ("epoch", 2, True),
            ("snapshot", 8),  # the last one, at the end
            ("end", "finished"),
        ]
    )
    copied = log.copy()
    assert [s["step"] for s in copied["snapshots"]] == [3, 6, 8]
    assert [m["epoch"] for m in copied["epoch_metrics"]] == [1, 2]
    assert copied["step"] == 8 and copied["total_steps"] == 8


def test_a_callback_ends_the_run_by_setting_should_stop():
    class StopAtFive(Callback):
        def on_step_end(self, trainer, losses):
            if trainer.progress.global_step == 5:
                trainer.should_stop = (JobState.STOPPED, "early stopping at step 5")

    log = MetricsLog()
    trainer = Trainer(
        prepare(dataclasses.replace(CONFIG, epochs=10)),
        AlwaysGo(),
        [*default_callbacks(log), StopAtFive()],
    )
    assert trainer.run() == (JobState.STOPPED, "early stopping at step 5")
    assert trainer.progress.global_step == 5
    # A stopped run wraps up: a last snapshot and metrics that belong to its weights.
    assert trainer.progress.final_metrics["step"] == 5
    assert log.latest_snapshot()["step"] == 5
