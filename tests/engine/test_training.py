"""The training engine: configs, states, control, queue, heartbeats, failures, reproducibility."""

import dataclasses
import math

import pytest
import torch

from deeparch.config import field_specs
from deeparch.engine.config import TrainConfig, train_field_specs
from deeparch.engine.divergence import divergence_reason, explosion_reason
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError
from deeparch.tasks.classify import ClassifyTask

WAIT_S = 60  # generous: the machine may be busy; nothing asserts on time

SMALL = TrainConfig(
    arch="mlp",
    arch_config={"hidden_sizes": (32,)},
    batch_size=32,
    epochs=100,
    max_steps=40,
    snapshot_every=10,
)


def held(manager: JobManager, config: TrainConfig, **kwargs):
    """Submit while no slot is free, so a test can instrument the job before it runs."""
    manager.set_max_running(0)
    job = manager.submit(config, **kwargs)
    assert job.state == "queued"
    return job


def instrument(job, at_call: int, action):
    """Run `action(job)` inside the training thread during the at_call-th train_step."""
    original = job.task.train_step
    calls = []

    def train_step(batch):
        calls.append(1)
        if len(calls) == at_call:
            action(job)
        return original(batch)

    job.task.train_step = train_step
    return calls


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
    assert specs["optimizer"].choices == ("sgd", "adam", "adamw", "rmsprop", "adagrad")
    assert specs["lr"].log and specs["lr"].min > 0
    assert all(spec.help for spec in specs.values())


def test_batch_norm_with_batches_of_one_names_batch_size():
    config = dataclasses.replace(SMALL, batch_size=1, arch_config={"batch_norm": True})
    with pytest.raises(ConfigError) as raised:
        JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert (raised.value.field, raised.value.value) == ("batch_size", 1)
    assert "at least 2 for a model with batch normalisation" in str(raised.value)


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


# ---- states and control ---------------------------------------------------------------------


def test_a_job_runs_to_finished_and_publishes_everything():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(dataclasses.replace(SMALL, epochs=2, max_steps=0), owner="tab")
    assert job.wait(WAIT_S)
    snap = job.snapshot("tab")
    assert snap["state"] == job.state == "finished"
    assert snap["reason"] == "trained 2 epochs (250 steps)"  # 4000 samples // 32 = 125 per epoch
    assert (snap["step"], snap["total_steps"], snap["epoch"], snap["epochs"]) == (250, 250, 2, 2)
    assert [s for s, _ in snap["losses"]["loss"]] == list(range(1, 251))
    assert set(snap["losses"]) == {"loss", "cross_entropy"}
    assert [m["epoch"] for m in snap["epoch_metrics"]] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(snap["epoch_metrics"][0])
    # snapshots every 10 steps; the one at step 250 is also the final one
    assert [s["step"] for s in snap["snapshots"]] == list(range(10, 251, 10))
    assert snap["samples_per_s"] > 0 and snap["elapsed_s"] > 0 and snap["eta_s"] == 0
    assert snap["lr"] == SMALL.lr and snap["queue_position"] == 0
    assert snap["config"] == job.config.to_dict()
    # the published epoch train loss is the mean of that epoch's step losses
    first_epoch = [value for step, value in snap["losses"]["loss"] if step <= 125]
    assert snap["epoch_metrics"][0]["train_loss"] == pytest.approx(sum(first_epoch) / 125)


def test_snapshot_is_a_copy_the_reader_may_change():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=20))
    assert job.wait(WAIT_S)
    first = job.snapshot()
    first["losses"]["loss"].clear()
    first["epoch_metrics"].append({"epoch": 99})
    second = job.snapshot()
    assert len(second["losses"]["loss"]) == 20 and second["epoch_metrics"] == []
    with pytest.raises(ValueError):  # published arrays are read-only
        second["snapshots"][0]["confusion"][0, 0] = 5


def test_pause_step_resume_and_stop_take_effect_within_one_step():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = held(manager, dataclasses.replace(SMALL, max_steps=0))
    instrument(job, 5, lambda j: j.pause())
    manager.set_max_running(1)
    assert job.wait_paused(WAIT_S)
    assert job.state == "paused"
    assert job.snapshot()["step"] == 5  # the step under way when pause came was the last
    assert job.reason == "paused by the user at step 5"

    assert job.step()
    assert job.wait_paused(WAIT_S)
    assert job.snapshot()["step"] == 6 and job.state == "paused"

    instrument(job, 4, lambda j: j.stop())  # counts calls from here: the 10th step overall
    assert job.resume() and job.state == "running"
    assert job.wait(WAIT_S)
    assert job.state == "stopped"
    assert job.snapshot()["step"] == 10
    assert job.reason == "stopped by the user at step 10"
    assert not job.resume() and not job.pause() and not job.stop()


def test_queue_limit_and_positions():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    first = held(manager, dataclasses.replace(SMALL, max_steps=0))
    instrument(first, 2, lambda j: j.pause())
    manager.set_max_running(1)
    assert first.wait_paused(WAIT_S)
    second = manager.submit(SMALL)
    third = manager.submit(SMALL)
    assert (second.state, third.state) == ("queued", "queued")
    assert second.snapshot()["queue_position"] == 1
    assert third.snapshot()["queue_position"] == 2
    assert third.snapshot()["reason"] == "waiting for a free training slot: position 2 in the queue"
    assert manager.running_count() == 1  # a paused job keeps its slot

    first.stop()
    assert first.wait(WAIT_S)  # the next job is started before wait() returns
    assert second.state in ("running", "finished")
    assert third.state == "queued" and third.snapshot()["queue_position"] == 1
    third.stop()
    assert third.state == "stopped" and third.snapshot()["queue_position"] == 0
    assert second.wait(WAIT_S) and second.state == "finished"
    assert [j.id for j in manager.jobs()] == [first.id, second.id, third.id]


def test_heartbeat_expiry_stops_an_abandoned_job():
    manager = JobManager(max_running=2, heartbeat_timeout=1000)
    watched = held(manager, dataclasses.replace(SMALL, max_steps=0), owner="tab-a")
    abandoned = manager.submit(dataclasses.replace(SMALL, max_steps=0), owner="tab-b")
    ownerless = manager.submit(dataclasses.replace(SMALL, max_steps=0))
    for job in (watched, abandoned, ownerless):
        instrument(job, 1, lambda j: j.pause())
    manager.set_max_running(3)
    for job in (watched, abandoned, ownerless):
        assert job.wait_paused(WAIT_S)
        job.last_seen -= 2000  # as if nobody had looked for 2000 s
    manager.heartbeat(watched.id)
    assert manager.expire_abandoned() == [abandoned]
    assert abandoned.wait(WAIT_S) and abandoned.state == "stopped"
    assert "owner has not looked at it for 1000 s" in abandoned.reason
    assert watched.state == "paused" and ownerless.state == "paused"
    watched.snapshot(owner="tab-a")  # reading as the owner is a heartbeat too
    assert manager.expire_abandoned() == []
    for job in (watched, ownerless):
        job.stop()
        assert job.wait(WAIT_S)


def test_the_watchdog_expires_jobs_by_itself():
    manager = JobManager(max_running=1, heartbeat_timeout=0.2)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=0, epochs=1000), owner="tab")
    assert job.wait(WAIT_S)
    assert job.state == "stopped" and "owner has not looked" in job.reason


def run_with_loss_at(step: int, loss: float):
    """A small job (lr 0.5) whose reported total loss is `loss` at the given step; waits for it."""
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = held(manager, dataclasses.replace(SMALL, lr=0.5))
    original = job.task.train_step
    steps = []

    def train_step(batch):
        losses = original(batch)
        steps.append(1)
        return {**losses, "loss": loss} if len(steps) == step else losses

    job.task.train_step = train_step
    manager.set_max_running(1)
    assert job.wait(WAIT_S)
    return job


def test_a_nan_loss_ends_the_job_as_diverged_with_a_hint():
    job = run_with_loss_at(37, math.nan)
    assert job.state == "diverged"
    assert job.reason == "loss became NaN at step 37; try a learning rate below 0.5"
    assert job.snapshot()["step"] == 37


@pytest.mark.parametrize("arch", ["unet1d", "vae"])
def test_a_huge_learning_rate_really_diverges(arch):
    # The VAE's NaN weights make BCE raise rather than return NaN: still reported as diverged.
    config = TrainConfig(arch=arch, optimizer="sgd", lr=10.0, batch_size=32, max_steps=50)
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(WAIT_S)
    assert job.state == "diverged"
    assert "try a learning rate below 10" in job.reason
    assert ("became NaN at step" in job.reason) or ("loss exploded from" in job.reason)


def test_a_finite_loss_that_explodes_ends_the_job_as_diverged_within_one_step():
    job = run_with_loss_at(12, 5e6)
    first = job.snapshot()["losses"]["loss"][0][1]
    assert job.state == "diverged" and job.snapshot()["step"] == 12
    assert job.reason == (
        f"the loss exploded from {first:.3g} to 5e+06 at step 12; try a learning rate below 0.5"
    )


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


def test_a_failing_job_leaves_its_neighbour_running():
    manager = JobManager(max_running=2, heartbeat_timeout=0)
    healthy = held(manager, SMALL)
    failing = manager.submit(SMALL)

    def explode(job):
        raise RuntimeError("boom in the forward pass")

    instrument(failing, 3, explode)
    manager.set_max_running(2)
    assert failing.wait(WAIT_S) and healthy.wait(WAIT_S)
    assert failing.state == "failed"
    assert failing.reason == "RuntimeError at step 2: boom in the forward pass"
    assert healthy.state == "finished" and healthy.snapshot()["step"] == 40


def test_out_of_memory_fails_the_job_and_releases_memory():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = held(manager, SMALL)

    def out_of_memory(job):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    instrument(job, 5, out_of_memory)
    manager.set_max_running(1)
    assert job.wait(WAIT_S)
    assert job.state == "failed"
    assert "out of memory" in job.reason and "smaller batch_size" in job.reason
    assert all(len(opt.state) == 0 for opt in job.task.optimizers.values())


def test_same_seed_same_losses_step_for_step():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    # dropout draws from the global generator; the engine reseeds it per step
    config = dataclasses.replace(SMALL, arch_config={"hidden_sizes": (32,), "dropout": 0.3})
    runs = [manager.submit(config) for _ in range(2)]
    other = manager.submit(dataclasses.replace(config, seed=1))
    for job in (*runs, other):
        assert job.wait(WAIT_S) and job.state == "finished"
    losses = [job.snapshot()["losses"]["loss"] for job in (*runs, other)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_model_copy_is_a_detached_eval_copy_of_the_weights():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(SMALL)
    copy_while_running = job.model_copy()
    assert not copy_while_running.training
    assert job.wait(WAIT_S)
    final = job.model_copy()
    for (name, copied), live in zip(final.state_dict().items(), job.model.state_dict().values()):
        assert torch.equal(copied, live), name
        assert copied.data_ptr() != live.data_ptr()
    next(final.parameters()).data.zero_()  # changing the copy leaves the job alone
    assert not torch.equal(next(final.parameters()), next(job.model.parameters()))


def test_a_channels_last_cnn_resumes_exactly_and_keeps_its_values(tmp_path):
    # The CPU engine stores a CNN's weights channels-last and uses fused optimizers; a checkpoint
    # stores contiguous tensors, so resuming must give the moments their weights' layout again.
    cnn = TrainConfig(
        arch="cnn", batch_size=16, epochs=100, max_steps=6, snapshot_every=3, optimizer="adam"
    )
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    straight = manager.submit(cnn)
    half = manager.submit(dataclasses.replace(cnn, max_steps=3))
    for job in (straight, half):
        assert job.wait(WAIT_S) and job.state == "finished", job.reason
    weight = straight.model.features.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    resumed = manager.submit(cnn, resume=half.save_checkpoint(tmp_path))
    assert resumed.wait(WAIT_S) and resumed.state == "finished", resumed.reason
    expected, got = straight.model.state_dict(), resumed.model.state_dict()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    # The same values as a contiguous copy of the model computes.
    copy = straight.model_copy()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), straight.model.eval()(x))
