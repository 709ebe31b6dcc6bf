"""Randomness belongs to the job: runs with the same seed reproduce, alone or side by side."""

import dataclasses

import pytest
import torch

from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.explore.views import train_on_random_batches
from deeparch.randomness import (
    Dropout,
    JobGenerators,
    borrowed_global_generator,
    use_generators,
    use_job_dropout,
)

WAIT_S = 120

# Two same-seed jobs side by side equal a serial run, on every backend: test_backends.py.
DROPOUT_MLP = TrainConfig(
    arch="mlp", arch_config={"hidden_sizes": (64, 32), "dropout": 0.5}, batch_size=32
)


def test_training_never_touches_the_process_wide_generator():
    before = torch.random.get_rng_state()
    manager = JobManager(max_running=2, heartbeat_timeout=0)
    jobs = [manager.submit(dataclasses.replace(DROPOUT_MLP, max_steps=10, seed=s)) for s in (1, 2)]
    for job in jobs:
        assert job.wait(WAIT_S) and job.state == "finished", job.reason
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_views_quick_training_uses_its_own_generators():
    def run():
        torch.manual_seed(123)
        with borrowed_global_generator(0):
            model = use_job_dropout(
                torch.nn.Sequential(
                    torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)
                )
            )
        x, y = torch.rand(64, 4), torch.rand(64, 1)
        state = torch.random.get_rng_state()
        losses = train_on_random_batches(model, x, y, torch.nn.functional.mse_loss, 5, 8)
        assert torch.equal(torch.random.get_rng_state(), state)  # the global one did not move
        return losses

    assert run() == run()


def test_job_dropout_keeps_the_expectation_and_draws_from_the_job():
    dropout = Dropout(0.25)
    x = torch.ones(200_000)
    with use_generators(JobGenerators(7)):
        first = dropout(x)
    with use_generators(JobGenerators(7)):
        again = dropout(x)
    assert torch.equal(first, again)
    kept = first != 0
    assert float(kept.float().mean()) == pytest.approx(0.75, abs=0.01)
    assert torch.allclose(first[kept], torch.full_like(first[kept], 1 / 0.75))
    dropout.eval()
    assert torch.equal(dropout(x), x)


def test_use_job_dropout_changes_no_parameter_or_name():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.3))
    names = list(model.state_dict())
    use_job_dropout(model)
    assert type(model[1]) is Dropout and model[1].p == 0.3
    assert list(model.state_dict()) == names


def test_the_borrowed_generator_is_seeded_and_given_back():
    torch.manual_seed(5)
    expected_after = torch.rand(3)
    torch.manual_seed(5)
    with borrowed_global_generator(11):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_after)  # the caller's stream is untouched
    with borrowed_global_generator(11):
        assert torch.equal(torch.rand(3), inside)
