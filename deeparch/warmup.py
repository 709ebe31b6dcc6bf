"""A server's one-time work, done in a background thread after its first page has been sent.

Profiled on a fresh process (CPU seconds, python's cProfile; README: Waiting for a page): the
first Start spent 5.3 of its 5.5 s importing torch._dynamo, which torch.optim's Optimizer
imports when the process builds its first optimizer; the first Inspect tab traced cnn's graph
(0.65 s, against 0.08 s for a graph once torch.fx has run once) and built its layer table. Done
here once per server, before a student asks, those waits leave every student's first click.

The thread sets itself one OpenMP thread and exits when done, taking its OpenMP team along
(deeparch.engine.threads explains why a thread that has computed must not stay). Each step's
failure is kept as a message and never raised: the pages compute the same thing on demand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from deeparch.engine.threads import freeze_loaded_objects
from deeparch.introspection.shared import shared_graph, shared_table

INSPECT_DEFAULT_ARCH = "cnn"  # what Inspect opens on (pages/inspect.py)


def import_optimizer_machinery() -> None:
    """Build one optimizer: torch.optim imports torch._dynamo on the process's first."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def inspect_default() -> None:
    """Inspect's default architecture: its layer table and its traced graph (torch.fx's first).

    Not its pandas frame: a package imported here while a page's thread imports it by another
    route can hand that thread a partially initialized module (Python's import locks break such
    a cycle so): a Train page opened during the warm-up failed with "partially initialized module
    'pandas' has no attribute 'Series'". The steps here import only what app.py has imported
    already, and torch._dynamo, which every importer reaches by the same route (torch.optim).
    """
    shared_table(INSPECT_DEFAULT_ARCH)
    shared_graph(INSPECT_DEFAULT_ARCH)


def freeze_what_is_loaded() -> None:
    """Last: what the imports and the steps above made stays for the process's life, so the
    garbage collector stops walking it (deeparch.engine.threads.freeze_loaded_objects)."""
    freeze_loaded_objects()


# In the order a student meets them: Home's Inspect is the first click, Start comes later.
STEPS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("inspect_default", inspect_default),
    ("optimizer", import_optimizer_machinery),
    ("freeze", freeze_what_is_loaded),
)


@dataclass
class WarmUp:
    """What the warm-up did: each step's CPU seconds, the errors by step, and when it ended."""

    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


_warm_up: WarmUp | None = None
_start_lock = threading.Lock()


def run_steps(warm_up: WarmUp, steps: tuple[tuple[str, Callable[[], None]], ...]) -> None:
    torch.set_num_threads(1)  # this thread's own OpenMP team (a setting per thread)
    try:
        for name, step in steps:
            started = time.thread_time()
            try:
                step()
            except Exception as error:  # noqa: BLE001  (the page computes it again, and says why)
                warm_up.errors[name] = f"{type(error).__name__}: {error}"
            warm_up.seconds[name] = round(time.thread_time() - started, 3)
    finally:
        warm_up.done.set()


def start_warm_up(steps: tuple[tuple[str, Callable[[], None]], ...] = STEPS) -> WarmUp:
    """Start the warm-up once per process (later calls return the first one's record)."""
    global _warm_up
    with _start_lock:
        if _warm_up is None:
            _warm_up = WarmUp()
            # Not a daemon: a process that exits while this thread is inside torch (a test's
            # AppTest run, a server stopped during its first seconds) is torn down under it and
            # aborts with "terminate called without an active exception"; Python joins a
            # non-daemon thread before it exits, and the steps take seconds.
            threading.Thread(
                target=run_steps, args=(_warm_up, steps), name="deeparch-warm-up", daemon=False
            ).start()
        return _warm_up
