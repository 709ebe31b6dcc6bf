"""How the CPU is shared: short-lived threads for side work, a thread budget per training job, and
turns (time slices) between the jobs a server has admitted.

PyTorch's CPU kernels run on OpenMP (libgomp). Every thread that runs a parallel region gets a
team of OpenMP workers that lives as long as that thread does. Once the process holds more
OpenMP workers than there are cores, libgomp stops letting idle workers spin and every parallel
region then waits for workers to be woken by the kernel: measured on 2 cores, a training thread's
MLP steps ran 2x slower (34,000 against 15,000 samples/s) as soon as the main thread had done one
multi-threaded matrix product. Work done for a job outside its training thread (building the
model, the dry-run batch) therefore runs in a thread that exits afterwards, taking its team along.

torch.set_num_threads called inside a training thread sets that thread's OpenMP team size (an
OpenMP setting per thread), so each job gets its own budget: the cores divided among the jobs
that train at once, at least one each (ThreadBudget). With more jobs admitted than cores, the jobs
take turns (TimeSlices): each trains for a short slice while holding one of `cores` turns, then
queues for the next, so every admitted job shows its first loss point within a few slices while
no more threads compute at once than there are cores.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

Result = TypeVar("Result")


def run_in_fresh_thread(function: Callable[..., Result], *args: object, name: str) -> Result:
    """Call function(*args) in a new thread, wait for it, and return its result or raise its
    exception in the caller, as if it had been called directly."""
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["result"] = function(*args)
        except BaseException as error:  # noqa: BLE001  (re-raised in the caller below)
            outcome["error"] = error

    worker = threading.Thread(target=call, name=name, daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


# A full garbage collection holds the interpreter's lock for all of it, so every page and every
# job of the server waits: 0.19 s on a quiet machine with torch, streamlit and plotly loaded
# (273,000 objects), 0.4-0.9 s on loaded cores. Done as every run ended, it took 55% of the
# server's interpreter while 29 students started training (py-spy, the arrival scenario). So a
# full collection runs at most this often; the heap is trimmed every time (10-40 ms), and what
# reference counting freed (most of a run's tensors) goes back at once.
FULL_COLLECTION_EVERY_S = 30.0
_last_full_collection = -math.inf
_collection_lock = threading.Lock()


def give_freed_memory_back() -> bool:
    """Return the heap's free pages to the operating system (glibc's malloc_trim), after a full
    garbage collection where none ran in the last FULL_COLLECTION_EVERY_S; False where the C
    library has no such call.

    A dropped job's tensors are freed, but glibc keeps the pages for later allocations, so the
    server's resident memory only grows. Measured: 24 MLP runs of one session in one process,
    of which the manager keeps 3, grew 2.1 MB a run without this and nothing with it.
    """
    global _last_full_collection
    with _collection_lock:
        due = time.monotonic() - _last_full_collection >= FULL_COLLECTION_EVERY_S
        if due:
            _last_full_collection = time.monotonic()
    if due:
        gc.collect()
    return trim_heap()


def freeze_loaded_objects() -> int:
    """Move every object alive now (the imported modules: torch, streamlit, plotly, ...) out of
    the garbage collector's sight for good (gc.freeze), after one last full collection: a full
    collection then looks at what sessions and runs made since, not at 270,000 objects that
    live as long as the process (0.19 s -> 0.000002 s measured). For a server, once its imports
    are done (deeparch.warmup); returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def trim_heap() -> bool:
    """The heap's free pages back to the operating system, without a garbage collection first:
    for what reference counting has freed already. A full collection takes 0.4-0.9 s in a
    process with torch loaded (340,000 objects, on 2 loaded cores); the trim itself 10-40 ms."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def threads_beside_a_browser() -> int:
    """Torch threads for training in a process that also serves a browser on the same machine.

    One core is left to the browser and the web server: on 2 cores the app trains the default mlp at
    about 24,000 samples/s with one thread and no faster with two, while Chromium redrawing the
    live page uses about half a core (measured with scripts/bench_app.py).
    """
    return max(1, (os.cpu_count() or 2) - 1)


# ---- a thread budget per job ---------------------------------------------------------------------


class ThreadBudget:
    """Torch threads per training job: `cores` divided among the jobs computing at once.

    Every job gets at least one thread and the shares add up to `cores` whenever there are at
    most `cores` jobs (the manager and TimeSlices see to that), so the jobs never ask for more
    threads than there are cores. A job reads its share between steps (BudgetedGate).
    """

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        self._lock = threading.Lock()
        self._jobs: list[str] = []  # in the order they began

    def join(self, job_id: str) -> None:
        with self._lock:
            if job_id not in self._jobs:
                self._jobs.append(job_id)

    def leave(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs.remove(job_id)

    def shares(self) -> dict[str, int]:
        """{job id: threads}; the first jobs take the remainder of an uneven division."""
        with self._lock:
            jobs = list(self._jobs)
        if not jobs:
            return {}
        base, extra = divmod(self.cores, len(jobs))
        return {job: max(1, base + (1 if index < extra else 0)) for index, job in enumerate(jobs)}

    def share(self, job_id: str) -> int:
        return self.shares().get(job_id, 1)

    def total(self) -> int:
        return sum(self.shares().values())


# ---- turns between admitted jobs -----------------------------------------------------------------


class TimeSlices:
    """`turns` jobs compute at once; the others wait in first-come order for a turn.

    A job holds a turn for `slice_s` seconds of training, then gives it up and queues again, so
    all admitted jobs advance in round-robin. A job that pauses, stops or ends gives its turn up
    at once. slice_s of 0 means a job keeps its turn until it pauses or ends.
    """

    # A job's first turn is this short (or slice_s, if shorter): long enough for its first loss
    # point, short enough that thirty students pressing Start together see theirs within about
    # 30 x 0.05 s, while later turns are long (switching costs the class: see acquire()).
    FIRST_SLICE_S = 0.05

    def __init__(self, turns: int, slice_s: float) -> None:
        self.turns = max(1, int(turns))
        self.slice_s = float(slice_s)
        self._condition = threading.Condition()
        self._holders: dict[str, float] = {}  # job id -> when its turn began
        self._lengths: dict[str, float] = {}  # job id -> how long its current turn lasts
        self._waiting: collections.deque[str] = collections.deque()
        self._first: set[str] = set()  # the waiting jobs that wait for their first turn

    def holding(self, job_id: str) -> bool:
        with self._condition:
            return job_id in self._holders

    def expired(self, job_id: str) -> bool:
        """Whether the job's slice is used up and someone is waiting for a turn."""
        with self._condition:
            began = self._holders.get(job_id)
            if began is None or self.slice_s <= 0 or not self._waiting:
                return False
            return time.perf_counter() - began >= self._lengths.get(job_id, self.slice_s)

    def acquire(
        self, job_id: str, give_up: Callable[[], bool], poll_s: float = 0.1, first: bool = False
    ) -> bool:
        """Wait for a turn; False (without one) once give_up() says the job should not train.

        A job's `first` turn goes ahead of the jobs waiting for a later one (behind other first
        turns, in their order) and lasts FIRST_SLICE_S: a student who just pressed Start sees a
        loss point within a slice or two instead of a round of the whole class, and it costs
        the others a short slice per new job. That is what lets slices be long (0.5 s):
        measured with 29 students training, slices of 0.05 s gave the class 0.68x one job
        alone's samples/s (switching), 0.5 s gave 1.12x but 15 s to a newcomer's first point
        when it queued like the rest (both read the earlier way, from the readings inside the
        window; README: "The full plan, run").
        """
        with self._condition:
            if job_id in self._holders:
                return True
            if first:
                ahead = sum(1 for waiting in self._waiting if waiting in self._first)
                self._waiting.insert(ahead, job_id)
                self._first.add(job_id)
            else:
                self._waiting.append(job_id)
            try:
                while True:
                    if give_up():
                        return False
                    if len(self._holders) < self.turns and self._waiting[0] == job_id:
                        self._holders[job_id] = time.perf_counter()
                        self._lengths[job_id] = (
                            min(self.slice_s, self.FIRST_SLICE_S) if first else self.slice_s
                        )
                        return True
                    self._condition.wait(poll_s)
            finally:
                self._waiting.remove(job_id)
                self._first.discard(job_id)
                self._condition.notify_all()

    def release(self, job_id: str) -> None:
        with self._condition:
            self._lengths.pop(job_id, None)
            if self._holders.pop(job_id, None) is not None:
                self._condition.notify_all()

    def computing(self) -> list[str]:
        with self._condition:
            return list(self._holders)

    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)


class BudgetedGate:
    """A job's gate (deeparch.engine.loop.Gate) that also takes turns and keeps its thread budget.

    Between two steps: a job whose slice is used up gives its turn to the next; before training
    it waits for a turn (a stop ends the wait), and sets its torch threads to its current share.
    It runs in the job's training thread, the only thread whose OpenMP team it sizes.
    """

    def __init__(
        self,
        inner: Any,
        job_id: str,
        slices: TimeSlices,
        budget: ThreadBudget,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.inner = inner
        self.job_id = job_id
        self.slices = slices
        self.budget = budget
        self.stop_requested = stop_requested
        self.threads = 0  # what this thread has set so far
        self.had_a_turn = False  # its first turn goes ahead of the others' later ones

    @property
    def stop_reason(self) -> str:
        return self.inner.stop_reason

    def between_steps(self, step: int) -> tuple[bool, float]:
        if self.slices.expired(self.job_id) or getattr(self.inner, "pause_requested", False):
            self.give_up_turn()
        go, paused = self.inner.between_steps(step)
        if not go:
            self.give_up_turn()
            return go, paused
        if not self.slices.holding(self.job_id):
            first = not self.had_a_turn
            if not self.slices.acquire(self.job_id, self.stop_requested, first=first):
                return self.inner.between_steps(step)  # stopped while waiting: the gate says so
            self.had_a_turn = True
            self.budget.join(self.job_id)
        threads = self.budget.share(self.job_id)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return go, paused

    def give_up_turn(self) -> None:
        self.budget.leave(self.job_id)
        self.slices.release(self.job_id)
