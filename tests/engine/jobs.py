"""What the engine's tests share: a small job, and hooks into the training thread on any backend."""

from deeparch.engine.config import TrainConfig
from deeparch.engine.ray_job import RayJob

SMALL = TrainConfig(
    arch="mlp",
    arch_config={"hidden_sizes": (32,)},
    batch_size=32,
    epochs=100,
    max_steps=40,
    snapshot_every=10,
)


def in_training(job, function):
    """function(job as its training process holds it): at once on the thread backend; on Ray in
    the worker, at once if it trains, else just before it starts."""
    if isinstance(job, RayJob):
        return job.call_in_worker(function)
    return function(job)


def held(manager, config, **kwargs):
    """Submit while no slot is free, so a test can instrument the job before it runs."""
    manager.set_max_running(0)
    job = manager.submit(config, **kwargs)
    assert job.state == "queued"
    return job


def patch_train_step(job, make_step):
    """Replace the job's train_step by make_step(job, original) where it trains."""

    def patch(inner):
        inner.task.train_step = make_step(inner, inner.task.train_step)

    in_training(job, patch)


def instrument(job, at_call, action):
    """Run `action(job)` inside the training thread during the at_call-th train_step."""

    def make_step(inner, original):
        calls = []

        def train_step(batch):
            calls.append(1)
            if len(calls) == at_call:
                action(inner)
            return original(batch)

        return train_step

    patch_train_step(job, make_step)
