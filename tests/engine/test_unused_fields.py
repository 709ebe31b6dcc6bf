"""A training field that only some optimizers or schedules use is called unused exactly where
changing it changes nothing: checked on the optimizer torch builds and on the rates the schedule
computes, for every optimizer and schedule in the registries."""

import pytest
import torch

from deeparch.engine.config import USED_ONLY_WITH, unused_fields
from deeparch.engine.optim import OPTIMIZERS, make_optimizer
from deeparch.engine.schedule import LR_SCHEDULES, scheduled_lr


def optimizer_state(name: str, momentum: float) -> list[dict]:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer(name, [weight], lr=0.1, momentum=momentum)
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_momentum_is_shown_for_the_optimizers_whose_update_it_sets(name):
    # The oracle: the hyperparameters torch's optimizer holds, with two momentum values.
    uses_momentum = optimizer_state(name, 0.5) != optimizer_state(name, 0.9)
    assert ("momentum" not in unused_fields({"optimizer": name})) == uses_momentum
    assert uses_momentum == (name == "sgd")  # rmsprop's own momentum stays torch's default 0


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_the_step_schedules_fields_are_shown_only_with_it(schedule):
    def rates(step_epochs: int, gamma: float) -> list[float]:
        return [
            scheduled_lr(schedule, 0.1, step, 100, 10, step_epochs, gamma) for step in range(100)
        ]

    unused = unused_fields({"lr_schedule": schedule})
    assert ("lr_gamma" not in unused) == (rates(1, 0.1) != rates(1, 0.5))
    assert ("lr_step_epochs" not in unused) == (rates(1, 0.1) != rates(3, 0.1))


def test_missing_settings_count_as_their_defaults():
    # TrainConfig's defaults: adam and a constant rate, which use none of these fields.
    assert sorted(unused_fields({})) == sorted(USED_ONLY_WITH)
