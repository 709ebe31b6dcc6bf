"""A simulated student: opens the app, goes to Train, sets a few widgets, presses Start, watches.

Times are taken from what the tab receives, as a student would see them: the first loss point is
the first plotly loss chart with a point in it; the queue wait is from Start until the page's
"state" metric first reads "running".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .protocol import Tab

LOSS_CHART = "train_loss_chart"
START, STOP = "train_start", "train_stop"
ENDED = ("finished", "stopped", "failed", "diverged")
# What each student sets before Start: the small budget keeps 30 jobs on 2 cores in minutes.
DEFAULT_SETTINGS = {"train_cfg_epochs": 1, "train_cfg_max_steps": 60}


@dataclass
class JobRecord:
    """One Start as a student saw it."""

    job_id: str = ""
    start_s: float = 0.0  # seconds since the scenario began
    queue_wait_s: float | None = None
    first_point_s: float | None = None
    state: str = ""
    samples_per_s: float | None = None
    progress: str = ""
    end_s: float | None = None  # seconds since the scenario began, when the page showed the end
    steps: int | None = None  # trained, from the progress text "step 60/60"
    batch_size: int | None = None
    # What the tab showed when its wait for the run's end timed out (None when it ended)
    stuck: dict | None = None


@dataclass
class StudentRecord:
    name: str
    open_page: str = ""
    page_s: float | None = None  # open to the first page drawn
    train_page_s: float | None = None
    error_page: bool = False
    errors: list[str] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    problem: str = ""
    session_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_done(progress: str) -> int | None:
    """The trained steps in a progress text such as "finished · epoch 1/1 · step 60/60"."""
    _, found, rest = progress.rpartition("step ")
    done = rest.split("/", 1)[0]
    return int(done) if found and done.isdigit() else None


def state_of(tab: Tab) -> str:
    return tab.metric("state") or ""


def samples_per_s(tab: Tab) -> float | None:
    body = tab.metric("samples/s")
    try:
        return float(body.replace(",", "")) if body else None
    except ValueError:
        return None


def job_id_of(tab: Tab) -> str:
    for part in tab.query_string.split("&"):
        if part.startswith("job="):
            return part[4:]
    return ""


def progress_text(tab: Tab) -> str:
    """The main area's progress bar (the sidebar has one per job too)."""
    bars = [tab.elements[p] for p in sorted(tab.elements) if p[:1] == (0,)]
    texts = [e.progress.text for e in bars if e.WhichOneof("type") == "progress"]
    return texts[-1] if texts else ""


class Student:
    """One tab driven through the Train page; every figure lands in `record`."""

    def __init__(
        self, url: str, name: str, t0: float, settings: dict | None = None, open_page: str = ""
    ) -> None:
        self.tab = Tab(url, name=name)
        self.record = StudentRecord(name, open_page=open_page)
        self.open_page = open_page  # the URL's path a tab opens (a shared link), "" for "/"
        self.t0 = t0
        self.settings = DEFAULT_SETTINGS if settings is None else settings

    def _since(self, moment: float) -> float:
        return round(time.monotonic() - moment, 3)

    def _note_errors(self) -> None:
        self.record.errors = list(self.tab.errors)
        self.record.error_page = self.tab.error_page

    async def open(self, timeout: float = 180.0) -> bool:
        """Open the app and go to Train; False (and the error noted) if a page failed."""
        opened = time.monotonic()
        await self.tab.connect(timeout)
        await self.tab.open(self.open_page)
        await self.tab.settle(timeout)
        self.record.page_s = self._since(opened)
        self.record.session_id = self.tab.session_id
        self._note_errors()
        if self.tab.error_page:
            return False
        switched = time.monotonic()
        if self.tab.page_hash != self.tab.pages.get("train"):
            await self.tab.goto("train")
            await self.tab.settle(timeout)
        self.record.train_page_s = self._since(switched)
        self._note_errors()
        if self.tab.error_page:
            return False
        for key, value in self.settings.items():
            await self.tab.set_widget(key, value)
            await self.tab.settle(timeout)
        return True

    async def start(
        self, first_point_timeout: float = 600.0, page_timeout: float | None = None
    ) -> JobRecord:
        """Press Start and wait for the first loss point (or the run's end, or an error); the
        page's answer to the press may take page_timeout (default: first_point_timeout).

        Only what runs after the page learnt the new job's id drew counts: the previous run's
        chart and state stay on the page until the new job's replace them.
        """
        job = JobRecord(start_s=round(time.monotonic() - self.t0, 3))
        self.record.jobs.append(job)
        pressed = time.monotonic()
        with contextlib.suppress(LookupError):
            job.batch_size = self.tab.widgets[self.tab.widget_id("train_cfg_batch_size")].int_value
        previous_job = job_id_of(self.tab)
        since: list[int] = []  # the first run that knows the new job, once the id has changed

        def seen(tab: Tab) -> None:
            if not since:
                if job_id_of(tab) in ("", previous_job):
                    return
                since.append(tab.run_count())
            state = tab.metric("state", since[0]) or ""
            if state and state != "queued" and job.queue_wait_s is None:
                job.queue_wait_s = self._since(pressed)  # out of the queue: training or ended
            if job.first_point_s is None and tab.chart_points(LOSS_CHART, since[0]) > 0:
                job.first_point_s = self._since(pressed)

        self.tab.on_change = seen
        await self.tab.click(START)
        await self.tab.settle(page_timeout or first_point_timeout)
        await self.tab.wait_for(lambda t: job_id_of(t) not in ("", previous_job), 5.0)
        job.job_id = job_id_of(self.tab)
        if job.job_id in ("", previous_job):  # Start refused: the page says why
            job.job_id, job.state = "", "refused"
            job.progress = " / ".join(e.alert.body for e in self.tab.find("alert"))
            self._note_errors()
            return job
        await self.tab.wait_for(
            lambda t: (
                job.first_point_s is not None
                or (job.queue_wait_s is not None and state_of(t) in ENDED)
                or t.error_page
            ),
            first_point_timeout,
        )
        self._read_job(job)
        return job

    def _read_job(self, job: JobRecord) -> None:
        job.state = state_of(self.tab)
        job.samples_per_s = samples_per_s(self.tab)
        job.progress = progress_text(self.tab)
        job.steps = steps_done(job.progress)
        if job.state in ENDED and job.end_s is None:
            job.end_s = round(time.monotonic() - self.t0, 3)
        self._note_errors()

    async def watch_to_end(self, timeout: float = 900.0) -> JobRecord:
        """Keep the tab open (its fragment timers polling) until the current run ends."""
        job = self.record.jobs[-1]
        ended = await self.tab.wait_for(lambda t: state_of(t) in ENDED or t.error_page, timeout)
        # the run's end triggers a full rerun (st.rerun on a state change); let it draw
        await asyncio.sleep(0)
        self._read_job(job)
        if not ended:
            job.stuck = self.tab.view()
        if self.tab.dropped():
            self.record.problem = (
                f"the server stopped answering this tab: {self.tab.unanswered} reruns unanswered "
                f"for {time.monotonic() - self.tab.last_received:.0f} s (dropped by the server)"
            )
        return job

    async def stop(self, timeout: float = 120.0) -> None:
        """Press the live panel's Stop and wait until the page shows the run ended."""
        await self.tab.click(STOP)
        await self.tab.wait_for(lambda t: state_of(t) in ENDED or t.error_page, timeout)
        self._read_job(self.record.jobs[-1])

    async def close(self) -> None:
        await self.tab.close()
