"""The process-wide JobManager: one server shared fairly by a class.

Jobs live in the manager, not in a page, so they outlive page switches and reruns; a backend
(deeparch.engine.backends) creates and runs them. What the manager adds for a class:

- Ownership. A job is controlled (pause, resume, step, stop, remove) only by its owner (a
  browser: its sessions share an owner id, pages/_shared.py), or by the teacher; anyone else gets
  NotYourJobError. A job's id is not a capability.
- Fair scheduling. Each student (an owner) has at most `jobs_per_student` jobs training and at
  most `queue_per_student` waiting behind their own; free slots go round-robin to the student
  served longest ago. A student's queued jobs are dropped when their last session ends and they
  have not come back within `reconnect_grace_s` (a reload opens a new session at once).
- Turns and threads (thread backend). Up to `max_running` jobs are admitted; they take turns of
  `slice_s` seconds on the cores, and each computing job gets its share of the cores as torch
  threads (deeparch.engine.threads).
- Bounded memory. A job waiting for a slot holds its config, not its model: it is checked in
  full when submitted, then let go of and built again when it starts (deeparch.engine.recipe).
  An ended run is written to the run store (deeparch.engine.store) and what stays in memory is
  an EndedRun (deeparch.engine.ended): its snapshot, with its weights read back from the store
  when a view asks. Only the newest `runs_in_memory` ended runs of each session stay,
  and of all sessions' together at most `ended_runs_bytes` (each open session keeps its newest).
  What the manager keeps per student (labels, turns) goes once a student has left and has no
  job left in memory.
- Abandoned work. A job whose owner has not looked for `heartbeat_timeout` seconds is stopped.
- Shutdown. shutdown() stops every job, saves them to the store and releases the backend.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import secrets
import threading
import time
import weakref
from pathlib import Path

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.backends import Backend, SchedulableJob, ThreadBackend, make_backend
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.ended import EndedRun
from deeparch.engine.handle import JobHandle
from deeparch.engine.optim import default_max_running
from deeparch.engine.state import JobState
from deeparch.engine.store import RunStore, StoredRun
from deeparch.engine.threads import (
    BudgetedGate,
    ThreadBudget,
    TimeSlices,
    give_freed_memory_back,
    threads_beside_a_browser,
    trim_heap,
)
from deeparch.errors import ConfigError, DeeparchError, UnknownJobError, UnknownNameError
from deeparch.settings import ClassSettings, env_name, load_settings

logger = logging.getLogger(__name__)

# Who may control any job: the Teacher page passes this as the owner once the password is right.
TEACHER = "teacher"  # never a session's owner id: those are 32 hex digits
# A browser that reloads the page ends its old session and opens a new one within seconds; an
# owner gone this long without coming back has closed the tab.
RECONNECT_GRACE_S = 30.0
UNLIMITED = 1_000_000  # jobs_per_student for owner None (the CLI and tests: no class)
MB = 2**20
# Jobs admitted at once on the thread backend when they take turns (slice_s > 0) and the class
# settings leave max_running at 0: a whole class, each job holding its model and data in memory.
ADMITTED_WITH_TURNS = 32


class NotYourJobError(DeeparchError):
    """A session tried to control a job another session started."""

    def __init__(self, job_id: str, action: str) -> None:
        super().__init__(
            f"job {job_id} belongs to another session: only the student who started it (or the "
            f"teacher) can {action} it; this view is read-only"
        )


class JobManager:
    """Holds jobs by id and schedules them fairly among students (see the module's doc)."""

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float = 600.0,
        backend: Backend | None = None,
        jobs_per_student: int = 1,
        queue_per_student: int = 2,
        runs_in_memory: int = 3,
        store: RunStore | None = None,
        ended_runs_bytes: int = 100 * MB,
        slice_s: float = 0.0,
        cores: int | None = None,
    ) -> None:
        self.backend = backend if backend is not None else ThreadBackend()
        self.max_running = max_running if max_running is not None else default_max_running()
        self.heartbeat_timeout = float(heartbeat_timeout)  # seconds; 0 switches expiry off
        self.jobs_per_student = int(jobs_per_student)
        self.queue_per_student = int(queue_per_student)
        self.runs_in_memory = int(runs_in_memory)
        self.ended_runs_bytes = int(ended_runs_bytes)
        self.store = store
        # Without `cores` (the CLI, tests) every admitted job computes at once; the class's
        # manager (manager_from_settings) gives the cores, and admitted jobs take turns on them.
        self.budget = ThreadBudget(cores if cores is not None else threads_beside_a_browser())
        self.slices = TimeSlices(cores if cores is not None else UNLIMITED, slice_s)
        self._lock = threading.RLock()
        self._jobs: dict[str, JobHandle] = {}
        self._queue: list[SchedulableJob] = []
        self._served: dict[str | None, int] = {}  # owner -> turn number when last started
        self._turns = itertools.count(1)
        self._ended_sessions: set[str] = set()
        # owner -> browser sessions open now: a reload or a second tab shares its owner (a
        # cookie), and a reload's old session ends around when its new one opens.
        self._open_sessions: dict[str, int] = {}
        self.reconnect_grace_s = 0.0  # seconds an owner with no session open may come back in
        self.labels: dict[str, str] = {}  # owner -> the name a student gave themselves
        self._ids = itertools.count(1)
        self._watchdog: threading.Thread | None = None
        self._closed = False

    # -- jobs --

    def submit(
        self,
        config: TrainConfig,
        owner: str | None = None,
        resume: str | Path | None = None,
        weights_from: WeightsFrom | None = None,
    ) -> JobHandle:
        """Validate, build, dry-run one batch, then queue the job (it starts when it is its turn).

        A job that has to wait lets go of what was built to check it (its model, their initial
        copy, its optimizers) and is built again from its config when it starts
        (deeparch.engine.recipe): thirty queued jobs hold thirty configs, not thirty models.

        `resume` continues from a checkpoint of the same architecture: weights, optimizer state,
        counters and history, so the run continues as if it had never stopped. `weights_from`
        instead starts a new run from some parts of a checkpoint (transfer learning: its
        features, a new head; deeparch.engine.checkpointing.WeightsFrom). Refused with a
        ConfigError when the owner already has as many jobs as the class allows.
        """
        if self._closed:
            raise DeeparchError("the server is shutting down: no new jobs")
        self._check_room(owner)
        if resume is not None and weights_from is not None:
            raise ConfigError(
                "weights_from", str(weights_from.path), "none when resuming",
                "a resumed run continues its own checkpoint, weights and all",
            )  # fmt: skip
        job = self.backend.create(self._new_id(), config, owner, self, resume, weights_from)
        self._attach_gate(job)
        with self._lock:
            self._check_room(owner)  # another tab of the session may have started one meanwhile
            self._jobs[job.id] = job
            self._queue.append(job)
        self._ensure_watchdog()
        self._schedule()
        if job.set_aside():  # no slot was free: it waits holding its recipe only
            # What it let go of has no reference cycle, so it is freed already: no collection.
            trim_heap()
        return job

    def _check_room(self, owner: str | None) -> None:
        if owner is None:
            return
        active = [job for job in self.jobs(owner) if job.is_active()]
        allowed = self.jobs_per_student + self.queue_per_student
        if len(active) >= allowed:
            raise ConfigError(
                "jobs",
                len(active) + 1,
                f"at most {allowed} queued or training per student (the class settings "
                f"jobs_per_student={self.jobs_per_student}, {env_name('jobs_per_student')}, and "
                f"queue_per_student={self.queue_per_student}, {env_name('queue_per_student')})",
                "stop one of your jobs first",
            )

    def _attach_gate(self, job: JobHandle) -> None:
        """Thread-backend jobs take turns on the cores and keep to their thread budget."""
        gate = getattr(job, "gate", None)
        control = getattr(job, "control", None)
        if gate is None or control is None:
            return  # another backend's job trains elsewhere, with resources of its own
        job.gate = BudgetedGate(
            gate, job.id, self.slices, self.budget, lambda: control.stop_requested
        )

    def load_checkpoint(self, path: str | Path, owner: str | None = None) -> JobHandle:
        """A finished job holding a checkpoint's model, config and metrics, to show or compare."""
        job = self.backend.load(self._new_id(), path, owner)
        with self._lock:
            self._jobs[job.id] = job
        self._trim(owner)
        return job

    def reopen(self, owner: str | None, run_id: str) -> JobHandle:
        """A stored run of this owner loaded back into memory (Compare, the explore pages)."""
        run = self.store.get(owner, run_id) if self.store is not None else None
        if run is None:
            raise UnknownNameError("stored run", run_id, [r.id for r in self.stored_runs(owner)])
        loaded = self.backend.load(self._new_id(), run.weights, owner)
        # Loaded whole to take its task's snapshot; kept as an EndedRun, its weights in the store.
        job = EndedRun(loaded, run.weights)
        del loaded
        with self._lock:
            self._jobs[job.id] = job
        self._trim(owner)
        return job

    def save_checkpoint(self, owner: str | None, job_id: str, target: str | Path) -> Path:
        """A run's checkpoint written to target: from memory, or from the run store once the
        run has left memory (a download asked for after its session's newer runs ended)."""
        try:
            return self.get(job_id).save_checkpoint(target)
        except UnknownNameError:
            run = self.store.get(owner, job_id) if self.store is not None else None
            if run is None:
                raise
        return checkpoint.copy_checkpoint(run.weights, target)

    def stored_runs(self, owner: str | None) -> list[StoredRun]:
        return self.store.runs(owner) if self.store is not None else []

    def get(self, job_id: str) -> JobHandle:
        with self._lock:
            if job_id not in self._jobs:
                raise UnknownJobError(job_id)  # ids are not listed to strangers
            return self._jobs[job_id]

    def jobs(self, owner: str | None = None) -> list[JobHandle]:
        """All jobs, or one owner's, oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def jobs_held(self) -> int:
        """How many jobs are in memory (active and ended)."""
        with self._lock:
            return len(self._jobs)

    # -- control: only the owner (or the teacher) --

    def _owned(self, job_id: str, owner: str | None, action: str) -> JobHandle:
        job = self.get(job_id)
        if owner != TEACHER and job.owner is not None and job.owner != owner:
            raise NotYourJobError(job_id, action)
        return job

    def stop(self, job_id: str, owner: str | None, reason: str = "") -> bool:
        job = self._owned(job_id, owner, "stop")
        if owner == TEACHER and not reason:
            reason = f"stopped by the teacher at step {job.snapshot().get('step', 0)}"
        return job.stop(reason)

    def pause(self, job_id: str, owner: str | None) -> bool:
        return self._owned(job_id, owner, "pause").pause()

    def resume(self, job_id: str, owner: str | None) -> bool:
        return self._owned(job_id, owner, "resume").resume()

    def step(self, job_id: str, owner: str | None) -> bool:
        return self._owned(job_id, owner, "step").step()

    def remove(self, job_id: str, owner: str | None = None) -> None:
        """Stop a job if it runs and forget it (frees its model and data)."""
        job = self._owned(job_id, owner, "remove")
        job.stop()
        with self._lock:
            self._jobs.pop(job_id, None)
            if job in self._queue:
                self._queue.remove(job)

    def heartbeat(self, job_id: str) -> None:
        """The owner is still looking: keep the job alive."""
        self.get(job_id).last_seen = time.monotonic()

    def set_label(self, owner: str, label: str) -> None:
        """The name a student shows the teacher (at most 40 characters)."""
        with self._lock:
            self.labels[owner] = label.strip()[:40]

    def label(self, owner: str | None) -> str:
        if owner is None:
            return "(command line)"
        return self.labels.get(owner) or f"student {owner[:6]}"

    # -- sessions --

    def open_session(self, owner: str) -> None:
        """A browser session of this owner started (a new tab, or a reload)."""
        with self._lock:
            self._open_sessions[owner] = self._open_sessions.get(owner, 0) + 1
            self._ended_sessions.discard(owner)

    def end_session(self, owner: str) -> list[JobHandle]:
        """A browser session of this owner ended. Once the owner has none open, and has not come
        back within reconnect_grace_s (a reload reconnects in seconds), its queued jobs are
        dropped, its ended runs leave memory (they are in the store), and its running jobs stop
        at the heartbeat. Returns the queued jobs dropped now (none while it may come back)."""
        with self._lock:
            still_open = self._open_sessions.get(owner, 0) - 1
            if still_open > 0:
                self._open_sessions[owner] = still_open
                return []
            self._open_sessions.pop(owner, None)
        if self.reconnect_grace_s > 0:
            timer = threading.Timer(
                self.reconnect_grace_s, _release_if_gone, args=(weakref.ref(self), owner)
            )
            timer.daemon = True
            timer.start()
            return []
        return self.release_owner(owner)

    def release_owner(self, owner: str) -> list[JobHandle]:
        """Let go of an owner that has no session open: see end_session."""
        with self._lock:
            if self._open_sessions.get(owner):
                return []  # it came back (a reload, a reconnect)
            self._ended_sessions.add(owner)
            queued = [job for job in self._queue if job.owner == owner]
        for job in queued:
            job.stop("dropped: its session ended before it started")
        with self._lock:
            for job in queued:
                self._jobs.pop(job.id, None)
        self._trim(owner)
        self._schedule()
        return queued

    # -- scheduling --

    def queue_position(self, job: JobHandle) -> int:
        """1 for the next job to start, 2 after it, ...; 0 when not queued."""
        with self._lock:
            order = self._start_order()
        return order.index(job) + 1 if job in order else 0

    def set_max_running(self, max_running: int) -> None:
        """Change how many jobs may train at once; queued jobs start if slots opened."""
        if max_running < 0:
            raise ConfigError("max_running", max_running, "0 or more")
        with self._lock:
            self.max_running = max_running
        self._schedule()

    def running_count(self, owner: str | None | object = ...) -> int:
        """Jobs holding a slot (running or paused: a paused job keeps its memory); one owner's
        when given."""
        with self._lock:
            return sum(
                1
                for j in self._jobs.values()
                if j.state in (JobState.RUNNING, JobState.PAUSED)
                and (owner is ... or j.owner == owner)
            )

    def _new_id(self) -> str:
        # A counter for people, a random part so that ids do not tell how many jobs others ran.
        return f"job-{next(self._ids)}-{secrets.token_hex(4)}"

    def _limit(self, owner: str | None) -> int:
        return UNLIMITED if owner is None else self.jobs_per_student

    def _start_order(self, running: dict[str | None, int] | None = None) -> list[SchedulableJob]:
        """The queued jobs in the order they would start: round-robin over students, the one
        served longest ago first, each student's own jobs first-come first-served."""
        waiting: dict[str | None, list[SchedulableJob]] = {}
        for job in self._queue:
            waiting.setdefault(job.owner, []).append(job)
        served = dict(self._served)
        turn = max(served.values(), default=0)
        order = []
        while waiting:
            owner = min(waiting, key=lambda o: served.get(o, 0))
            order.append(waiting[owner].pop(0))
            if not waiting[owner]:
                del waiting[owner]
            turn += 1
            served[owner] = turn
        return order

    def _schedule(self) -> None:
        with self._lock:
            while self.running_count() < self.max_running:
                candidates = [
                    job
                    for job in self._start_order()
                    if self.running_count(job.owner) < self._limit(job.owner)
                ]
                if not candidates:
                    return
                job = candidates[0]
                self._queue.remove(job)
                self._served[job.owner] = next(self._turns)
                job.start()

    def job_ended(self, job: JobHandle) -> None:
        """Called by a job when it ends (or is stopped while queued): free its place, keep it in
        the store, and let only the newest few of its session stay in memory."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
        self.slices.release(job.id)
        self.budget.leave(job.id)
        self._schedule()
        self._store(job)
        self._trim(job.owner)

    def _store(self, job: JobHandle) -> None:
        if self.store is None or job.owner is None:
            return
        if not job.snapshot().get("step"):
            return  # never trained a step: nothing to look at again
        try:
            stored = self.store.save(job, self.label(job.owner))
        except (OSError, DeeparchError) as error:
            logger.warning("run %s not stored: %s", job.id, error)
            return
        # Kept in memory for a while (the newest few of its session) only to be looked at: its
        # snapshot, not its weights, their initial copy, gradients or optimizer state.
        try:
            ended = EndedRun(job, stored.weights)
        except DeeparchError as error:  # its weights are gone (a Ray worker died): kept whole
            logger.warning("run %s kept whole: %s", job.id, error)
            return
        with self._lock:
            if job.id in self._jobs:
                self._jobs[job.id] = ended
        # The runs replaced before this one have freed their tensors by now (this one's go when
        # its thread ends): hand those pages back, or the server's resident memory only grows.
        give_freed_memory_back()

    def _trim(self, owner: str | None) -> None:
        """Keep the newest runs_in_memory ended runs of a session (none once it has ended) and
        the class's ended runs within ended_runs_bytes; forget an owner that has left."""
        with self._lock:
            dropped: list[JobHandle] = []
            if owner is not None and self.store is not None:  # else nothing else keeps them
                keep = 0 if owner in self._ended_sessions else self.runs_in_memory
                ended = [j for j in self._jobs.values() if j.owner == owner and not j.is_active()]
                dropped = ended[: max(0, len(ended) - keep)]
            dropped += self._over_budget(dropped)
            for job in dropped:
                del self._jobs[job.id]
            self._forget_if_gone(owner)
        if dropped:
            del job, dropped
            give_freed_memory_back()

    def _over_budget(self, leaving: list[JobHandle]) -> list[JobHandle]:
        """The kept ended runs to drop so that the rest hold at most ended_runs_bytes: the
        earliest ended first, never an open session's newest (what its student looks at)."""
        kept = [j for j in self._jobs.values() if isinstance(j, EndedRun) and j not in leaving]
        total = sum(run.held_bytes() for run in kept)
        if total <= self.ended_runs_bytes:
            return []
        kept.sort(key=lambda run: run.ended_at)
        newest = {run.owner: run for run in kept if run.owner not in self._ended_sessions}
        dropped = []
        for run in kept:
            if total <= self.ended_runs_bytes:
                break
            if newest.get(run.owner) is not run:
                dropped.append(run)
                total -= run.held_bytes()
        return dropped

    def _forget_if_gone(self, owner: str | None) -> None:
        """Drop what the manager keeps of an owner whose sessions all ended and who has no job
        left in memory (its label, its turn, its ended mark): a class hour of tabs opened and
        closed must not grow these for the server's life. Called under the lock."""
        if owner is None or owner not in self._ended_sessions or self._open_sessions.get(owner):
            return
        if any(job.owner == owner for job in self._jobs.values()):
            return
        self._ended_sessions.discard(owner)
        self.labels.pop(owner, None)
        self._served.pop(owner, None)

    def owners_tracked(self) -> int:
        """Owners the manager keeps anything of (sessions, labels, turns, ended marks, jobs)."""
        with self._lock:
            owners = {job.owner for job in self._jobs.values()}
            for keyed in (self._open_sessions, self.labels, self._served, self._ended_sessions):
                owners.update(keyed)
            return len(owners - {None})

    # -- heartbeats --

    def expire_abandoned(self) -> list[JobHandle]:
        """Stop active jobs whose owner has not looked for heartbeat_timeout seconds."""
        if self.heartbeat_timeout <= 0:
            return []
        now = time.monotonic()
        expired = []
        for job in self.jobs():
            if job.owner is None or not job.is_active():
                continue
            if now - job.last_seen > self.heartbeat_timeout:
                step = job.snapshot().get("step", 0)
                reason = (
                    f"stopped at step {step}: its owner has not looked at it for "
                    f"{self.heartbeat_timeout:g} s"
                )
                if job.stop(reason):
                    expired.append(job)
        return expired

    def _ensure_watchdog(self) -> None:
        """Start the heartbeat checker once expiry is on; it ends when the manager is dropped."""
        with self._lock:
            if self.heartbeat_timeout <= 0:
                return
            if self._watchdog is not None and self._watchdog.is_alive():
                return
            self._watchdog = threading.Thread(
                target=_watch, args=(weakref.ref(self),), name="deeparch-heartbeat", daemon=True
            )
            self._watchdog.start()

    # -- shutdown --

    def shutdown(self, timeout: float = 30.0) -> list[JobHandle]:
        """Stop every job, wait for them to end (each ends at its next step and is stored), and
        release the backend. Returns the jobs that were active."""
        with self._lock:
            self._closed = True
            active = [job for job in self._jobs.values() if job.is_active()]
        for job in active:
            job.stop(f"the server shut down at step {job.snapshot().get('step', 0)}")
        deadline = time.monotonic() + timeout
        for job in active:
            job.wait(max(0.0, deadline - time.monotonic()))
        self.backend.shutdown()
        return active


def _release_if_gone(manager_ref: weakref.ref, owner: str) -> None:
    manager = manager_ref()
    if manager is not None and not manager._closed:
        manager.release_owner(owner)


def _watch(manager_ref: weakref.ref) -> None:
    """Every quarter of the timeout (0.05 s to 5 s), stop the jobs nobody looks at any more."""
    while True:
        manager = manager_ref()
        if manager is None or manager.heartbeat_timeout <= 0:
            return
        interval = min(5.0, max(0.05, manager.heartbeat_timeout / 4))
        del manager  # hold no reference while sleeping, so the manager can be collected
        time.sleep(interval)
        manager = manager_ref()
        if manager is None:
            return
        try:
            manager.expire_abandoned()
        except Exception:  # noqa: BLE001  (the watchdog must outlive any one bad job)
            logger.exception("heartbeat check failed")
        del manager


def manager_from_settings(settings: ClassSettings, backend: Backend | None = None) -> JobManager:
    """A manager as the class settings describe it, on the backend they name."""
    backend = backend if backend is not None else make_backend(settings)
    max_running = settings.max_running
    if not max_running:
        takes_turns = isinstance(backend, ThreadBackend) and settings.slice_s > 0
        max_running = ADMITTED_WITH_TURNS if takes_turns else backend_capacity(backend)
    manager = JobManager(
        max_running=max_running,
        heartbeat_timeout=settings.heartbeat_s,
        backend=backend,
        jobs_per_student=settings.jobs_per_student,
        queue_per_student=settings.queue_per_student,
        runs_in_memory=settings.runs_in_memory,
        store=RunStore(settings.run_store),
        ended_runs_bytes=settings.ended_runs_mb * MB,
        slice_s=settings.slice_s,
        cores=threads_beside_a_browser(),
    )
    manager.reconnect_grace_s = RECONNECT_GRACE_S
    return manager


def terminal_manager(settings: ClassSettings | None = None, max_running: int = 1) -> JobManager:
    """A manager for a command in a terminal (`train`, `lesson run`): on the backend the class
    settings name (DEEPARCH_BACKEND=ray trains on Ray there too), `max_running` slots, and no
    heartbeat expiry (nobody sends heartbeats from a terminal). Shut it down when done."""
    settings = settings if settings is not None else load_settings()
    return JobManager(max_running=max_running, heartbeat_timeout=0, backend=make_backend(settings))


def backend_capacity(backend: Backend) -> int:
    """How many jobs may train at once when the settings leave it to the server: what the
    backend reports (a Ray cluster: its CPUs / cpus per job), else the thread backend's default."""
    capacity = getattr(backend, "capacity", None)
    if callable(capacity):
        return max(1, int(capacity()))
    return default_max_running()


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide manager, configured by the class settings (deeparch.settings)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = manager_from_settings(load_settings())
            # Streamlit answers SIGINT and SIGTERM by stopping its server and returning from
            # main: the interpreter then exits, running this first. Jobs stop at their next step
            # and are stored; none is cut off inside a torch kernel as the process ends (which
            # aborts with "terminate called without an active exception").
            atexit.register(_shutdown_at_exit)
        return _manager


def _shutdown_at_exit() -> None:
    if _manager is not None:
        stopped = _manager.shutdown()
        if stopped:
            logger.warning("server shutdown: %d job(s) stopped and stored", len(stopped))


def existing_manager() -> JobManager | None:
    """The process-wide manager if one was made (shutdown has nothing to do otherwise)."""
    return _manager
