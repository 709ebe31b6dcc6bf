"""Running a piece of PyTorch work in a short-lived thread of its own.

PyTorch's CPU kernels run on OpenMP (libgomp). Every thread that runs a parallel region gets a
team of OpenMP workers that lives as long as that thread does. Once the process holds more
OpenMP workers than there are cores, libgomp stops letting idle workers spin and every parallel
region then waits for workers to be woken by the kernel: measured on 2 cores, a training thread's
MLP steps ran 2x slower (34,000 against 15,000 samples/s) as soon as the main thread had done one
multi-threaded matrix product. Work done for a job outside its training thread (building the
model, the dry-run batch) therefore runs in a thread that exits afterwards, taking its team along.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

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


def threads_beside_a_browser() -> int:
    """Torch threads for training in a process that also serves a browser on the same machine.

    One core is left to the browser and the web server: on 2 cores the app trains the default mlp at
    about 24,000 samples/s with one thread and no faster with two, while Chromium redrawing the
    live page uses about half a core (measured with scripts/bench_app.py).
    """
    return max(1, (os.cpu_count() or 2) - 1)
