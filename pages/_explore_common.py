"""What the exploration pages share: the run to show and its snapshot (the time slider), cached
model copies and data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from deeparch.data import load_dataset
from deeparch.engine.handle import JobHandle
from deeparch.engine.state import ACTIVE_STATES
from deeparch.errors import DeeparchError
from deeparch.explore import views as explore
from deeparch.figures.text import escape_markdown
from pages._shared import (
    current_job,
    forget,
    keep,
    manager,
    paced_refresh_s,
    remember_job,
    session_jobs,
    session_owner,
)


def choose_job(view: str, prefix: str) -> JobHandle | None:
    """The job the view shows: the session's current job if it fits, else the newest that fits.

    With several candidates the user picks; with none, the page says what to do and offers a
    button that starts a suitable model with good defaults.
    """
    spec = explore.view_spec(view)
    jobs = explore.suitable_jobs(view, session_jobs())
    current = current_job()
    if current is not None and any(job.id == current.id for job in jobs):
        jobs = [current] + [job for job in jobs if job.id != current.id]
    if not jobs:
        show_starter(view, prefix, spec)
        return None
    if len(jobs) == 1:
        job = jobs[0]
        st.caption(escape_markdown(f"Showing {job.id}: {job.arch} on {job.dataset}"))
        return job
    labels = {job.id: explore.job_label(job) for job in jobs}
    if st.session_state.get(f"{prefix}_job") not in labels:
        forget(f"{prefix}_job")  # a run this view can no longer show
    chosen = st.selectbox(
        "Run to explore",
        list(labels),
        format_func=labels.get,
        key=keep(f"{prefix}_job", next(iter(labels))),
        help="this session's runs and loaded checkpoints that this view can show",
    )
    return next(job for job in jobs if job.id == chosen)


def show_starter(view: str, prefix: str, spec: explore.ViewSpec) -> None:
    """Nothing to show yet: say what to do and offer to start a suitable model."""
    starter = spec.starter
    st.info(
        f"{spec.hint} Nothing of that kind in this session yet: train one on the Train page, "
        f"load a checkpoint there, or start {escape_markdown(starter['arch'])} on "
        f"{escape_markdown(starter['dataset'])} here."
    )
    if st.button(
        f"Train {starter['arch']} on {starter['dataset']} ({starter['epochs']} epochs)",
        key=f"{prefix}_start",
        type="primary",
    ):
        try:
            job = manager().submit(explore.starter_config(view), owner=session_owner())
        except DeeparchError as error:
            st.error(escape_markdown(str(error)))
            return
        remember_job(job)
        st.rerun()


def is_active(job: JobHandle) -> bool:
    return job.state in ACTIVE_STATES


def show_chosen_job(
    view: str, prefix: str, section: Callable[[JobHandle], None]
) -> JobHandle | None:
    """The run the view shows (choose_job) with `section` of it drawn live (show_live); None
    when the session has no run the view can show."""
    job = choose_job(view, prefix)
    if job is not None:
        show_live(job, section)
    return job


def show_live(job: JobHandle, view: Callable[[JobHandle], None]) -> None:
    """Draw a job's view in a fragment that re-runs every second while the job trains."""
    live = is_active(job)

    def live_view() -> None:
        status_line(job, live)
        view(job)

    st.fragment(live_view, run_every=paced_refresh_s(1.0) if live else None)()


@st.cache_resource(max_entries=6, show_spinner=False)
def model_at(job_id: str, step: int) -> Any:
    """A CPU copy of a job's model at a training step (cached: moving a slider re-uses it)."""
    return manager().get(job_id).model_copy()


def job_model(job: JobHandle) -> tuple[Any, int]:
    """(model copy, step) of a job; the copy is taken once per step and shared by the widgets."""
    step = int(job.snapshot()["step"])
    return model_at(job.id, step), step


@st.cache_resource(show_spinner="Loading data ...")
def dataset(name: str) -> Any:
    """A dataset's tensors (deeparch caches them in-process as well)."""

    return load_dataset(name)


def status_line(job: JobHandle, live: bool) -> None:
    """One caption with the job's state and step, and its reason when it failed or diverged.

    `live`: the fragment calling this re-runs every second; once the job is done, one full rerun
    redraws the page without the timer.
    """
    snap = job.snapshot()
    if live and not is_active(job):
        st.rerun()
    text = f"{snap['state']} · step {snap['step']}/{snap.get('total_steps', 0)}"
    st.caption(escape_markdown(text))
    if snap["state"] == "queued":
        position = snap.get("queue_position")
        waiting = f" (position {position} in the queue)" if position else ""
        st.info(
            f"This job waits for another one to finish{escape_markdown(waiting)}; until it "
            "starts, the views "
            "below show the untrained model."
        )
    if snap.get("reason") and snap["state"] in ("failed", "diverged"):
        st.warning(escape_markdown(snap["reason"]))


def snapshots_holding(snap: dict[str, Any], field: str, waiting: str) -> list[dict[str, Any]]:
    """A job's snapshots that hold `field` (what the view draws), oldest first; with none yet
    (before the first snapshot), says `waiting`."""
    snapshots = [s for s in snap["snapshots"] if field in s]
    if not snapshots:
        st.info(escape_markdown(waiting))
    return snapshots


def snapshot_shown(
    snap: dict[str, Any], field: str, waiting: str, time_key: str | None = None
) -> dict[str, Any] | None:
    """The snapshot a view draws, of those holding `field`: the one the time slider `time_key`
    points at, or the newest for a view without one; None, having said `waiting`, before the
    first."""
    snapshots = snapshots_holding(snap, field, waiting)
    if not snapshots:
        return None
    if time_key is None:
        return snapshots[-1]
    steps = explore.snapshot_steps(snapshots)
    return snapshots[steps.index(time_slider(steps, time_key))]


LATEST = "latest"  # the time slider's label of the newest snapshot (see step_labels)


def time_slider(steps: list[int], key: str) -> int:
    """A slider over snapshot steps that follows the newest one until the user scrolls back."""
    follow_key = f"{key}_follow"
    keep(key)  # where the student scrolled to stays across pages
    if follow_key not in st.session_state:
        st.session_state[follow_key] = True
    if st.session_state[follow_key] or st.session_state.get(key) not in steps:
        st.session_state[key] = steps[-1]
    else:
        # A new snapshot changes the options, which makes a new widget that would start at the
        # first step: writing the chosen step back keeps the student where they scrolled to.
        st.session_state[key] = st.session_state[key]

    def scrolled() -> None:
        st.session_state[follow_key] = st.session_state[key] == steps[-1]

    return st.select_slider(
        "training step (scroll back in time)",
        steps,
        key=key,
        on_change=scrolled,
        format_func=step_labels(steps),
    )


def step_labels(steps: list[int]) -> Callable[[int], str]:
    """The time slider's labels: each step's number, and LATEST for the newest.

    The browser sends a select slider's value back as its label. Under load it may send the
    label it showed before a new snapshot arrived; were that the old newest step's number, the
    server would read a move back in time and stop following. The newest step is always
    labelled LATEST, so that late echo still means "the newest": only a student's move to an
    older step turns following off."""
    newest = steps[-1]
    return lambda step: LATEST if step == newest else str(step)
