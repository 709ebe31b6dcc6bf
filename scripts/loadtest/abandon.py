"""Abandonment: students start long runs and close their tabs. Do their jobs stop, and when?

After the tabs close, every job is looked at every POLL_S seconds from a fresh tab opened on its
`?job=` link (as a reload would; a tab of another session keeps no job alive) until each reads
ended, or the server no longer has it ("released"). The server's CPU, its own and its children's
(a Ray backend trains in them), says when it fell idle.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from .monitor import Sampler
from .protocol import Tab
from .scenarios import (
    ABANDON_SETTINGS,
    Options,
    _error_summary,
    _guarded,
    _settings,
    server_for,
    stats,
)
from .student import ENDED, Student, state_of

# The server's CPU below which no job trains (page reruns stop with the tabs); its children's
# (a local Ray's daemons and workers) must fall to this much over what they used before Start.
IDLE_CORES = 0.15
BASELINE_S = 5.0  # the children's CPU measured this long with the tabs open, before Start
FIRST_POINT_S = 30.0  # a queued job shows none: wait this long, then close the tab anyway
POLL_S = 10.0  # between two looks at the jobs: the stop times are known to this much
IDLE_GRACE_S = 20.0  # how long to wait for idle CPU once every job is seen stopped
OBSERVER_TIMEOUT_S = 60.0
GONE = "released"  # what a look says when the server no longer has the job


async def job_state(url: str, job_id: str, timeout: float) -> dict:
    """A fresh tab opened on Train with ?job=<id>: the job's state and why ("released" if the
    server no longer has the job)."""
    tab = Tab(url, name=f"observer-{job_id}")
    tab.query_string = f"job={job_id}"
    try:
        await tab.connect(timeout)
        await tab.open("train")
        await tab.settle(timeout)
        await tab.wait_for(lambda t: bool(state_of(t)), 10.0)
        alerts = [e.alert.body for e in tab.find("alert")]
        # a server that releases a closed session's jobs no longer knows the link's job at all
        return {"job": job_id, "state": state_of(tab) or GONE, "alerts": alerts[-2:]}
    finally:
        await tab.close()


def idle_since(sampler: Sampler | None, moment: float, children_baseline: float) -> float | None:
    """Seconds from `moment` to the first of three samples in a row with the server below
    IDLE_CORES and its children below their baseline + IDLE_CORES (None if none yet)."""
    if sampler is None:
        return None
    after = [s for s in sampler.samples if s.t > moment - sampler.t0]
    for first, *rest in zip(after, after[1:], after[2:], strict=False):
        if all(
            s.cpu_cores < IDLE_CORES and s.children_cores < children_baseline + IDLE_CORES
            for s in (first, *rest)
        ):
            return round(first.t - (moment - sampler.t0), 1)
    return None


async def children_baseline(sampler: Sampler | None) -> float:
    """The children's median CPU over BASELINE_S seconds (a local Ray's daemons use some)."""
    if sampler is None:
        return 0.0
    since = time.monotonic() - sampler.t0
    await asyncio.sleep(BASELINE_S)
    cores = sorted(s.children_cores for s in sampler.samples if s.t > since)
    return cores[len(cores) // 2] if cores else 0.0


async def abandon(options: Options) -> dict:
    """N students start long runs and close their tabs: do the jobs stop, and when?"""
    settings = _settings(options, ABANDON_SETTINGS)
    async with server_for(options, "abandon") as server:
        sampler = Sampler(server.pid, options.sample_every_s).start() if server.pid else None
        t0 = time.monotonic()
        students = [Student(server.url, f"s{i}", t0, settings) for i in range(options.students)]

        async def open_tab(student: Student) -> None:
            student.record.problem = "" if await student.open(options.timeout_s) else "no page"

        async def press_start(student: Student) -> None:
            if not student.record.problem:
                await student.start(FIRST_POINT_S, page_timeout=options.timeout_s)

        await asyncio.gather(*(_guarded(open_tab(s), s) for s in students))
        baseline = await children_baseline(sampler)
        await asyncio.gather(*(_guarded(press_start(s), s) for s in students))
        states_at_close = Counter(state_of(s.tab) or "none" for s in students)
        for student in students:
            await student.close()
        closed_at = time.monotonic()
        job_ids = [j.job_id for s in students for j in s.record.jobs if j.job_id]
        final: dict[str, dict] = {}
        stopped_after: dict[str, float] = {}
        look_problems: list[str] = []
        all_stopped_at = None
        timeout = min(options.timeout_s, OBSERVER_TIMEOUT_S)
        while time.monotonic() - closed_at < options.abandon_wait_s:
            await asyncio.sleep(POLL_S)
            pending = [job_id for job_id in job_ids if job_id not in stopped_after]
            looks = await asyncio.gather(
                *(job_state(server.url, job_id, timeout) for job_id in pending),
                return_exceptions=True,
            )
            for look in looks:
                if isinstance(look, BaseException):
                    look_problems.append(f"{type(look).__name__}: {look}")
                    continue
                final[look["job"]] = look
                if look["state"] in (*ENDED, GONE):
                    stopped_after[look["job"]] = round(time.monotonic() - closed_at, 1)
            if len(stopped_after) == len(job_ids):
                all_stopped_at = all_stopped_at or time.monotonic()
                done_waiting = time.monotonic() - all_stopped_at >= IDLE_GRACE_S
                if idle_since(sampler, closed_at, baseline) is not None or done_waiting:
                    break
        if sampler:
            await sampler.stop()
    return {
        "settings": settings,
        "jobs_started": len(job_ids),
        "states_when_closed": dict(states_at_close),
        "jobs_stopped_after_close_s": stats(list(stopped_after.values())),
        "jobs_never_seen_stopped": len(job_ids) - len(stopped_after),
        "looked_every_s": POLL_S,
        "server_idle_after_close_s": idle_since(sampler, closed_at, baseline),
        "children_cores_before_start": baseline,
        "waited_up_to_s": options.abandon_wait_s,
        "final_states": dict(Counter(f["state"] for f in final.values())),
        "jobs": list(final.values()),
        **_error_summary(students),
        "problems": [s.record.problem for s in students if s.record.problem] + look_problems,
        "server": sampler.summary() if sampler else None,
    }
