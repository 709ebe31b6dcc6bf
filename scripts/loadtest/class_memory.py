"""`python scripts/loadtest/class_memory.py --students 30 --runs 3`: a class's memory, in-process.

Two cases. `--case rounds` (the default): N students (owners, each with a session open) each
train R runs of one architecture at its registry defaults, one after another (a new run when
theirs ends), on one JobManager with a run store, as the app's is (runs_in_memory from
deeparch.settings; max_running 2, no time slices). The process's resident memory and the tensor
and array bytes alive (scripts/loadtest/probe.py's counts) are printed after each round (every
student's first run ended: the level a class reaches in its first minutes; then the second,
...), and after every session ended. --max-steps and --snapshot-every shorten the runs and keep
their snapshot count (a default MLP run: 620 steps, a snapshot every 50, 13 kept; --max-steps 60
--snapshot-every 5 keeps 13).

`--case queue`: N students press Start at once on a server with one training slot
(max_running 1): one job trains, N-1 wait in the queue. Printed after every submit returned (the
seconds the N submits took), again `--settle` seconds later, and after every job was stopped.
No web server: this measures what the manager keeps, not what Streamlit does.

DEEPARCH_ROOT=/path/to/another/checkout runs the same measurement on that checkout's deeparch
(the figures before a change).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("DEEPARCH_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from probe import array_bytes, resident_mb  # noqa: E402

from deeparch.engine.config import TrainConfig, train_defaults  # noqa: E402
from deeparch.engine.manager import JobManager  # noqa: E402
from deeparch.engine.store import RunStore  # noqa: E402
from deeparch.settings import load_settings  # noqa: E402


def level(manager: JobManager, label: str, started: float) -> dict:
    gc.collect()
    objects = gc.get_objects()
    line = {"when": label, "t_s": round(time.monotonic() - started, 1)}
    line["rss_mb"] = round(resident_mb(), 1)
    line.update({k: round(v, 1) for k, v in array_bytes(objects).items()})
    del objects
    line["jobs_in_memory"] = manager.jobs_held()
    tracked = getattr(manager, "owners_tracked", None)
    line["owners_tracked"] = tracked() if tracked else None
    line["load"] = os.getloadavg()[0]
    print(json.dumps(line), flush=True)
    return line


def class_manager(folder: str, max_running: int) -> JobManager:
    """A manager as the app's, with a run store in `folder`, one job per student, no heartbeat."""
    return JobManager(
        max_running=max_running,
        heartbeat_timeout=0,
        jobs_per_student=1,
        queue_per_student=0,
        runs_in_memory=load_settings().runs_in_memory,
        store=RunStore(folder),
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--running", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=0, help="0: the defaults' whole run")
    parser.add_argument("--snapshot-every", type=int, default=0, help="0: the defaults'")
    parser.add_argument("--case", choices=("rounds", "queue"), default="rounds")
    parser.add_argument("--settle", type=float, default=5.0, help="queue: seconds to look again")
    args = parser.parse_args()
    torch.set_num_threads(1)
    values = train_defaults(args.arch)
    values["max_steps"] = args.max_steps or values["max_steps"]
    values["snapshot_every"] = args.snapshot_every or values["snapshot_every"]
    config = TrainConfig(arch=args.arch, **values)
    print(json.dumps({"root": str(ROOT), "arch": args.arch, **vars(args)}), flush=True)
    if args.case == "queue":
        one_slot(config, args.students, args.settle)
        return
    with tempfile.TemporaryDirectory() as folder:
        manager = class_manager(folder, args.running)
        started = time.monotonic()
        owners = [f"{index:032x}" for index in range(args.students)]
        level(manager, "before any run", started)
        for owner in owners:
            manager.open_session(owner)
            manager.set_label(owner, f"student {owner[-2:]}")
        states = set()
        for round_number in range(1, args.runs + 1):  # each starts a new run when theirs ends
            jobs = [manager.submit(config, owner=owner) for owner in owners]
            for job in jobs:
                job.wait()
            states.update(job.state for job in jobs)
            del jobs, job
            level(manager, f"round {round_number}: {args.students} runs ended", started)
        level(manager, f"all runs ended ({', '.join(sorted(states))}), sessions open", started)
        for owner in owners:
            manager.end_session(owner)
        level(manager, "every session ended", started)
        manager.shutdown()


def one_slot(config: TrainConfig, students: int, settle_s: float) -> None:
    """N students press Start at once; one slot: one job trains while N-1 wait."""
    with tempfile.TemporaryDirectory() as folder:
        manager = class_manager(folder, max_running=1)
        started = time.monotonic()
        owners = [f"{index:032x}" for index in range(students)]
        for owner in owners:
            manager.open_session(owner)
        level(manager, "before any run", started)
        submitting = time.monotonic()
        jobs = [manager.submit(config, owner=owner) for owner in owners]
        submit_s = round(time.monotonic() - submitting, 1)
        queued = sum(1 for job in jobs if job.state == "queued")
        counts = f"{students - queued} training, {queued} queued"
        level(manager, f"{students} submitted in {submit_s} s: {counts}", started)
        time.sleep(settle_s)
        queued = sum(1 for job in jobs if job.state == "queued")
        level(manager, f"{settle_s:g} s later: {queued} queued", started)
        for job in jobs:
            job.stop("the measurement ended")
        for job in jobs:
            job.wait()
        del jobs, job
        level(manager, "every job stopped", started)
        manager.shutdown()


if __name__ == "__main__":
    main()
