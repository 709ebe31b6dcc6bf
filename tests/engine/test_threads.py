"""engine.threads: work for a job runs in a short-lived thread and reports back like a call."""

import threading

import pytest

import deeparch.engine.backends as backends
import deeparch.engine.recipe as recipe
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.engine.threads import run_in_fresh_thread
from deeparch.errors import ConfigError


def test_returns_the_result_from_another_thread_that_has_exited():
    seen = {}

    def work(a, b):
        seen["thread"] = threading.current_thread()
        return a * b

    assert run_in_fresh_thread(work, 6, 7, name="t-work") == 42
    assert seen["thread"] is not threading.current_thread()
    assert seen["thread"].name == "t-work"
    assert not seen["thread"].is_alive()  # its OpenMP team went with it


def test_raises_the_workers_exception_in_the_caller():
    def broken():
        raise ConfigError("lr", -1, "a number above 0")

    with pytest.raises(ConfigError) as raised:
        run_in_fresh_thread(broken, name="t-broken")
    assert raised.value.field == "lr" and raised.value.value == -1


def test_submit_and_load_prepare_outside_the_callers_thread(monkeypatch, tmp_path):
    prepared_in = []
    real_prepare = backends.prepare

    def recording_prepare(config, dry_run=True):
        prepared_in.append(threading.current_thread())
        return real_prepare(config, dry_run=dry_run)

    monkeypatch.setattr(backends, "prepare", recording_prepare)
    monkeypatch.setattr(recipe, "prepare", recording_prepare)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    config = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (16,)}, max_steps=3, epochs=1)
    job = manager.submit(config)
    assert job.wait(60) and job.state == "finished"
    loaded = manager.load_checkpoint(job.save_checkpoint(tmp_path))
    assert loaded.state == "finished" and loaded.snapshot()["step"] == 3
    # A queued job is checked when submitted, and built again when it starts: neither in the
    # caller's thread nor in its training thread.
    manager.set_max_running(0)
    queued = manager.submit(config)
    manager.set_max_running(1)
    assert queued.wait(60) and queued.state == "finished"
    assert len(prepared_in) == 4
    assert all(t is not threading.current_thread() and not t.is_alive() for t in prepared_in)
    assert all(t.name != f"deeparch-job-{queued.id}" for t in prepared_in)
    # a bad configuration still raises in the caller, and nothing is queued
    with pytest.raises(ConfigError):
        manager.submit(TrainConfig(arch="mlp", lr=-1.0))
    assert [j.id for j in manager.jobs()] == [job.id, loaded.id, queued.id]
