"""JobState: one table of transitions, applied in one place; 'paused' means really paused."""

import dataclasses
import itertools

import pytest

from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.engine.manager import JobManager
from deeparch.engine.state import (
    ACTIVE_STATES,
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    StateMachine,
)
from tests.engine.jobs import patch_train_step

WAIT_S = 60
SMALL = TrainConfig(
    arch="mlp", arch_config={"hidden_sizes": (32,)}, batch_size=32, epochs=100, max_steps=40
)


@pytest.mark.parametrize(("start", "to"), list(itertools.product(JobState, JobState)))
def test_every_move_is_allowed_exactly_when_the_table_says(start, to):
    machine = StateMachine("job-x", start, "")
    if to in TRANSITIONS[start]:
        machine.move(to, "because")
        assert machine.read() == (to, "because")
    else:
        with pytest.raises(IllegalTransition):
            machine.move(to, "because")
        assert machine.state is start


def test_final_states_are_final_and_the_table_covers_every_state():
    assert set(TRANSITIONS) == set(JobState)
    assert ACTIVE_STATES | FINAL_STATES == set(JobState) and not ACTIVE_STATES & FINAL_STATES
    assert all(TRANSITIONS[state] == frozenset() for state in FINAL_STATES)
    assert JobState.RUNNING == "running" and f"{JobState.PAUSED}" == "paused"


def test_pause_is_a_request_until_the_thread_sits_between_steps():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    manager.set_max_running(0)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=0))
    seen = {}

    def make_step(inner, original):
        def train_step(batch):
            if "asked" not in seen and job.snapshot()["step"] == 3:
                seen["asked"] = job.pause()
                # Inside a step: asked, not yet paused.
                seen["state"], seen["reason"] = job.state, job.snapshot()["reason"]
            return original(batch)

        return train_step

    patch_train_step(job, make_step)
    manager.set_max_running(1)
    assert job.wait_paused(WAIT_S)
    assert seen == {
        "asked": True,
        "state": JobState.RUNNING,
        "reason": "pausing after the current step",
    }
    assert job.state is JobState.PAUSED and job.snapshot()["step"] == 4
    assert job.stop() and job.wait(WAIT_S) and job.state is JobState.STOPPED


def test_a_queued_job_stopped_never_starts_and_leaves_the_queue():
    manager = JobManager(max_running=0, heartbeat_timeout=0)
    job = manager.submit(SMALL)
    assert job.queue_position() == 1
    assert job.stop("not today") and job.wait(0) and job.state is JobState.STOPPED
    assert job.reason == "not today" and job.queue_position() == 0
    manager.set_max_running(1)  # nothing to start
    assert job.state is JobState.STOPPED and manager.running_count() == 0


def test_jobs_and_loaded_checkpoints_implement_the_job_handle(tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(dataclasses.replace(SMALL, max_steps=5))
    assert job.wait(WAIT_S)
    loaded = manager.load_checkpoint(job.save_checkpoint(tmp_path))
    for handle in (job, loaded):
        assert isinstance(handle, JobHandle)
    assert loaded.state is JobState.FINISHED and loaded.reason.startswith("loaded from ")
    assert not loaded.pause() and not loaded.resume() and not loaded.step() and not loaded.stop()
    assert loaded.latest_snapshot()["step"] == 5
