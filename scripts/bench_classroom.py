"""Benchmark (by hand): how a class shares one server's cores, for each way of sharing them.

    python scripts/bench_classroom.py --students 30 --window 10

For each option, `students - 1` students train the default mlp (long runs), then one more student
arrives: the figures are the newcomer's seconds from Start to their first loss point, and the
class's total samples/s over a window against one job alone on the same cores, measured in the
same run (the machine is shared, so only the ratios mean much). The options:

- pool: `cores` jobs train at once, the rest wait in the round-robin queue (max_running=cores).
- time-sharing: every job is admitted and computes at once with one torch thread each; the
  operating system (and Python's GIL) shares the cores.
- slices S: every job is admitted; `cores` of them compute at once, each for S seconds, then the
  next waiting one takes its turn (deeparch.engine.threads.TimeSlices).

Prints JSON with the load average before and after each option.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py sets it

from deeparch.engine.config import TrainConfig  # noqa: E402
from deeparch.engine.manager import JobManager  # noqa: E402
from deeparch.engine.threads import threads_beside_a_browser  # noqa: E402

LONG = TrainConfig(arch="mlp", dataset="mnist", batch_size=64, epochs=200)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def first_loss_seconds(job, limit: float) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if job.snapshot()["losses"].get("loss"):
            return round(time.perf_counter() - started, 2)
        time.sleep(0.01)
    return None  # not within the limit


def samples_per_s(jobs, window: float) -> float:
    before = {job.id: job.snapshot().get("step", 0) for job in jobs}
    time.sleep(window)
    after = {job.id: job.snapshot().get("step", 0) for job in jobs}
    steps = sum(after[j] - before[j] for j in before)
    return steps * LONG.batch_size / window


def measure(manager: JobManager, students: int, window: float, wait_limit: float) -> dict:
    load_before = load()
    others = [manager.submit(LONG, owner=f"{i:032x}") for i in range(students - 1)]
    time.sleep(2.0)  # everyone under way
    total = samples_per_s(others, window)
    started = time.perf_counter()
    newcomer = manager.submit(LONG, owner="f" * 32)
    submit_s = time.perf_counter() - started
    first = first_loss_seconds(newcomer, wait_limit)
    for job in [*others, newcomer]:
        job.stop()
    for job in [*others, newcomer]:
        job.wait(60)
    return {
        "first_loss_s": None if first is None else round(first + submit_s, 2),
        "total_samples_per_s": round(total),
        "load_before": load_before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--window", type=float, default=10.0, help="seconds of samples/s")
    parser.add_argument(
        "--cores",
        type=int,
        default=threads_beside_a_browser(),
        help="cores for training (the app's default: all but one, left to the web server)",
    )
    parser.add_argument("--wait-limit", type=float, default=30.0)
    parser.add_argument("--slices", type=float, nargs="*", default=[0.05, 0.2])
    args = parser.parse_args()
    n, cores = args.students, args.cores
    common = {"heartbeat_timeout": 0, "queue_per_student": 1}
    options = {
        "pool": lambda: JobManager(max_running=cores, cores=cores, slice_s=0, **common),
        "time-sharing": lambda: JobManager(max_running=n, cores=None, **common),
    }
    for slice_s in args.slices:
        options[f"slices {slice_s:g} s"] = lambda s=slice_s: JobManager(
            max_running=n, cores=cores, slice_s=s, **common
        )
    alone_manager = JobManager(max_running=1, cores=cores, **common)
    alone = measure(alone_manager, 2, args.window, 0.1)  # one job (its newcomer only waits)
    results = {"students": n, "cores": cores, "one job alone": alone}
    for name, make in options.items():
        result = measure(make(), n, args.window, args.wait_limit)
        result["total_vs_alone"] = round(
            result["total_samples_per_s"] / max(1, alone["total_samples_per_s"]), 2
        )
        results[name] = result
        print(name, result, file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
