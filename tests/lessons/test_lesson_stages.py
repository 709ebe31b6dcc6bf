"""A lesson in two stages: the runner trains the first stage's runs, then the second stage's, some
starting from a first-stage run's weights, all under the student's owner id, and judges both."""

import time

import torch

from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.engine.state import JobState
from deeparch.lessons.registry import Lesson, Outcome, Prediction, StagedRun
from deeparch.lessons.runner import LessonRun

TINY = {"arch": "mlp", "dataset": "digits", "arch_config": {"hidden_sizes": (8,)},
        "epochs": 1000, "batch_size": 16}  # fmt: skip
# Holds the one training slot while paused: 1,437 steps an epoch, far more than a test waits.
BLOCKER = TrainConfig.from_dict({**TINY, "epochs": 100, "batch_size": 1, "max_steps": 0})
TAKEN, OWN = "hidden layers taken, frozen", "own weights"
DEADLINE_S = 120.0


def pretrain(budget):
    return {"pretrained": TrainConfig.from_dict({**TINY, "max_steps": 5, "seed": 0})}


def transfer(budget):
    settings = {**TINY, "max_steps": 3, "seed": 1}
    return {
        TAKEN: StagedRun(
            TrainConfig.from_dict({**settings, "freeze": "layers"}),
            weights_from=("pretrained", "layers"),
        ),
        OWN: StagedRun(TrainConfig.from_dict(settings)),
    }


def judge(budget, jobs):
    """Held when the frozen run's hidden layers are the pretrained run's final ones, exactly."""
    pretrained = jobs["pretrained"].model_copy().layers.state_dict()
    taken = jobs[TAKEN].model_copy().layers.state_dict()
    own = jobs[OWN].model_copy().layers.state_dict()
    same = all(torch.equal(pretrained[name], taken[name]) for name in pretrained)
    differs = any(not torch.equal(pretrained[name], own[name]) for name in pretrained)
    return Outcome("two_stages", held=same and differs, verdict="compared",
                   measured={"labels": list(jobs)})  # fmt: skip


STAGED = Lesson(
    name="two_stages", title="Two stages", claim="A second stage starts from the first's weights.",
    source="this test", prediction=Prediction("choice", "?", choices=("yes", "no")), judge=judge,
    runs=pretrain, second_stage=transfer,
)  # fmt: skip


def wait_for(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def hold_the_slot(manager):
    """A job of another student, running and then paused: it keeps the manager's only slot."""
    job = manager.submit(BLOCKER, owner="another student")
    wait_for(lambda: job.state is not JobState.QUEUED, "the blocker to start")
    assert job.pause() and job.wait_paused(DEADLINE_S)
    return job


def test_stage_one_done_then_stage_two_queued_then_the_outcome():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    try:
        first_blocker = hold_the_slot(manager)
        run = LessonRun(STAGED, "ci", manager, owner="student")
        assert (run.stage, run.stages, run.status) == (1, 2, "training")
        assert list(run.jobs) == ["pretrained"] and run.jobs["pretrained"].state is JobState.QUEUED
        # Queued behind the first stage (its student was served last), so it takes the slot as
        # soon as the first stage ends, and the second stage must wait in the queue.
        second_blocker = manager.submit(BLOCKER, owner="another student")
        first_blocker.stop()
        wait_for(lambda: run.stage == 2, "the second stage")
        assert run.jobs["pretrained"].state is JobState.FINISHED
        wait_for(lambda: second_blocker.state is not JobState.QUEUED, "the second blocker")
        assert second_blocker.pause() and second_blocker.wait_paused(DEADLINE_S)
        assert list(run.jobs) == ["pretrained", TAKEN, OWN]
        assert [run.jobs[label].state for label in (TAKEN, OWN)] == [JobState.QUEUED] * 2
        assert run.status == "training" and run.outcome is None
        # Both stages are the student's own runs, on the student's manager.
        assert {job.owner for job in run.jobs.values()} == {"student"}
        assert set(run.jobs.values()) <= set(manager.jobs(owner="student"))
        second_blocker.stop()
        assert run.wait(DEADLINE_S)
        assert run.status == "done", run.error
        outcome = run.outcome
        assert outcome.held and outcome.measured["labels"] == ["pretrained", TAKEN, OWN]
        assert {label: r["stage"] for label, r in outcome.runs.items()} == {
            "pretrained": 1, TAKEN: 2, OWN: 2,
        }  # fmt: skip
        assert {r["state"] for r in outcome.runs.values()} == {"finished"}
        assert [outcome.runs[label]["steps"] for label in ("pretrained", TAKEN, OWN)] == [5, 3, 3]
        assert "runs" in outcome.to_json_dict(STAGED)  # the CLI prints both stages' runs
    finally:
        manager.shutdown()


def test_a_lesson_stopped_in_its_first_stage_never_starts_the_second():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    try:
        blocker = hold_the_slot(manager)
        run = LessonRun(STAGED, "ci", manager, owner="student")
        run.stop()
        assert run.wait(DEADLINE_S)
        assert run.status == "stopped" and run.outcome is None
        assert list(run.jobs) == ["pretrained"]
        assert run.jobs["pretrained"].state is JobState.STOPPED
        blocker.stop()
    finally:
        manager.shutdown()


def five_runs(budget):
    return {
        f"run {seed}": TrainConfig.from_dict({**TINY, "max_steps": 3, "seed": seed})
        for seed in range(5)
    }


def judge_all(budget, jobs):
    steps = [job.snapshot()["step"] for job in jobs.values()]
    return Outcome("five_runs", held=True, verdict="trained", measured={"steps": steps})


FIVE = Lesson(
    name="five_runs", title="Five runs", claim="More runs than a student may hold at once.",
    source="this test", prediction=Prediction("choice", "?", choices=("yes", "no")),
    judge=judge_all, runs=five_runs,
)  # fmt: skip


def test_a_lesson_with_more_runs_than_a_student_may_hold_submits_the_rest_as_places_free_up():
    # The class default: 1 training and 2 waiting per student; the lesson has 5 runs.
    manager = JobManager(max_running=1, heartbeat_timeout=0, jobs_per_student=1,
                         queue_per_student=2)  # fmt: skip
    blocker = hold_the_slot(manager)  # so that none of the lesson's runs can end meanwhile
    run = LessonRun(FIVE, "ci", manager, owner="a student")
    assert list(run.jobs) == ["run 0", "run 1", "run 2"]  # what fits: 1 + 2 per student
    assert all(job.state is JobState.QUEUED for job in run.jobs.values())
    blocker.stop("the test's blocker is done")
    wait_for(lambda: run.outcome is not None or run.error, "the lesson's outcome")
    assert run.error == "", run.error
    assert run.outcome.measured["steps"] == [3, 3, 3, 3, 3]
    assert list(run.outcome.runs) == [f"run {seed}" for seed in range(5)]


class StoppedWhileSubmitting:
    """A manager whose `at`-th submit stops the lesson first, as a student pressing Stop while
    the lesson's thread submits a waiting run does."""

    def __init__(self, manager, at):
        self.manager, self.at, self.calls, self.lesson = manager, at, 0, None

    def submit(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            self.lesson.stop()
        return self.manager.submit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.manager, name)


def test_a_lesson_stopped_while_its_thread_submits_a_waiting_run_stops_that_run_too():
    manager = JobManager(max_running=1, heartbeat_timeout=0, jobs_per_student=1,
                         queue_per_student=2)  # fmt: skip
    try:
        blocker = hold_the_slot(manager)
        stopping = StoppedWhileSubmitting(manager, at=5)  # 0-2 fit, 3 refused (call 4), waits
        run = stopping.lesson = LessonRun(FIVE, "ci", stopping, owner="a student")
        assert list(run.jobs) == ["run 0", "run 1", "run 2"]
        blocker.stop("the test's blocker is done")
        assert run.wait(DEADLINE_S)
        assert (run.status, run.error, run.outcome) == ("stopped", "", None)
        assert stopping.calls == 5  # run 3 again, then run 4 never
        assert list(run.jobs) == ["run 0", "run 1", "run 2", "run 3"]
        # stopped by the runner, or (3 steps, a free slot) ended before the stop reached it
        assert run.jobs["run 3"].state in (JobState.STOPPED, JobState.FINISHED)
        assert not any(job.is_active() for job in manager.jobs())
    finally:
        manager.shutdown()
