"""Learning-rate schedules as a function of the step: constant, step decay and cosine annealing.

The rate of step t is computed from t alone (no scheduler object with state of its own), so a run
resumed from a checkpoint at step t trains at the rate it would have had, and the callback that
applies it (deeparch.engine.callbacks.LearningRateSchedule) needs nothing saved.
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "step", "cosine")
# The least rate a schedule sets: TrainConfig's least lr (the schedules' eta_min), so every rate
# an optimizer holds is one a run could be started with, and a checkpoint's is believable.
LR_FLOOR = 1e-6


def scheduled_lr(
    schedule: str,
    base_lr: float,
    step: int,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: int = 1,
    gamma: float = 0.1,
) -> float:
    """The learning rate of optimizer step `step` (0-based) of a run of `total_steps`.

    step:   base_lr * gamma ** (epoch // step_epochs), the epoch being step // steps_per_epoch
            (PyTorch's StepLR stepped once per epoch);
    cosine: base_lr * (1 + cos(pi * step / total_steps)) / 2, from base_lr to 0 at the last step
            (SGDR without restarts, Loshchilov & Hutter 2017; PyTorch's CosineAnnealingLR).
    """
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return base_lr * gamma ** (epoch // max(1, step_epochs))
    if schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return base_lr * (1.0 + math.cos(math.pi * progress)) / 2.0
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; one of {LR_SCHEDULES}")
