"""Benchmark (by hand): the Ray backend against the thread backend on this machine.

    python scripts/bench_ray.py --epochs 2

Starts a local Ray (127.0.0.1, token authentication), then measures: how long a fresh worker
takes from being asked for to its job's first loss point, against a warm (reused) worker; what a
page's snapshot() read costs on a long job, incrementally against a whole copy sent every time;
and samples/s of the same job on the thread backend (torch threads = the cores given) and on a Ray
worker reserving as many CPUs. Prints JSON with the load average before and after.
"""

import argparse
import json
import os
import pickle
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from deeparch.engine import ray_backend  # noqa: E402
from deeparch.engine.backends import ThreadBackend  # noqa: E402
from deeparch.engine.config import TrainConfig  # noqa: E402
from deeparch.engine.manager import JobManager  # noqa: E402

WAIT_S = 600


def first_loss_seconds(manager: JobManager, config: TrainConfig) -> float:
    """Seconds from submit to the first loss point a page would read."""
    started = time.perf_counter()
    job = manager.submit(config)
    while not job.snapshot()["losses"].get("loss"):
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    job.stop()
    job.wait(WAIT_S)
    return seconds


def worker_start(cpus: float) -> dict:
    """A fresh pool (its first worker created on demand) against the same worker reused."""
    config = TrainConfig(arch="mlp", max_steps=0, epochs=50)
    fresh, warm = [], []
    for _ in range(3):
        backend = ray_backend.RayBackend(local=ThreadBackend(), cpus_per_job=cpus, prestart=0)
        manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
        fresh.append(first_loss_seconds(manager, config))
        warm.append(first_loss_seconds(manager, config))
        backend.shutdown()
    return {
        "fresh_worker_first_loss_s": [round(s, 2) for s in fresh],
        "warm_worker_first_loss_s": [round(s, 3) for s in warm],
    }


def snapshot_reads(cpus: float, steps: int) -> dict:
    """A page's read of a long job: incremental snapshot() against a whole copy every time."""
    backend = ray_backend.RayBackend(local=ThreadBackend(), cpus_per_job=cpus)
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    config = TrainConfig(arch="mlp", max_steps=0, epochs=1000, snapshot_every=10)
    manager.set_max_running(0)
    job = manager.submit(config)

    def pause_at(inner, at=steps):
        original = inner.task.train_step
        calls = []

        def train_step(batch):
            calls.append(1)
            if len(calls) == at:
                inner.pause()
            return original(batch)

        inner.task.train_step = train_step

    job.call_in_worker(pause_at)
    manager.set_max_running(1)
    assert job.wait_paused(WAIT_S), job.reason
    ray = ray_backend.ray_module()
    worker = job._worker  # noqa: SLF001  (the benchmark compares with what a naive read would do)
    whole = []
    for _ in range(20):
        started = time.perf_counter()
        everything = ray.get(worker.changes.remote(job.id, {}))
        whole.append(time.perf_counter() - started)
    job.snapshot()  # the mirror holds everything up to here
    after_one_step = []
    for _ in range(20):
        assert job.step() and job.wait_paused(WAIT_S)
        started = time.perf_counter()
        snap = job.snapshot()
        after_one_step.append(time.perf_counter() - started)
    one_step = ray.get(worker.changes.remote(job.id, job._mirror.cursor()))  # noqa: SLF001
    result = {
        "steps": snap["step"],
        "snapshots_kept": len(snap["snapshots"]),
        "whole_copy_ms_median": round(1000 * statistics.median(whole), 2),
        "whole_copy_bytes": len(pickle.dumps(everything)),
        "incremental_snapshot_ms_median": round(1000 * statistics.median(after_one_step), 2),
        "incremental_bytes_nothing_new": len(pickle.dumps(one_step)),
    }
    job.stop()
    job.wait(WAIT_S)
    backend.shutdown()
    return result


def samples_per_s(backend, config: TrainConfig) -> float:
    manager = JobManager(max_running=1, heartbeat_timeout=0, backend=backend)
    job = manager.submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    return job.snapshot()["samples_per_s"]


def throughput(cores: int, epochs: int) -> dict:
    config = TrainConfig(arch="mlp", epochs=epochs)  # the default MLP, batch 64
    threads = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        in_process = samples_per_s(ThreadBackend(), config)
    finally:
        torch.set_num_threads(threads)
    backend = ray_backend.RayBackend(local=ThreadBackend(), cpus_per_job=cores)
    on_ray = samples_per_s(backend, config)
    backend.shutdown()
    return {
        "cores": cores,
        "thread_backend_samples_per_s": round(in_process),
        "ray_backend_samples_per_s": round(on_ray),
        "ratio": round(on_ray / in_process, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000, help="steps before snapshot reads")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    report = {"load_average_before": os.getloadavg(), "cpu_count": os.cpu_count()}
    started = time.perf_counter()
    ray_backend.connect(num_cpus=os.cpu_count(), log_to_driver=False)
    report["ray_start_s"] = round(time.perf_counter() - started, 2)
    report["worker_start"] = worker_start(1.0)
    report["snapshot_reads"] = snapshot_reads(1.0, args.steps)
    report["throughput"] = [throughput(cores, args.epochs) for cores in (1, 2)]
    report["load_average_after"] = os.getloadavg()
    ray_backend.disconnect()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
