"""The engine's behaviour on every backend: threads of this process, and Ray workers.

Each test runs once per backend (BACKENDS). The Ray backend runs on one local Ray for the module
(4 logical CPUs, 127.0.0.1 only, token authentication with this run's own token), with a pool of
workers of half a CPU each, reused from test to test as a server reuses them; "ray-turns" is a
second pool on the same Ray whose workers train up to four jobs each, taking turns
(ray_jobs_per_worker).
"""

import collections
import dataclasses
import gc
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import weakref

import pytest
import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.engine import ray_backend
from deeparch.engine.backends import ThreadBackend, make_backend
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.ended import EndedRun
from deeparch.engine.manager import JobManager
from deeparch.engine.prepare import prepare
from deeparch.engine.ray_job import RayJob, RayJobError
from deeparch.engine.store import RunStore
from deeparch.errors import ConfigError
from deeparch.lessons.runner import LessonRun, run_lesson
from deeparch.settings import ClassSettings
from tests.engine.jobs import SMALL, held, instrument, patch_train_step
from tests.lessons.test_lesson_stages import OWN, STAGED, TAKEN

WAIT_S = 120  # generous: the machine may be busy; nothing asserts on time
BACKENDS = ("threads", "ray", "ray-turns")
JOBS_PER_WORKER = 4
RAY_CPUS = 4  # logical: what the pools' workers reserve between them, not cores


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, its backend, and Ray shut down afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ray_backend.LOCAL_RAY_ENVIRONMENT.items():
            patch.setenv(name, value)
        # Token authentication stays on, with a token of this run's (none is written to ~/.ray).
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        started = ray_backend.connect(num_cpus=RAY_CPUS, log_to_driver=False)
        backend = ray_backend.RayBackend(local=ThreadBackend(), cpus_per_job=0.5)
        yield backend
        backend.shutdown()
        if started:
            ray_backend.disconnect()


@pytest.fixture(scope="module")
def ray_turns(local_ray):
    """A second pool on the same Ray: workers of a quarter CPU, four jobs each taking turns."""
    backend = ray_backend.RayBackend(
        local=ThreadBackend(), cpus_per_job=0.25, jobs_per_worker=JOBS_PER_WORKER, slice_s=0.02
    )
    yield backend
    backend.shutdown()  # its workers only: Ray is local_ray's


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "ray":
        return request.getfixturevalue("local_ray")
    if request.param == "ray-turns":
        return request.getfixturevalue("ray_turns")
    return ThreadBackend()


# ---- the local Ray itself -----------------------------------------------------------------------


def test_the_local_ray_listens_on_127_0_0_1_with_token_authentication(local_ray):
    ray = ray_backend.ray_module()
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_make_backend_follows_the_settings_and_threads_never_load_ray(local_ray):
    program = (
        "import sys\n"
        "from deeparch.engine.backends import ThreadBackend, make_backend\n"
        "from deeparch.engine.manager import JobManager\n"
        "from deeparch.settings import ClassSettings\n"
        "assert isinstance(make_backend(ClassSettings()), ThreadBackend)\n"
        "print('ray' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    settings = ClassSettings(
        backend="ray", ray_cpus_per_job=0.5, ray_gpus_per_job=0.0, ray_jobs_per_worker=3
    )
    made = make_backend(settings)
    try:
        assert isinstance(made, ray_backend.RayBackend)
        assert (made.pool.cpus_per_job, made.pool.gpus_per_job) == (0.5, 0.0)
        assert (made.pool.jobs_per_worker, made.pool.slice_s) == (3, settings.slice_s)
        assert made.capacity() == int(RAY_CPUS / 0.5) * 3
        assert made.pool.size() == (1, 0)  # one worker started ahead of the first job
    finally:
        made.shutdown()  # its workers only: Ray was already running
    assert ray_backend.ray_module().is_initialized()


def test_a_lesson_run_from_the_terminal_trains_on_the_backend_the_settings_name(
    local_ray, monkeypatch
):
    # `python -m deeparch lesson run` (and `train`) used to build a thread manager whatever
    # DEEPARCH_BACKEND said. Now its jobs are Ray jobs, and its backend is shut down after.
    monkeypatch.setenv("DEEPARCH_BACKEND", "ray")
    monkeypatch.setenv("DEEPARCH_RAY_CPUS_PER_JOB", "0.5")
    created, shut = [], []
    create, shutdown = ray_backend.RayBackend.create, ray_backend.RayBackend.shutdown

    def recording_create(self, *args, **kwargs):
        created.append(create(self, *args, **kwargs))
        return created[-1]

    def recording_shutdown(self):
        shut.append(self)
        shutdown(self)

    monkeypatch.setattr(ray_backend.RayBackend, "create", recording_create)
    monkeypatch.setattr(ray_backend.RayBackend, "shutdown", recording_shutdown)
    outcome = run_lesson("exploding_gradients", "ci")
    assert outcome.held, outcome.verdict
    assert len(created) == 2 and all(isinstance(job, RayJob) for job in created)
    assert {job.config.grad_clip for job in created} == {0.0, 1.0}
    assert len(shut) == 1 and shut[0].pool.size() == (0, 0)  # its workers are gone
    assert ray_backend.ray_module().is_initialized()  # the class's Ray stays up


def test_ray_is_started_from_a_thread_that_outlives_a_short_lived_caller():
    # A local Ray's servers die with the thread that started them (Linux's parent-death signal
    # goes to the thread): started from a page's script thread, the GCS server died a minute
    # later and took the web server with it. So ray.init() runs in a thread that stays.
    class FakeRay:
        def init(self, **options):
            self.thread, self.options = threading.current_thread(), options

    fake = FakeRay()
    caller = threading.Thread(
        target=ray_backend.init_in_a_lasting_thread, args=(fake,), kwargs={"num_cpus": 1}
    )
    caller.start()
    caller.join()
    assert fake.options == {"num_cpus": 1}
    assert fake.thread is not caller and fake.thread.is_alive()  # after its caller has ended
    ray_backend._release.set()  # what disconnect() does after ray.shutdown()
    fake.thread.join(WAIT_S)
    assert not fake.thread.is_alive()


# ---- errors at submit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        dataclasses.replace(SMALL, batch_size=1, arch_config={"batch_norm": True}),
        TrainConfig(arch="cnn", dataset="digits", batch_size=8),  # pooling leaves 0 pixels
    ],
    ids=["batch norm with batches of one", "cnn too deep for 8x8 digits"],
)
def test_a_config_error_while_preparing_reaches_the_caller_as_itself(backend, config):
    with pytest.raises(ConfigError) as expected:
        prepare(config)  # in this process: the error the student must see
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    with pytest.raises(ConfigError) as raised:
        manager.submit(config)
    assert type(raised.value) is ConfigError
    assert (raised.value.field, raised.value.value) == (expected.value.field, expected.value.value)
    assert str(raised.value) == str(expected.value)
    assert manager.jobs() == []  # nothing was queued


def test_a_new_worker_warms_up_on_the_default_run_and_keeps_no_job_of_it(local_ray):
    worker = local_ray.pool.any()
    ray = ray_backend.ray_module()
    assert ray.get(worker.warm.remote(), timeout=WAIT_S) == TrainConfig().arch
    assert ray.get(worker.jobs_held.remote(), timeout=WAIT_S) == 0


def test_a_job_no_node_has_room_for_is_refused_saying_why(local_ray, monkeypatch):
    monkeypatch.setattr(ray_backend, "DESCRIBE_WAIT_S", 3.0)
    greedy = ray_backend.RayBackend(local=ThreadBackend(), gpus_per_job=0.5, prestart=0)
    try:
        manager = JobManager(max_running=1, heartbeat_timeout=0, backend=greedy)
        with pytest.raises(RayJobError) as raised:
            manager.submit(SMALL)
        assert str(raised.value).endswith(
            "each job asks for 1 CPU and 0.5 GPU (ray_cpus_per_job, ray_gpus_per_job); the "
            f"cluster's largest node has {RAY_CPUS} CPU and 0 GPU"
        )
        assert manager.jobs() == []
    finally:
        greedy.shutdown()  # its pending worker goes


def test_resuming_from_another_architecture_names_arch(backend, tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=2))
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    with pytest.raises(ConfigError) as raised:
        manager.submit(TrainConfig(arch="cnn", max_steps=2), resume=job.save_checkpoint(tmp_path))
    assert (raised.value.field, raised.value.value) == ("arch", "cnn")
    assert "'mlp', the checkpoint's" in str(raised.value)


PRETRAINED = TrainConfig.from_dict(
    {"arch": "cnn", "dataset": "mnist", "arch_config": {"dense_width": 16}, "classes": "0,1,2",
     "max_steps": 3, "batch_size": 16, "seed": 1}
)  # fmt: skip
TAKEN_PARTS = ("features.", "classifier.fc1.")  # what WeightsFrom(path, "features,classifier.fc1")


def test_a_new_run_takes_a_checkpoints_parts_and_the_frozen_ones_stay(backend, tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    source = manager.submit(PRETRAINED)
    assert source.wait(WAIT_S) and source.state == "finished", source.reason
    path = source.save_checkpoint(tmp_path / "first")
    old = source.model_copy().state_dict()
    second = dataclasses.replace(PRETRAINED, classes="3,4,5", seed=2, freeze="features")
    with pytest.raises(ConfigError) as refused:  # checked at submit, on a Ray worker too
        manager.submit(second, weights_from=WeightsFrom(path, "nosuch"))
    assert refused.value.field == "weights_from" and "features" in str(refused.value)
    job = held(manager, second, weights_from=WeightsFrom(path, "features,classifier.fc1"))
    for file in checkpoint.checkpoint_paths(path):  # read at submit: the job needs no file
        file.unlink()
    fresh = prepare(second, dry_run=False).model.state_dict()  # what seed 2 alone builds
    queued = job.model_copy().state_dict()  # what it will start from
    assert set(queued) == set(old) == set(fresh)
    for key in old:
        expected = old[key] if key.startswith(TAKEN_PARTS) else fresh[key]
        assert torch.equal(queued[key], expected), key
    manager.set_max_running(1)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    trained = job.model_copy().state_dict()
    for key in old:
        if key.startswith("features."):  # taken and frozen: the source's, exactly
            assert torch.equal(trained[key], old[key]), key
        else:  # taken or new, then trained 3 steps
            assert not torch.equal(trained[key], queued[key]), key


def test_a_lesson_in_two_stages_runs_and_its_second_takes_the_first_ones_weights(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    run = LessonRun(STAGED, "ci", manager, owner="student")
    assert run.wait(WAIT_S)
    assert run.status == "done", run.error
    outcome = run.outcome
    assert outcome.held  # the taken hidden layers are the first stage's, exactly; its own differ
    assert {label: r["stage"] for label, r in outcome.runs.items()} == {
        "pretrained": 1, TAKEN: 2, OWN: 2,
    }  # fmt: skip
    assert [outcome.runs[label]["steps"] for label in ("pretrained", TAKEN, OWN)] == [5, 3, 3]
    assert {job.owner for job in run.jobs.values()} == {"student"}


# ---- states and control -------------------------------------------------------------------------


def test_a_job_runs_to_finished_and_publishes_everything(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
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
    assert (snap["id"], snap["arch"], snap["dataset"], snap["task"]) == (
        job.id,
        "mlp",
        "mnist",
        "classify",
    )
    assert snap["final_metrics"]["step"] == 250
    assert job.latest_snapshot()["step"] == 250
    # the published epoch train loss is the mean of that epoch's step losses
    first_epoch = [value for step, value in snap["losses"]["loss"] if step <= 125]
    assert snap["epoch_metrics"][0]["train_loss"] == pytest.approx(sum(first_epoch) / 125)


def test_snapshot_is_a_copy_the_reader_may_change(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=20))
    assert job.wait(WAIT_S)
    first = job.snapshot()
    first["losses"]["loss"].clear()
    first["epoch_metrics"].append({"epoch": 99})
    second = job.snapshot()
    assert len(second["losses"]["loss"]) == 20 and second["epoch_metrics"] == []
    with pytest.raises(ValueError):  # published arrays are read-only
        second["snapshots"][0]["confusion"][0, 0] = 5


def test_snapshots_while_training_grow_to_the_final_one(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = held(manager, dataclasses.replace(SMALL, max_steps=0))
    instrument(job, 25, lambda j: j.pause())
    manager.set_max_running(1)
    assert job.wait_paused(WAIT_S)
    paused = job.snapshot()
    assert paused["step"] == 25 and [s["step"] for s in paused["snapshots"]] == [10, 20]
    assert [s for s, _ in paused["losses"]["loss"]] == list(range(1, 26))
    for _ in range(10):
        assert job.step() and job.wait_paused(WAIT_S)
    stepped = job.snapshot()  # read again: only what changed comes over
    assert stepped["step"] == 35 and [s["step"] for s in stepped["snapshots"]] == [10, 20, 30]
    assert stepped["losses"]["loss"][:25] == paused["losses"]["loss"]
    assert stepped["snapshots"][0] is paused["snapshots"][0]  # kept, not sent again
    assert job.stop() and job.wait(WAIT_S) and job.state == "stopped"


def test_pause_step_resume_and_stop_take_effect_within_one_step(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
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


def test_queue_limit_and_positions(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
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


def test_heartbeat_expiry_stops_an_abandoned_job(backend):
    manager = JobManager(max_running=2, heartbeat_timeout=1000, backend=backend)
    watched = held(manager, dataclasses.replace(SMALL, max_steps=0), owner="tab-a")
    abandoned = manager.submit(dataclasses.replace(SMALL, max_steps=0), owner="tab-b")
    ownerless = manager.submit(dataclasses.replace(SMALL, max_steps=0))
    for job in (watched, abandoned, ownerless):
        instrument(job, 1, lambda j: j.pause())
    manager.set_max_running(3)
    for job in (watched, abandoned, ownerless):
        assert job.wait_paused(WAIT_S)
    # All at once, so the watchdog's own check (every 5 s here) cannot come in between.
    for job in (watched, abandoned, ownerless):
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


def test_the_watchdog_expires_jobs_by_itself(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0.2, backend=backend)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=0, epochs=200), owner="tab")
    assert job.wait(WAIT_S)
    assert job.state == "stopped" and "owner has not looked" in job.reason


# ---- divergence and failures --------------------------------------------------------------------


def run_with_loss_at(backend, step: int, loss: float):
    """A small job (lr 0.5) whose reported total loss is `loss` at the given step; waits for it."""
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = held(manager, dataclasses.replace(SMALL, lr=0.5))

    def make_step(inner, original):
        steps = []

        def train_step(batch):
            losses = original(batch)
            steps.append(1)
            return {**losses, "loss": loss} if len(steps) == step else losses

        return train_step

    patch_train_step(job, make_step)
    manager.set_max_running(1)
    assert job.wait(WAIT_S)
    return job


def test_a_nan_loss_ends_the_job_as_diverged_with_a_hint(backend):
    job = run_with_loss_at(backend, 37, math.nan)
    assert job.state == "diverged"
    assert job.reason == "loss became NaN at step 37; try a learning rate below 0.5"
    assert job.snapshot()["step"] == 37


@pytest.mark.parametrize("arch", ["unet1d", "vae"])
def test_a_huge_learning_rate_really_diverges(backend, arch):
    # The VAE's NaN weights make BCE raise rather than return NaN: still reported as diverged.
    config = TrainConfig(arch=arch, optimizer="sgd", lr=10.0, batch_size=32, max_steps=50)
    job = JobManager(max_running=1, heartbeat_timeout=0, backend=backend).submit(config)
    assert job.wait(WAIT_S)
    assert job.state == "diverged"
    assert "try a learning rate below 10" in job.reason
    assert ("became NaN at step" in job.reason) or ("loss exploded from" in job.reason)


def test_a_finite_loss_that_explodes_ends_the_job_as_diverged_within_one_step(backend):
    job = run_with_loss_at(backend, 12, 5e6)
    first = job.snapshot()["losses"]["loss"][0][1]
    assert job.state == "diverged" and job.snapshot()["step"] == 12
    assert job.reason == (
        f"the loss exploded from {first:.3g} to 5e+06 at step 12; try a learning rate below 0.5"
    )


def explode(job):
    raise RuntimeError("boom in the forward pass")


def fail_one_of_two(manager):
    """A healthy job and one that raises in its third step, started together: (failing,
    healthy) once both ended, checked."""
    healthy = held(manager, SMALL)
    failing = manager.submit(SMALL)
    instrument(failing, 3, explode)
    manager.set_max_running(2)
    assert failing.wait(WAIT_S) and healthy.wait(WAIT_S)
    assert failing.state == "failed"
    assert failing.reason == "RuntimeError at step 2: boom in the forward pass"
    assert healthy.state == "finished" and healthy.snapshot()["step"] == 40
    return failing, healthy


def test_a_failing_job_leaves_its_neighbour_running(backend):
    fail_one_of_two(JobManager(max_running=2, heartbeat_timeout=0, backend=backend))


def test_out_of_memory_fails_the_job_with_advice(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = held(manager, SMALL)

    def out_of_memory(job):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    instrument(job, 5, out_of_memory)
    manager.set_max_running(1)
    assert job.wait(WAIT_S)
    assert job.state == "failed"
    assert "out of memory" in job.reason and "smaller batch_size" in job.reason


def test_a_killed_worker_fails_its_job_with_a_message_and_the_app_goes_on(local_ray):
    manager = JobManager(max_running=2, heartbeat_timeout=0, backend=local_ray)
    doomed = held(manager, dataclasses.replace(SMALL, max_steps=0))
    neighbour = manager.submit(SMALL)
    instrument(doomed, 3, lambda j: j.pause())
    manager.set_max_running(2)
    assert doomed.wait_paused(WAIT_S)
    assert doomed.snapshot()["step"] == 3  # read once, as its page does while it trains
    host, pid = doomed.worker_process()
    assert pid != os.getpid()  # the training ran in another process
    os.kill(pid, signal.SIGKILL)
    assert doomed.wait(WAIT_S)
    assert doomed.state == "failed"
    assert doomed.reason.startswith(f"its Ray worker (process {pid} on {host}) died at step 3 (")
    assert doomed.reason.endswith("the other jobs go on: start this one again")
    snap = doomed.snapshot()  # what had been read before stays
    assert (snap["state"], snap["reason"], snap["step"]) == ("failed", doomed.reason, 3)
    assert len(snap["losses"]["loss"]) == 3
    with pytest.raises(RayJobError):
        doomed.model_copy()
    assert neighbour.wait(WAIT_S) and neighbour.state == "finished"
    assert neighbour.snapshot()["step"] == 40
    again = manager.submit(SMALL)  # the app goes on: the pool replaced the dead worker
    assert again.wait(WAIT_S) and again.state == "finished", again.reason
    assert again.worker_process()[1] != pid


@pytest.fixture
def one_worker_with_turns(local_ray):
    """A pool of its own, one warm worker of a quarter CPU training up to four jobs in turns."""
    backend = ray_backend.RayBackend(
        local=ThreadBackend(), cpus_per_job=0.25, jobs_per_worker=JOBS_PER_WORKER, slice_s=0.02
    )
    yield backend
    backend.shutdown()


def computing_on_its_worker(job):
    """(jobs computing now, jobs waiting for a turn, turns) on the worker training `job`."""
    slices = job.gate.slices
    return len(slices.computing()), slices.waiting(), slices.turns


def until(condition, what):
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), what


def all_started(pool):
    """Wait until every worker of the pool has its process up; how many there are."""
    workers = list(pool._load)
    for worker in workers:
        pool.where(worker)
    return len(workers)


def test_workers_with_turns_spread_the_jobs_keep_a_spare_and_train_one_job_at_a_time(
    one_worker_with_turns,
):
    backend, pool = one_worker_with_turns, one_worker_with_turns.pool
    assert backend.capacity() == int(RAY_CPUS / 0.25) * JOBS_PER_WORKER  # workers that fit x 4
    manager = JobManager(max_running=10, heartbeat_timeout=0, backend=backend)
    # 25,000 steps of a wider MLP each: stopped long before they end
    long = dataclasses.replace(
        SMALL, epochs=200, max_steps=0, arch_config={"hidden_sizes": (256, 256)}
    )
    first = manager.submit(long)
    until(lambda: pool.size() == (1, 1), "the busy worker and a spare")
    assert all_started(pool) == 2
    second = manager.submit(long)  # goes to the warm spare, not to share the busy worker
    assert second.worker_process() != first.worker_process()
    jobs = [first, second] + [manager.submit(long) for _ in range(2 * JOBS_PER_WORKER - 2)]
    until(lambda: min(job.snapshot()["step"] for job in jobs) >= 1, "every job trains, in turns")
    processes = collections.Counter(job.worker_process() for job in jobs)
    assert max(processes.values()) <= JOBS_PER_WORKER  # never more jobs on a worker than it takes
    idle, busy = pool.size()
    assert busy == len(processes) and idle <= 1  # at most one spare kept warm
    for job in (first, second):
        computing, waiting, turns = job.call_in_worker(computing_on_its_worker)
        assert turns == 1 and computing <= 1 and computing + waiting <= JOBS_PER_WORKER
    for job in jobs:
        job.stop("enough")
    for job in jobs:
        assert job.wait(WAIT_S) and job.state == "stopped", job.reason
    assert pool.size() == (idle + busy, 0) and pool.jobs_held() == 0


def test_a_job_failing_on_a_shared_worker_leaves_the_worker_to_the_others(
    one_worker_with_turns, monkeypatch
):
    backend = one_worker_with_turns
    monkeypatch.setattr(backend.pool, "workers_that_fit", lambda: 1)  # one worker, no spare
    manager = JobManager(max_running=2, heartbeat_timeout=0, backend=backend)
    failing, healthy = fail_one_of_two(manager)
    assert failing.worker_process() == healthy.worker_process()  # one worker, taking turns
    assert backend.pool.size() == (1, 0)  # kept: the failure was the job's, not the worker's
    again = manager.submit(SMALL)
    assert again.wait(WAIT_S) and again.state == "finished", again.reason
    assert again.worker_process() == healthy.worker_process()


def test_a_sessions_ray_jobs_are_released_when_it_ends_and_their_workers_hold_nothing(
    local_ray, tmp_path
):
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, backend=local_ray, store=RunStore(tmp_path)
    )
    owner = "d" * 32
    manager.open_session(owner)
    ended = manager.submit(dataclasses.replace(SMALL, max_steps=5), owner=owner)
    assert ended.wait(WAIT_S) and ended.state == "finished", ended.reason
    kept = manager.get(ended.id)
    assert isinstance(kept, EndedRun)  # its weights in the store, not on the server
    trained, reopened = ended.model_copy().state_dict(), kept.model_copy().state_dict()
    assert all(torch.equal(reopened[name], value) for name, value in trained.items())
    queued = held(manager, SMALL, owner=owner)
    assert manager.end_session(owner) == [queued]  # dropped with its session, never started
    assert queued.state == "stopped" and manager.jobs_held() == 0
    assert manager.owners_tracked() == 0
    idle, busy = local_ray.pool.size()
    assert busy == 0 and idle >= 1  # the ended job's worker went back to the pool
    assert local_ray.pool.jobs_held() == 0  # and holds nothing of it
    server_side = weakref.ref(ended)
    del ended, kept, queued
    gc.collect()
    assert server_side() is None  # nor does the server: its final weights and checkpoint went


# ---- weights and checkpoints --------------------------------------------------------------------


def saved_weights(job, folder):
    tensors, _ = checkpoint.read_checkpoint(job.save_checkpoint(folder))
    return checkpoint.split_tensors(tensors)[0]


def test_same_seed_same_losses_step_for_step(backend):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    # dropout draws from the job's generator, reseeded per step
    config = dataclasses.replace(SMALL, arch_config={"hidden_sizes": (32,), "dropout": 0.3})
    runs = [manager.submit(config) for _ in range(2)]
    other = manager.submit(dataclasses.replace(config, seed=1))
    for job in (*runs, other):
        assert job.wait(WAIT_S) and job.state == "finished"
    losses = [job.snapshot()["losses"]["loss"] for job in (*runs, other)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_model_copy_is_a_detached_eval_copy_of_the_weights(backend, tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    queued = held(manager, SMALL)
    initial = queued.model_copy()  # a queued job's weights are its seed's
    manager.set_max_running(1)
    copy_while_running = queued.model_copy()
    assert not initial.training and not copy_while_running.training
    assert queued.wait(WAIT_S)
    final = queued.model_copy()
    saved = saved_weights(queued, tmp_path)
    assert set(final.state_dict()) == set(saved)
    for name, value in final.state_dict().items():
        assert torch.equal(value, saved[name]), name
    name, weight = next(iter(final.named_parameters()))
    assert not torch.equal(initial.get_parameter(name), weight)
    weight.data.zero_()  # changing the copy leaves the job alone
    assert torch.equal(queued.model_copy().get_parameter(name), saved[name])


def test_a_resumed_cnn_equals_one_trained_straight_and_loads_back(backend, tmp_path):
    # The CPU engine stores a CNN's weights channels-last and uses fused optimizers; a checkpoint
    # stores contiguous tensors, so resuming must give the moments their weights' layout again.
    cnn = TrainConfig(
        arch="cnn", batch_size=16, epochs=100, max_steps=6, snapshot_every=3, optimizer="adam"
    )
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    straight = manager.submit(cnn)
    half = manager.submit(dataclasses.replace(cnn, max_steps=3))
    for job in (straight, half):
        assert job.wait(WAIT_S) and job.state == "finished", job.reason
    half_path = half.save_checkpoint(tmp_path / "half")
    resumed = manager.submit(cnn, resume=half_path)
    assert resumed.wait(WAIT_S) and resumed.state == "finished", resumed.reason
    assert resumed.snapshot()["step"] == 6
    assert [s for s, _ in resumed.snapshot()["losses"]["loss"]] == list(range(1, 7))
    expected = straight.model_copy().state_dict()
    got = resumed.model_copy().state_dict()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    loaded = manager.load_checkpoint(half_path)
    assert loaded.state == "finished" and loaded.snapshot()["step"] == 3
    for name, value in loaded.model_copy().state_dict().items():
        assert torch.equal(value, half.model_copy().state_dict()[name]), name


def test_a_queued_resume_holds_no_copy_of_its_checkpoint_in_memory_until_it_starts(
    backend, tmp_path
):
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    half = manager.submit(dataclasses.replace(SMALL, max_steps=3))
    assert half.wait(WAIT_S) and half.state == "finished", half.reason
    path = half.save_checkpoint(tmp_path / "half")
    longer = dataclasses.replace(SMALL, max_steps=6)
    at_once = manager.submit(longer, resume=path)
    assert at_once.wait(WAIT_S) and at_once.state == "finished", at_once.reason
    late = held(manager, longer, resume=path)
    # Threads: no model, optimizer or restored trainer; Ray: no object in its store. It keeps a
    # copy of the checkpoint on disk, so the file it was given may go.
    assert (late._start_ref if isinstance(late, RayJob) else late.trainer) is None
    for file in checkpoint.checkpoint_paths(path):
        file.unlink()
    manager.set_max_running(1)
    assert late.wait(WAIT_S) and late.state == "finished", late.reason
    assert late.snapshot()["step"] == 6
    assert late.snapshot()["losses"] == at_once.snapshot()["losses"]


# ---- randomness belongs to the job --------------------------------------------------------------

# Each draws from randomness while it trains: dropout masks, the VAE's reparameterisation noise,
# the GAN's latent noise, an LSTM's inter-layer dropout (inside PyTorch's kernel).
CONCURRENT_CASES = {
    "mlp with dropout 0.5": TrainConfig(
        arch="mlp", arch_config={"hidden_sizes": (64, 32), "dropout": 0.5}, batch_size=32
    ),
    "vae": TrainConfig(arch="vae", arch_config={"latent_dim": 2}, batch_size=32),
    "mlp_gan": TrainConfig(arch="mlp_gan", arch_config={"hidden_sizes": (32, 64)}, batch_size=32),
    "lstm, 2 layers, dropout 0.5": TrainConfig(
        arch="lstm",
        arch_config={"hidden_size": 16, "num_layers": 2, "dropout": 0.5},
        batch_size=32,
    ),
}


def losses_of(jobs):
    for job in jobs:
        assert job.wait(WAIT_S) and job.state == "finished", job.reason
    return [job.snapshot()["losses"] for job in jobs]


@pytest.mark.parametrize("case", list(CONCURRENT_CASES))
def test_two_jobs_side_by_side_give_the_serial_losses_step_for_step(backend, case):
    config = dataclasses.replace(CONCURRENT_CASES[case], epochs=100, max_steps=30, seed=3)
    serial = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    alone = losses_of([serial.submit(config)])[0]
    other = losses_of([serial.submit(dataclasses.replace(config, seed=4))])[0]

    together = JobManager(max_running=0, heartbeat_timeout=0, backend=backend)
    pair = [together.submit(config), together.submit(config)]
    together.set_max_running(2)  # both start at once and train at the same time
    first, second = losses_of(pair)
    assert first == alone and second == alone  # every term, every step, exactly
    assert other["loss"] != alone["loss"]  # and the seed does matter
