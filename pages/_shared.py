"""Widgets every page shares: config forms generated from field_specs, the session and its jobs."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import streamlit as st

from deeparch.config import FieldSpec, check_value, coerce, field_specs, make_config
from deeparch.engine.handle import JobHandle
from deeparch.engine.manager import JobManager, NotYourJobError, get_manager
from deeparch.engine.state import ACTIVE_STATES, FINAL_ORDER
from deeparch.errors import ConfigError, DeeparchError
from deeparch.figures.text import escape_markdown

OWNER_KEY = "deeparch_owner"
CURRENT_JOB_KEY = "deeparch_current_job"
LOADED_JOBS_KEY = "deeparch_loaded_jobs"
KEPT_KEY = "deeparch_kept"  # widget key -> the value the student chose last (see keep)
SLIDER_MAX_STEPS = 64  # an int field with at most this many values gets a slider
SIDEBAR_REFRESH_S = 2.0  # the job list; the Train page itself refreshes its charts faster
# Live views rerun at their own pace while up to this many jobs hold a slot on the server, and
# proportionally slower beyond (30 jobs: 3x). Every rerun is Python under the one interpreter
# lock that training and an arriving student's first page also need (README: Classroom).
PACED_ABOVE_JOBS = 10


# ---------------------------------------------------------------- session and jobs
# Who a browser is: an unguessable owner id (128 random bits, never derived from a job id) kept
# in a cookie of this site, so a reload (a new Streamlit session) is the same owner and keeps
# Stop and Pause on its jobs; it is never in the address bar. ?job=<id> in a link names a job to
# look at, read-only unless this browser started it: a copied link hands over nothing. The
# cookie is a session cookie (gone when the browser closes: a lab computer's next student is
# someone else) and is written by a tiny component, since Streamlit reads cookies but sets none.
OWNER_COOKIE = "deeparch_owner"
OWNER_FORM = re.compile(r"[0-9a-f]{32}")  # token_hex(16); anything else in the cookie is ignored
_OWNER_COOKIE_JS = """
export default function ({ data }) {
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${data.name}=${data.value}; path=/; SameSite=Strict${secure}`;
}
"""
_owner_cookie = st.components.v2.component("deeparch_owner_cookie", js=_OWNER_COOKIE_JS)


def manager() -> JobManager:
    return get_manager()


def paced_refresh_s(base_s: float) -> float:
    """Seconds between a live view's reruns: base_s, stretched in proportion to the jobs training
    on the server once there are more than PACED_ABOVE_JOBS."""
    return base_s * max(1.0, manager().running_count() / PACED_ABOVE_JOBS)


class SessionTicket:
    """What the session-scoped cache holds for a tab: its owner id (released with the tab)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        get_manager().open_session(owner)


def _session_ended(ticket: SessionTicket) -> None:
    # Runs in Streamlit's thread when the tab's session ends. A reload ends one session and opens
    # another of the same owner: the manager waits a little before it drops the owner's queued
    # jobs and moves its ended runs out of memory (they are in the store).
    get_manager().end_session(ticket.owner)


@st.cache_resource(scope="session", on_release=_session_ended, show_spinner=False)
def _session_ticket(owner: str) -> SessionTicket:
    return SessionTicket(owner)


def _owner_from_cookie() -> str | None:
    value = st.context.cookies.get(OWNER_COOKIE)
    return value if isinstance(value, str) and OWNER_FORM.fullmatch(value) else None


def restore_session() -> str:
    """The browser's owner id (from its cookie, else new); ?job=<id> opens that job."""
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = _owner_from_cookie() or secrets.token_hex(16)
        job = _get_job(st.query_params.get("job"))
        if job is not None:
            st.session_state[CURRENT_JOB_KEY] = job.id  # read-only unless it is ours
    owner = st.session_state[OWNER_KEY]
    _session_ticket(owner)
    if LOADED_JOBS_KEY not in st.session_state:
        st.session_state[LOADED_JOBS_KEY] = []
    current = st.session_state.get(CURRENT_JOB_KEY)
    if current and st.query_params.get("job") != current:
        st.query_params["job"] = current  # query params are cleared on a page switch
    return owner


def write_owner_cookie() -> None:
    """Once per page run (app.py): put the owner id in the browser's cookie if it is not there.

    Cookies are read once, when a session opens, so a session that began without the cookie
    draws this on each run until the next reload carries it."""
    owner = restore_session()
    if _owner_from_cookie() != owner:
        _owner_cookie(data={"name": OWNER_COOKIE, "value": owner}, key="deeparch_owner_cookie")


def session_owner() -> str:
    return restore_session()


def is_mine(job: JobHandle) -> bool:
    """Whether this session started the job (only then may it control it)."""
    return job.owner is None or job.owner == session_owner()


def _get_job(job_id: str | None) -> JobHandle | None:
    if not job_id:
        return None
    try:
        return manager().get(job_id)
    except (KeyError, LookupError, ValueError):
        return None


def remember_job(job: JobHandle) -> None:
    """Make a job the page's current one (also in the URL, so a reload shows it)."""
    st.session_state[CURRENT_JOB_KEY] = job.id
    st.query_params["job"] = job.id


def write_link(params: Mapping[str, str], owned_by_widgets: Iterable[str] = ()) -> None:
    """Put a page's settings in the address bar (the job parameter stays), so the address
    reopens what the page shows. `owned_by_widgets`: parameters a widget keeps itself
    (st.tabs(bind="query-params")), which Streamlit refuses to let a page delete."""
    kept = {"job", *owned_by_widgets}
    for key in [key for key in st.query_params if key not in kept and key not in params]:
        del st.query_params[key]
    for key, value in params.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def current_job() -> JobHandle | None:
    return _get_job(st.session_state.get(CURRENT_JOB_KEY))


def remember_loaded(job: JobHandle) -> None:
    loaded = st.session_state.setdefault(LOADED_JOBS_KEY, [])
    if job.id not in loaded:
        loaded.append(job.id)


def session_jobs(include_loaded: bool = True) -> list[JobHandle]:
    """This session's jobs in memory (newest first), plus the checkpoints it loaded."""
    jobs = list(manager().jobs(owner=session_owner()))
    if include_loaded:
        known = {job.id for job in jobs}
        for job_id in st.session_state.get(LOADED_JOBS_KEY, []):
            job = _get_job(job_id)
            if job is not None and job.id not in known:
                jobs.append(job)
    return list(reversed(jobs))


def stored_snapshots() -> list[dict[str, Any]]:
    """This session's runs that live only in the run store now, as snapshots (newest first)."""
    in_memory = {job.id for job in manager().jobs(owner=session_owner())}
    runs = manager().stored_runs(session_owner())
    return [run.snapshot for run in runs if run.id not in in_memory]


def control_job(job: JobHandle, action: str) -> bool:
    """Pause, resume, step or stop a job as this session; another session's job says why not."""
    try:
        return getattr(manager(), action)(job.id, session_owner())
    except NotYourJobError as error:
        st.error(escape_markdown(str(error)))
        return False


def run_label(snap: Mapping[str, Any]) -> str:
    """A short name for a run: architecture, dataset and the last characters of its id."""
    stored = " (stored)" if snap.get("stored") else ""
    return f"{snap.get('arch')} on {snap.get('dataset')} · {str(snap.get('id'))[-6:]}{stored}"


def progress_fraction(snap: Mapping[str, Any]) -> float:
    total = snap.get("total_steps") or 0
    return min(1.0, (snap.get("step") or 0) / total) if total else 0.0


def job_sidebar() -> None:
    """The student's name, the session's running and queued jobs with pause and stop, and its
    stored runs to reopen; on every page."""
    student_label()
    active = any(job.state in ACTIVE_STATES for job in session_jobs(include_loaded=False))
    st.fragment(_job_panel, run_every=paced_refresh_s(SIDEBAR_REFRESH_S) if active else None)()
    stored_runs_panel()


def student_label() -> None:
    """The name this student shows the teacher (kept by the manager for the Teacher page)."""
    if "deeparch_student_label" not in st.session_state:
        # After a reload (the same owner, a new session) the name the student gave stays.
        st.session_state["deeparch_student_label"] = manager().labels.get(session_owner(), "")
    name = st.text_input(
        "Your name (shown to the teacher)", key="deeparch_student_label", max_chars=40
    )
    if name != st.session_state.get("deeparch_label_sent"):
        manager().set_label(session_owner(), name)
        st.session_state["deeparch_label_sent"] = name


def _job_panel() -> None:
    st.subheader("Your jobs")
    jobs = session_jobs(include_loaded=False)
    if not jobs:
        st.caption("No training jobs yet: start one on the Train page.")
        return
    shown = [job for job in jobs if job.state in ACTIVE_STATES][:4] or jobs[:1]
    for job in shown:
        snap = job.snapshot(owner=session_owner())  # reading as the owner keeps the job alive
        with st.container(border=True):
            st.markdown(
                f"**{escape_markdown(snap['arch'])}** on {escape_markdown(snap['dataset'])} · "
                f"_{escape_markdown(snap['state'])}_"
            )
            queue_position = snap.get("queue_position")
            text = f"step {snap.get('step', 0)}/{snap.get('total_steps', 0)}"
            if snap["state"] == "queued" and queue_position:
                text = f"queued, position {queue_position}"
            st.progress(progress_fraction(snap), text=escape_markdown(text))
            if job.state in ACTIVE_STATES:
                pause_col, stop_col = st.columns(2)
                paused = job.state == "paused"
                if pause_col.button(
                    "Resume" if paused else "Pause", key=f"side_pause_{job.id}", width="stretch"
                ):
                    control_job(job, "resume" if paused else "pause")
                    st.rerun(scope="fragment")
                if stop_col.button("Stop", key=f"side_stop_{job.id}", width="stretch"):
                    control_job(job, "stop")
                    st.rerun(scope="fragment")
    ended = [job.state for job in jobs if job.state not in ACTIVE_STATES]
    if ended:
        counts = ", ".join(f"{ended.count(s)} {s}" for s in FINAL_ORDER if s in ended)
        st.caption(f"Ended runs: {escape_markdown(counts)}; see Compare.")


# ---------------------------------------------------------------- what the student chose
def keep(key: str, default: Any = None) -> str:
    """Make widget `key` keep the student's value on pages that do not draw it; returns the key.

    Streamlit forgets the state of every widget a page run does not draw, so after Train ->
    Compare -> Train the form would be back at its defaults. The value also lives in a plain
    session_state dict, never a widget's, which restore_kept puts back before each page runs.
    `default` seeds the widget the first time (None: the widget's own default).
    """
    kept = st.session_state.setdefault(KEPT_KEY, {})
    if key not in st.session_state:
        if key in kept:
            st.session_state[key] = kept[key]
        elif default is not None:
            st.session_state[key] = default
    if key in st.session_state:
        # Set again on every run: the browser forgets a widget a page did not draw even where
        # the server still holds its value, and shows the widget's blank default unless the
        # server sends the value with the widget.
        kept[key] = st.session_state[key] = st.session_state[key]
    return key


def kept_value(key: str, default: Any = None) -> Any:
    """The value widget `key` holds or will hold when this run draws it: read before the widget
    is drawn, right after a page switch the value is in the kept dict only."""
    return st.session_state.get(key, st.session_state.get(KEPT_KEY, {}).get(key, default))


def keep_fitting(key: str, fits: Callable[[Any], bool], default: Any = None) -> str:
    """keep() for a widget whose allowed values depend on the run or its data (an image index, a
    layer): the student's choice stays across pages, and one that no longer fits (another run,
    a smaller dataset) is dropped, so the widget starts again at `default`. Give the widget no
    value of its own (Streamlit warns about a value set twice)."""
    value = kept_value(key)
    if value is not None and not fits(value):
        forget(key)
    return keep(key, default)


def index_within(count: int) -> Callable[[Any], bool]:
    """Fits an index widget over `count` items."""
    return lambda value: isinstance(value, int | float) and 0 <= value < count


def forget(key: str) -> None:
    """Drop a kept value that no longer fits its widget (a run that is gone)."""
    st.session_state.get(KEPT_KEY, {}).pop(key, None)
    st.session_state.pop(key, None)


def restore_kept() -> None:
    """Before a page runs (app.py): note the latest value of every kept widget, and put back the
    ones the previous page did not draw (a value typed just before a page switch counts too)."""
    kept = st.session_state.setdefault(KEPT_KEY, {})
    for key, value in kept.items():
        if key in st.session_state:
            kept[key] = st.session_state[key]
        else:
            st.session_state[key] = value


def stored_runs_panel() -> None:
    """Runs that left memory for the run store: reopen one to look at it on any page."""
    stored = stored_snapshots()
    if not stored:
        return
    with st.expander(f"Stored runs ({len(stored)})"):
        labels = {run_label(snap): snap["id"] for snap in stored}
        chosen = st.selectbox("run", list(labels), key="deeparch_stored_pick")
        if st.button("Reopen", key="deeparch_stored_reopen", width="stretch"):
            try:
                job = manager().reopen(session_owner(), labels[chosen])
            except DeeparchError as error:
                st.error(escape_markdown(str(error)))
                return
            remember_loaded(job)
            st.rerun()


# ---------------------------------------------------------------- config forms
def widget_key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def display_value(spec: FieldSpec, value: Any) -> Any:
    """A typed config value as the widget for its field holds it (tuples as "500,200,100")."""
    if spec.type is tuple:
        return ",".join(str(v) for v in value)
    if spec.type is float:
        return float(value)
    return value


def seed_values(specs: Iterable[FieldSpec], prefix: str, values: Mapping[str, Any]) -> list[str]:
    """Put values (from a share link) into the form's widgets; returns the messages of bad ones."""
    by_name = {spec.name: spec for spec in specs}
    typed, errors = typed_overrides(by_name.values(), values)
    for name, value in typed.items():
        st.session_state[widget_key(prefix, name)] = display_value(by_name[name], value)
    return [str(error) for error in errors.values()]


def field_widget(spec: FieldSpec, key: str) -> Any:
    """One widget for one hyperparameter, chosen from its type and bounds."""
    keep(key, display_value(spec, spec.default))
    label, help_text = spec.name, f"{spec.help} Allowed: {spec.allowed()}."
    if spec.choices is not None:
        return st.selectbox(label, spec.choices, key=key, help=help_text)
    if spec.type is bool:
        return st.toggle(label, key=key, help=help_text)
    if spec.type is int:
        step = int(spec.step or 1)
        low = int(spec.min) if spec.min is not None else None
        high = int(spec.max) if spec.max is not None else None
        if low is not None and high is not None and (high - low) / step <= SLIDER_MAX_STEPS:
            return st.slider(label, low, high, step=step, key=key, help=help_text)
        # Number boxes carry no bounds of their own: a bounded box silently keeps its old value
        # when a student types one out of range; unbounded, the value reaches check_value and
        # its message (field, value, allowed range) appears under the box.
        return st.number_input(label, step=step, key=key, help=help_text)
    if spec.type is float:
        if spec.log:
            # A learning rate spans decades: show it in scientific notation, step by its smallest.
            step = float(spec.step or (spec.default / 10 if spec.default else spec.min or 1e-4))
            return st.number_input(label, step=step, format="%.2e", key=key, help=help_text)
        step = float(spec.step or 0.01)
        return st.number_input(label, step=step, format="%g", key=key, help=help_text)
    placeholder = "e.g. 500,200,100" if spec.type is tuple else None
    return st.text_input(label, key=key, help=help_text, placeholder=placeholder)


def config_form(
    specs: Iterable[FieldSpec], prefix: str, columns: int = 2, exclude: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Widgets for every field; returns (raw values by field, an error slot under each widget)."""
    excluded = set(exclude)
    specs = [spec for spec in specs if spec.name not in excluded]
    raw: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    cols = st.columns(columns)
    for index, spec in enumerate(specs):
        with cols[index % columns]:
            raw[spec.name] = field_widget(spec, widget_key(prefix, spec.name))
            slots[spec.name] = st.empty()
    return raw, slots


def typed_overrides(
    specs: Iterable[FieldSpec], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, ConfigError]]:
    """Coerce and bound-check each widget value; returns (typed values, errors by field)."""
    values: dict[str, Any] = {}
    errors: dict[str, ConfigError] = {}
    for spec in specs:
        if spec.name not in raw:
            continue
        try:
            typed = coerce(spec, raw[spec.name])
            check_value(spec, typed)
            values[spec.name] = typed
        except ConfigError as error:
            errors[spec.name] = error
    return values, errors


def show_errors(errors: Mapping[str, ConfigError], slots: Mapping[str, Any]) -> None:
    """Each error under its widget; an error about a field without a widget at the top."""
    for field, error in errors.items():
        slot = slots.get(field)
        if slot is not None:
            slot.error(escape_markdown(str(error)))
        else:
            st.error(escape_markdown(str(error)))


def validate_config(config_cls: type, values: Mapping[str, Any]) -> Any:
    """The config dataclass from typed values (raises ConfigError)."""
    return make_config(config_cls, dict(values))


def specs_of(config_cls: type) -> list[FieldSpec]:
    return field_specs(config_cls)
