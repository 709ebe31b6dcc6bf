"""A queued job holds its config, not its model: checked in full when submitted, built again from
its seed when it starts, and trained exactly as a job admitted at once (thread backend)."""

import dataclasses
import gc
import weakref

import pytest
import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.backends import ThreadBackend
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig, train_defaults
from deeparch.engine.manager import JobManager
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError
from deeparch.models import create_model, list_archs
from tests.engine.jobs import held, in_training, tensors_reachable

WAIT_S = 120  # generous: the machine may be busy; nothing asserts on time
ALICE = "a" * 32
SHORT = {"epochs": 100, "max_steps": 6, "snapshot_every": 3}
# Each draws randomness while it trains (dropout, noise, latent samples) or holds buffers that
# training moves (batch normalisation): a job built late must draw and move them as one built at
# once does.
CASES = {
    "mlp with dropout": TrainConfig(
        arch="mlp", arch_config={"hidden_sizes": (32,), "dropout": 0.5}, batch_size=32, **SHORT
    ),
    "cnn with batch norm": TrainConfig(
        arch="cnn", arch_config={"batch_norm": True}, batch_size=16, **SHORT
    ),
    "vae": TrainConfig(arch="vae", arch_config={"latent_dim": 2}, batch_size=32, **SHORT),
    "mlp_gan": TrainConfig(
        arch="mlp_gan", arch_config={"hidden_sizes": (32, 64)}, batch_size=32, **SHORT
    ),
}


def tensor_bytes_held(job) -> int:
    """Bytes of the tensor storages the job holds, its scheduler (the manager, which holds every
    other job) left out."""
    return tensors_reachable(job, leave_out=[job.scheduler])


def weights_bytes(model: torch.nn.Module) -> int:
    return sum(tensor.untyped_storage().nbytes() for tensor in model.state_dict().values())


def state_at_start(job) -> dict[str, torch.Tensor]:
    """The job's weights as its training thread holds them before the first step."""
    captured = {}
    in_training(job, lambda inner: captured.update(
        {name: value.detach().clone() for name, value in inner.model.state_dict().items()}
    ))  # fmt: skip
    return captured


def assert_same_state(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(got[name].contiguous(), value.contiguous()), name


@pytest.mark.parametrize("arch", list_archs())
def test_a_queued_job_holds_no_tensor_of_its_model_and_still_says_its_size(arch):
    config = TrainConfig(arch=arch, **train_defaults(arch))
    built = ThreadBackend().create("built", config, None, None)  # as a job admitted at once
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    queued = held(manager, config)
    model, _ = create_model(arch, config.arch_config, built.info)
    count = sum(p.numel() for p in model.parameters())
    # The counter sees what an admitted job holds: its weights and their initial copy at least.
    assert tensor_bytes_held(built) >= 2 * weights_bytes(model) > 0
    assert tensor_bytes_held(queued) == 0
    built_model = weakref.ref(built.model)
    gc.disable()
    try:
        assert built.set_aside() and tensor_bytes_held(built) == 0
        assert built_model() is None  # freed by reference counting: the manager only trims
    finally:
        gc.enable()
    snap = queued.snapshot()
    assert snap["parameters"] == count == built.snapshot()["parameters"]
    assert snap["trainable_parameters"] == count
    assert (snap["state"], snap["queue_position"], snap["step"]) == ("queued", 1, 0)
    assert snap["total_steps"] == built.snapshot()["total_steps"] > 0
    assert snap["config"] == config.to_dict()
    queued.stop()


@pytest.mark.parametrize("case", list(CASES))
def test_a_job_built_when_admitted_starts_and_trains_as_one_admitted_at_once(case):
    config = CASES[case]
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    at_once = manager.submit(config)  # a free slot: it keeps what was built to check it
    assert at_once.wait(WAIT_S) and at_once.state == "finished", at_once.reason
    late = held(manager, config)
    assert tensor_bytes_held(late) == 0
    shown = late.model_copy().state_dict()  # a queued job's views: the weights it will start from
    started = state_at_start(late)
    manager.set_max_running(1)
    assert late.wait(WAIT_S) and late.state == "finished", late.reason
    seeded = prepare(config, dry_run=False).template.state_dict()  # the seed's, independently
    assert_same_state(started, seeded)
    assert_same_state(shown, seeded)
    assert late.snapshot()["losses"] == at_once.snapshot()["losses"]  # every term, every step
    assert late.snapshot()["final_metrics"] == at_once.snapshot()["final_metrics"]
    assert_same_state(late.model_copy().state_dict(), at_once.model_copy().state_dict())


def test_a_bad_config_is_refused_at_submit_even_with_no_slot_free():
    manager = JobManager(max_running=0, heartbeat_timeout=0)
    one_sample = TrainConfig(arch="cnn", arch_config={"batch_norm": True}, batch_size=1)
    with pytest.raises(ConfigError) as raised:  # found once the model is built
        manager.submit(one_sample)
    assert (raised.value.field, raised.value.value) == ("batch_size", 1)
    assert manager.jobs() == []


@pytest.fixture
def trained(tmp_path):
    """A finished 3-step run's checkpoint, its config, and a config that goes on to step 6."""
    config = dataclasses.replace(CASES["mlp with dropout"], max_steps=3)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    return job.save_checkpoint(tmp_path / "trained"), dataclasses.replace(config, max_steps=6)


def remove_checkpoint(path) -> None:
    for file in checkpoint.checkpoint_paths(path):
        file.unlink()


def test_a_queued_resume_trains_from_its_own_copy_as_one_resumed_at_once(trained):
    path, longer = trained
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    at_once = manager.submit(longer, resume=path)
    assert at_once.wait(WAIT_S) and at_once.state == "finished", at_once.reason
    late = held(manager, longer, resume=path)
    # What was restored to check it (weights, Adam's moments) is let go of; its page still shows
    # where it resumes from.
    assert tensor_bytes_held(late) == 0
    assert late.snapshot()["step"] == 3 and len(late.snapshot()["losses"]["loss"]) == 3
    tensors, _ = checkpoint.read_checkpoint(path)
    saved_weights, _ = checkpoint.split_tensors(tensors)
    assert_same_state(late.model_copy().state_dict(), saved_weights)
    copy = late.recipe.resume
    remove_checkpoint(path)  # the student's file may go; the job trains from its own copy
    manager.set_max_running(1)
    assert late.wait(WAIT_S) and late.state == "finished", late.reason
    assert late.snapshot()["losses"] == at_once.snapshot()["losses"]
    assert [step for step, _ in late.snapshot()["losses"]["loss"]] == list(range(1, 7))
    assert not copy.exists() and not late.recipe.folder.exists()  # removed once it ended


def test_weights_from_a_checkpoint_removed_after_submit_still_reach_the_queued_job(trained):
    path, longer = trained
    manager = JobManager(max_running=0, heartbeat_timeout=0)
    late = manager.submit(longer, weights_from=WeightsFrom(path, "layers"))  # a new head
    assert tensor_bytes_held(late) == 0
    started = state_at_start(late)
    tensors, _ = checkpoint.read_checkpoint(path)
    remove_checkpoint(path)  # a lesson's second stage removes its temporary folder at once
    manager.set_max_running(1)
    assert late.wait(WAIT_S) and late.state == "finished", late.reason
    assert late.snapshot()["losses"]["loss"][0][0] == 1  # a new run: its own counters
    saved_weights, _ = checkpoint.split_tensors(tensors)
    seeded = prepare(longer, dry_run=False).template.state_dict()
    expected = {
        name: saved_weights[name] if name.startswith("layers.") else value
        for name, value in seeded.items()
    }
    assert any(name.startswith("output.") for name in expected)
    assert_same_state(started, expected)


def test_stopping_or_dropping_a_queued_job_removes_its_copies(trained):
    path, longer = trained
    manager = JobManager(max_running=0, heartbeat_timeout=0, queue_per_student=2)
    stopped = manager.submit(longer, resume=path, owner=ALICE)
    dropped = manager.submit(longer, resume=path, owner=ALICE)
    folders = [job.recipe.folder for job in (stopped, dropped)]
    assert all(folder.is_dir() for folder in folders) and folders[0] != folders[1]
    assert stopped.stop() and stopped.state == "stopped"
    assert not folders[0].exists()
    assert manager.end_session(ALICE) == [dropped]
    assert dropped.state == "stopped" and not folders[1].exists()
    assert checkpoint.checkpoint_paths(path)[0].exists()  # the file it was given stays
