"""The training engine on the thread backend: configs, and what only an in-process job shows.

States, control, queue, heartbeats, failures, checkpoints and reproducibility run on every
backend in tests/engine/test_backends.py.
"""

import dataclasses
import math
import weakref

import pytest
import torch

from deeparch.config import field_specs
from deeparch.engine import job as job_module
from deeparch.engine.config import TrainConfig, train_field_specs
from deeparch.engine.divergence import divergence_reason, explosion_reason
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError
from deeparch.tasks.classify import ClassifyTask
from tests.engine.jobs import SMALL, held, instrument

WAIT_S = 60  # generous: the machine may be busy; nothing asserts on time

# ---- config -------------------------------------------------------------------------------------


def test_train_config_round_trips_through_a_dict():
    config = dataclasses.replace(SMALL, lr=0.01, optimizer="sgd", l1=1e-4)
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config
    assert again.arch_config == {"hidden_sizes": (32,)}


def test_from_dict_coerces_strings_like_a_cli():
    config = TrainConfig.from_dict({"arch": "mlp", "lr": "0.5", "batch_size": "16", "seed": "3"})
    assert (config.lr, config.batch_size, config.seed) == (0.5, 16, 3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": 100.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"device": "tpu"}, "device"),
        ({"arch": "no_such_arch"}, "arch"),
        ({"dataset": "no_such_set"}, "dataset"),
        ({"dataset": "mnist1d"}, "dataset"),  # sequences: not a kind the MLP accepts
        ({"arch_config": {"hidden_sizes": (0,)}}, "hidden_sizes"),
        ({"arch_config": {"no_field": 1}}, "no_field"),
    ],
)
def test_bad_values_name_their_field(overrides, field):
    config = dataclasses.replace(SMALL, **overrides)
    with pytest.raises(ConfigError) as raised:
        config.validate()
    assert raised.value.field == field
    assert field in str(raised.value)


def test_widget_fields_are_declared_with_bounds():
    specs = {s.name: s for s in train_field_specs()}
    assert set(specs) == {f.name for f in field_specs(TrainConfig)} - {
        "arch",
        "dataset",
        "arch_config",
    }
    assert specs["optimizer"].choices == ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
    assert specs["lr"].log and specs["lr"].min > 0
    assert all(spec.help for spec in specs.values())


def test_a_shape_error_in_the_dry_run_is_a_config_error(monkeypatch):
    def broken(self, x, y):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (32x784 and 100x10)")

    monkeypatch.setattr(ClassifyTask, "loss_terms", broken)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    with pytest.raises(ConfigError) as raised:
        manager.submit(SMALL)
    assert raised.value.field == "arch_config"
    assert "mat1 and mat2" in str(raised.value)
    assert manager.jobs() == []  # nothing was queued


# ---- divergence and failures ----------------------------------------------------------------


def test_explosion_reason_measures_against_the_first_loss():
    assert explosion_reason(2.3, 2299.0, 5, 1.0) is None  # 999.6x: still below 1000x
    assert explosion_reason(2.3, 2301.0, 5, 1.0).startswith("the loss exploded from 2.3 to 2.3e+03")
    assert explosion_reason(0.0, 0.9, 5, 1.0) is None  # tiny first losses count as 1e-3
    assert explosion_reason(0.0, 1.1, 5, 1.0) is not None


def test_divergence_reason_names_the_term():
    assert divergence_reason({"loss": 1.0, "kl": math.inf}, 3, 0.1) == (
        "kl became infinite at step 3; try a learning rate below 0.1"
    )
    assert divergence_reason({"loss": 1.0}, 3, 0.1) is None


def test_out_of_memory_releases_the_jobs_memory():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = held(manager, SMALL)

    def out_of_memory(job):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    instrument(job, 5, out_of_memory)
    manager.set_max_running(1)
    assert job.wait(WAIT_S) and job.state == "failed"
    assert all(len(opt.state) == 0 for opt in job.task.optimizers.values())


def test_out_of_memory_frees_the_failed_steps_tensors_before_emptying_the_cache(monkeypatch):
    # The cache is emptied after the except block: inside it, the traceback still holds the
    # failed step's frames and their activations, so empty_cache() could return nothing.
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = held(manager, SMALL)
    activations = []
    freed_when_emptied = []

    def out_of_memory(job):
        held_by_the_frame = torch.ones(1000)
        activations.append(weakref.ref(held_by_the_frame))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(
        job_module,
        "release_cuda_cache",
        lambda: freed_when_emptied.append(activations[0]() is None),
    )
    instrument(job, 3, out_of_memory)
    manager.set_max_running(1)
    assert job.wait(WAIT_S) and job.state == "failed"
    assert job.reason.startswith("out of memory on cpu at step 2 (CUDA out of memory.")
    assert freed_when_emptied == [True]


def test_a_channels_last_cnn_copies_to_a_model_computing_the_same():
    # The CPU engine stores a CNN's weights channels-last (resuming one exactly: test_backends.py).
    cnn = TrainConfig(arch="cnn", batch_size=16, epochs=100, max_steps=3, optimizer="adam")
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(cnn)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    weight = job.model.features.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    copy = job.model_copy()
    for (name, copied), live in zip(copy.state_dict().items(), job.model.state_dict().values()):
        assert torch.equal(copied, live), name
        assert copied.data_ptr() != live.data_ptr()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), job.model.eval()(x))


def test_a_first_batch_out_of_memory_names_batch_size(monkeypatch):
    def out_of_memory(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(ClassifyTask, "dry_run", out_of_memory)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    with pytest.raises(ConfigError) as raised:
        manager.submit(dataclasses.replace(SMALL, batch_size=512))
    assert raised.value.field == "batch_size" and raised.value.value == 512
    assert "one batch ran out of memory (CUDA out of memory. Tried to allocate 9.00 GiB)" in str(
        raised.value
    )
    assert manager.jobs() == []
