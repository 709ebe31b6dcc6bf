"""What the engine's tests share: a small job, hooks into the training thread on any backend, and
an independent count of the tensors an object holds."""

import gc
import types

import torch

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
    """function(job as its training process holds it): at once if it is built (it trains, or it
    was admitted when submitted), else just before it starts (a queued job holds no model until
    then); on Ray in the worker."""
    if isinstance(job, RayJob):
        return job.call_in_worker(function)
    return job.call_in_training(function)


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


def tensors_reachable(root, leave_out=()) -> int:
    """Bytes of the tensor storages (not on the meta device) reachable from `root`'s objects,
    classes, modules and the objects in `leave_out` aside: an independent count of what it
    holds."""
    seen, storages, todo = {id(obj) for obj in leave_out}, {}, [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if not obj.is_meta:
                storages[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
            continue
        todo.extend(gc.get_referents(obj))
    return sum(storages.values())
