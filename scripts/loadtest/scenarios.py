"""The load test's scenarios: cold start, ramp, soak, churn (on either backend; abandonment and
the arrival figures have files of their own).

Each takes the Options and returns a JSON-ready dict; the server's memory, threads and CPU are
sampled for the whole scenario (cold start: per repetition).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .monitor import Sampler, listening_pid
from .server import free_port, start_server, stop_server, wait_healthy
from .student import DEFAULT_SETTINGS, ENDED, Student

RAMP_STAGES = (1, 5, 10, 20, 30)
# Where a class lands on a fresh server: the home page, and the pages a shared link opens.
COLD_PAGES = ("", "train", "compare", "inspect", "features", "latent", "sequences")
# A run an abandoned tab leaves behind must outlast the heartbeat, or it simply finishes.
ABANDON_SETTINGS = {"train_cfg_epochs": 50, "train_cfg_max_steps": 0}


@dataclass
class Options:
    scenario: str = "ramp"
    students: int = 30
    url: str = ""
    start_server: bool = False
    app_dir: Path = Path(".")
    port: int = 0
    backend: str = ""
    server_env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    repeat: int = 10
    stages: tuple[int, ...] = RAMP_STAGES
    minutes: float = 10.0
    cycles: int = 100
    settings: dict = field(default_factory=dict)
    open_pages: tuple[str, ...] | None = None  # URL paths the tabs open, in turn
    abandon_wait_s: float = 150.0
    arrivals: int = 10  # arrival: students arriving one after another while the rest train
    window_s: float = 15.0  # arrival: seconds the job alone is measured for
    log_dir: Path = Path("/tmp/deeparch-loadtest")
    timeout_s: float = 900.0
    sample_every_s: float = 1.0
    # What the scenario has measured so far (ramp: its finished stages), kept by a plan when the
    # scenario fails or is cancelled past its cap, so a stuck last stage does not lose the others.
    so_far: dict = field(default_factory=dict)


def stats(values: list[float | None]) -> dict:
    """Median, 90th percentile (nearest rank) and maximum of the values that exist."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return {"n": 0, "missing": len(values)}
    rank = max(0, -(-9 * len(present) // 10) - 1)  # ceil(0.9 n) - 1
    middle = len(present) // 2
    median = present[middle] if len(present) % 2 else (present[middle - 1] + present[middle]) / 2
    return {
        "n": len(present),
        "missing": len(values) - len(present),
        "median": round(median, 3),
        "p90": round(present[rank], 3),
        "max": round(present[-1], 3),
    }


@dataclass
class Server:
    url: str
    pid: int | None
    log_path: Path | None = None
    startup_s: float | None = None
    exit_code: int | None = None


@contextlib.asynccontextmanager
async def server_for(options: Options, name: str) -> AsyncIterator[Server]:
    """The server to test: started fresh (--start-server) or the one at --url."""
    if not options.start_server:
        port = urlsplit(options.url).port or 80
        yield Server(options.url, options.pid or listening_pid(port))
        return
    port = options.port or free_port()
    env = dict(options.server_env)
    if options.backend:
        env["DEEPARCH_BACKEND"] = options.backend
    log_path = options.log_dir / f"{name}{'-' + options.backend if options.backend else ''}.log"
    process = start_server(options.app_dir, port, log_path, env)
    server = Server(f"http://127.0.0.1:{port}", process.pid, log_path)
    try:
        server.startup_s = round(await asyncio.to_thread(wait_healthy, server.url, process), 2)
        yield server
    finally:
        server.exit_code = await asyncio.to_thread(stop_server, process)


def _error_summary(students: list[Student]) -> dict:
    messages = Counter(e for s in students for e in s.record.errors)
    return {
        "error_pages": sum(s.record.error_page for s in students),
        "messages": dict(messages.most_common(5)),
    }


def _jobs_summary(students: list[Student]) -> dict:
    jobs = [job for s in students for job in s.record.jobs]
    return {
        "jobs": len(jobs),
        "states": dict(Counter(job.state for job in jobs)),
        "first_point_s": stats([job.first_point_s for job in jobs]),
        "queue_wait_s": stats([job.queue_wait_s for job in jobs]),
        "samples_per_s": stats([job.samples_per_s for job in jobs if job.state == "finished"]),
        "per_job": [
            [job.job_id, job.state, job.first_point_s, job.queue_wait_s, job.samples_per_s]
            for job in jobs
        ],
        "per_job_columns": ["job", "state", "first_point_s", "queue_wait_s", "samples_per_s"],
        # the runs whose end a tab waited for in vain, and what the tab showed then
        "stuck": [{"job": job.job_id, **job.stuck} for job in jobs if job.stuck],
    }


def class_throughput(students: list[Student]) -> dict:
    """The class's samples/s: every ended job's samples over the span from the first Start to
    the last end (queue waits, job setup and page overhead included, as the class lives them)."""
    jobs = [j for s in students for j in s.record.jobs if j.end_s is not None and j.steps]
    if not jobs:
        return {"class_samples_per_s": None}
    samples = sum(j.steps * (j.batch_size or 0) for j in jobs)
    span = max(j.end_s for j in jobs) - min(j.start_s for j in jobs)
    return {"class_samples_per_s": round(samples / span, 1) if span > 0 else None}


def _settings(options: Options, defaults: dict | None = None) -> dict:
    return {**(defaults if defaults is not None else DEFAULT_SETTINGS), **options.settings}


async def _guarded(coro, student: Student) -> None:
    """Run one student's part; a failure is recorded on the student, never kills the scenario."""
    try:
        await coro
    except Exception as error:  # noqa: BLE001  (reported per student)
        student.record.problem = f"{type(error).__name__}: {error}"


# ------------------------------------------------------------------------------ cold start
async def cold(options: Options) -> dict:
    """N tabs open a freshly started server at the same moment; repeated R times."""
    if not options.start_server:
        raise SystemExit("--scenario cold needs --start-server (a fresh server each time)")
    trials = []
    for trial in range(options.repeat):
        async with server_for(options, f"cold-{trial}") as server:
            sampler = Sampler(server.pid, options.sample_every_s).start() if server.pid else None
            t0 = time.monotonic()
            pages = options.open_pages if options.open_pages is not None else COLD_PAGES
            students = [
                Student(server.url, f"s{i}", t0, {}, pages[i % len(pages)])
                for i in range(options.students)
            ]
            await asyncio.gather(*(_guarded(s.open(options.timeout_s), s) for s in students))
            for student in students:
                await student.close()
            if sampler:
                await sampler.stop()
        trials.append(
            {
                "trial": trial,
                **_error_summary(students),
                "problems": [s.record.problem for s in students if s.record.problem],
                "page_s": stats([s.record.page_s for s in students]),
                "train_page_s": stats([s.record.train_page_s for s in students]),
                "server_startup_s": server.startup_s,
                "server_log": str(server.log_path),
                "server_exit_code": server.exit_code,
                "server": sampler.summary() if sampler else None,
            }
        )
    return {
        "open_pages": list(pages),
        "error_pages_per_trial": [t["error_pages"] for t in trials],
        "tabs_per_trial": options.students,
        "trials": trials,
    }


# ------------------------------------------------------------------------------ ramp
async def _one_run(student: Student, options: Options) -> None:
    if await student.open(options.timeout_s):
        await student.start(options.timeout_s)
        await student.watch_to_end(options.timeout_s)


async def ramp(options: Options) -> dict:
    """Stages of N students arriving together, each training once and watching to the end."""
    stages = [n for n in options.stages if n <= options.students] or [options.students]
    settings = _settings(options)
    results = options.so_far.setdefault("stages", [])
    async with server_for(options, "ramp") as server:
        sampler = Sampler(server.pid, options.sample_every_s).start() if server.pid else None
        # one run before the stages, so stage 1 is one job on a warm server (data parsed once)
        warmup = Student(server.url, "warmup", time.monotonic(), settings)
        await _guarded(_one_run(warmup, options), warmup)
        await warmup.close()
        for n in stages:
            t0 = time.monotonic()
            students = [Student(server.url, f"n{n}-s{i}", t0, settings) for i in range(n)]
            await asyncio.gather(*(_guarded(_one_run(s, options), s) for s in students))
            wall = time.monotonic() - t0
            for student in students:
                await student.close()
            results.append(
                {
                    "students": n,
                    "wall_s": round(wall, 2),
                    **_error_summary(students),
                    "problems": [s.record.problem for s in students if s.record.problem],
                    **_jobs_summary(students),
                    **class_throughput(students),
                    "rss_mb_after": sampler.samples[-1].rss_mb
                    if sampler and sampler.samples
                    else None,
                }
            )
            await asyncio.sleep(2)  # the closed sessions' cleanup, before the next stage
        if sampler:
            await sampler.stop()
    # the class's throughput against one student's alone, both measured the same way
    alone = results[0]["class_samples_per_s"] if results[0]["students"] == 1 else None
    for stage in results:
        if alone and stage.get("class_samples_per_s"):
            stage["class_vs_one_job_alone"] = round(stage["class_samples_per_s"] / alone, 2)
    return {
        "settings": settings,
        "warmup": {
            "first_point_s": warmup.record.jobs[0].first_point_s if warmup.record.jobs else None,
            "problem": warmup.record.problem,
        },
        "stages": results,
        "server_startup_s": server.startup_s,
        "server": sampler.summary() if sampler else None,
    }


# ------------------------------------------------------------------------------ soak
async def _soak_student(student: Student, options: Options, deadline: float) -> None:
    if not await student.open(options.timeout_s):
        return
    while time.monotonic() < deadline:
        job = await student.start(options.timeout_s)
        if job.state == "refused":
            await asyncio.sleep(1.0)
            continue
        await student.watch_to_end(options.timeout_s)


async def soak(options: Options) -> dict:
    """N students for T minutes, each starting a new run whenever theirs has ended."""
    settings = _settings(options)
    async with server_for(options, "soak") as server:
        sampler = Sampler(server.pid, options.sample_every_s).start() if server.pid else None
        t0 = time.monotonic()
        deadline = t0 + options.minutes * 60
        students = [Student(server.url, f"s{i}", t0, settings) for i in range(options.students)]
        await asyncio.gather(*(_guarded(_soak_student(s, options, deadline), s) for s in students))
        for student in students:
            await student.close()
        await asyncio.sleep(2)
        if sampler:
            await sampler.stop()
    jobs = _jobs_summary(students)
    result = {
        "settings": settings,
        "minutes": options.minutes,
        "wall_s": round(time.monotonic() - t0, 1),
        **_error_summary(students),
        "problems": [s.record.problem for s in students if s.record.problem],
        **jobs,
        "server": sampler.summary(every=30.0) if sampler else None,
    }
    if sampler and sampler.samples:
        after_minute = sampler.rss_at(60.0) or sampler.samples[0].rss_mb
        result["rss_mb_after_first_minute"] = after_minute
        result["rss_mb_growth_after_first_minute"] = round(
            max(s.rss_mb for s in sampler.samples) - after_minute, 1
        )
        later = [j for s in students for j in s.record.jobs if (j.end_s or 0) > 60.0]
        result["runs_ended_after_first_minute"] = len(later)
        if later:
            growth = sampler.samples[-1].rss_mb - after_minute
            result["rss_mb_per_run_after_first_minute"] = round(growth / len(later), 2)
    return result


# ------------------------------------------------------------------------------ churn
async def churn(options: Options) -> dict:
    """One tab: Start, wait for the first loss point, Stop; C times. Memory left per cycle."""
    settings = _settings(options, ABANDON_SETTINGS)
    rss_after_cycle: list[float] = []
    async with server_for(options, "churn") as server:
        sampler = Sampler(server.pid, options.sample_every_s).start() if server.pid else None
        t0 = time.monotonic()
        student = Student(server.url, "churner", t0, settings)

        async def cycles() -> None:
            if not await student.open(options.timeout_s):
                return
            for _ in range(options.cycles):
                job = await student.start(options.timeout_s)
                if job.state == "refused":
                    await asyncio.sleep(1.0)
                    continue
                if job.state not in ENDED:
                    await student.stop(options.timeout_s)
                if sampler and (sample := sampler.sample()):
                    rss_after_cycle.append(sample.rss_mb)

        await _guarded(cycles(), student)
        await student.close()
        await asyncio.sleep(3)
        rss_closed = sampler.sample().rss_mb if sampler else None
        if sampler:
            await sampler.stop()
    jobs = student.record.jobs
    result = {
        "settings": settings,
        "cycles_asked": options.cycles,
        "cycles_done": len(jobs),
        **_error_summary([student]),
        "problem": student.record.problem,
        "states": dict(Counter(job.state for job in jobs)),
        "first_point_s": stats([job.first_point_s for job in jobs]),
        "wall_s": round(time.monotonic() - t0, 1),
        "rss_mb_after_first_cycle": rss_after_cycle[0] if rss_after_cycle else None,
        "rss_mb_after_last_cycle": rss_after_cycle[-1] if rss_after_cycle else None,
        "rss_mb_after_tab_closed": rss_closed,
        "server": sampler.summary() if sampler else None,
    }
    if len(rss_after_cycle) > 1:  # from the first cycle on: torch and the data are loaded once
        growth = rss_after_cycle[-1] - rss_after_cycle[0]
        result["rss_mb_per_cycle"] = round(growth / (len(rss_after_cycle) - 1), 2)
    return result


RUNNERS = {"cold": cold, "ramp": ramp, "soak": soak, "churn": churn}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
