"""The protocol client against a real `streamlit run app.py`: it gets the Train page with every
widget, a Start creates a job that trains to the end, and the tab keeps the fragments' timers."""

import asyncio
import time

import pytest

from deeparch.config import field_specs
from deeparch.engine.config import train_field_specs
from deeparch.models import get_arch
from deeparch.models.registry import compatible_datasets
from scripts.loadtest.protocol import Tab, user_key
from scripts.loadtest.student import Student, job_id_of, progress_text, state_of
from tests.app.browser import running_app

MAX_STEPS = 50  # long enough that the live panel still polls when Start returns


@pytest.fixture(scope="module")
def server_url():
    with running_app("loadtest-client") as url:
        yield url


def run(coro):
    return asyncio.run(coro)


def test_the_train_page_arrives_with_every_widget(server_url):
    async def visit():
        async with Tab(server_url) as tab:
            await tab.open()
            await tab.settle()
            home_headings = [e.heading.body for e in tab.find("heading")]
            await tab.goto("train")
            await tab.settle()
            return tab, home_headings

    tab, home_headings = run(visit())
    assert not tab.errors
    assert "Your jobs" in home_headings  # the router drew the job sidebar on the home page
    keys = {user_key(widget_id) for widget_id in tab.widgets}
    arch = get_arch("mlp")
    # every hyperparameter of the architecture, and the training settings the page shows are
    # TrainConfig's fields (the page leaves out those that do not apply to the task)
    assert {f"train_mlp_{spec.name}" for spec in field_specs(arch.config_cls)} <= keys
    shown = {key for key in keys if key.startswith("train_cfg_")}
    assert shown <= {f"train_cfg_{spec.name}" for spec in train_field_specs()}
    core = ("epochs", "lr", "batch_size", "optimizer", "seed", "max_steps")
    assert {f"train_cfg_{name}" for name in core} <= shown
    assert {"train_arch", "train_dataset_mlp", "train_upload"} <= keys
    assert tab.widgets[tab.widget_id("train_arch")].string_value == "mlp"
    assert (
        tab.widgets[tab.widget_id("train_dataset_mlp")].string_value
        == (compatible_datasets(arch)[0])
    )
    assert tab.widget_id("train_start")  # the button is on the page, holding no state
    assert tab.widget_id("train_start") not in tab.widgets


def test_start_creates_a_job_that_trains_to_its_last_step(server_url):
    async def train():
        student = Student(
            server_url,
            "s",
            time.monotonic(),
            {"train_cfg_epochs": 1, "train_cfg_max_steps": MAX_STEPS},
        )
        assert await student.open()
        job = await student.start(120)
        timers_while_training = student.tab.timers
        await student.watch_to_end(120)
        await student.tab.wait_for(lambda t: not t.timers, 15)
        # a second tab opened on the job's link while the student's is open sees the same job
        async with Tab(server_url) as other:
            other.query_string = f"job={job.job_id}"
            await other.open("train")
            await other.settle()
            await other.wait_for(lambda t: bool(state_of(t)), 15)
        await student.close()
        return student, job, timers_while_training, other

    student, job, timers, other = run(train())
    assert job.job_id.startswith("job-")
    assert job.first_point_s is not None and job.queue_wait_s is not None
    assert job.state == "finished"
    assert progress_text(student.tab).endswith(f"step {MAX_STEPS}/{MAX_STEPS}")
    assert len(timers) == 2  # the live panel's and the job sidebar's run_every
    assert student.tab.timers == []  # the run ended: no fragment polls any more
    assert job.samples_per_s and job.samples_per_s > 0
    assert job_id_of(other) == job.job_id
    assert state_of(other) == "finished"
    assert progress_text(other).endswith(f"step {MAX_STEPS}/{MAX_STEPS}")
