"""`python scripts/memory_per_arch.py [arch ...]`: what an ended run kept in memory holds, per
architecture at the registry's training defaults (README, Classroom: "Bounded memory").

Each architecture trains `--steps` steps (default 3) at its defaults through a JobManager with a
run store, as the app's are. Printed per run, in MB: its weights, the untouched initial copy
(`template`), gradients, optimizer state, early stopping's best weights, tensors of its task
(fixed noise, cached batches), training data of its own (a train_subset), one snapshot, the
snapshots a whole default run keeps (its snapshot count times one), its curves; then what the
manager keeps of it once stored (deeparch.engine.ended.EndedRun: snapshots and curves), and
whether its weights read back from the store equal the trained model's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deeparch.data import load_dataset  # noqa: E402
from deeparch.engine.config import TrainConfig, train_defaults  # noqa: E402
from deeparch.engine.footprint import (  # noqa: E402
    curve_bytes,
    module_bytes,
    payload_bytes,
    tensor_bytes,
)
from deeparch.engine.job import ThreadJob  # noqa: E402
from deeparch.engine.manager import JobManager  # noqa: E402
from deeparch.engine.metrics_log import MAX_SNAPSHOTS  # noqa: E402
from deeparch.engine.store import RunStore  # noqa: E402
from deeparch.models import get_arch, list_archs  # noqa: E402

MB = 2**20
OWNER = "f" * 32


def snapshots_of_a_default_run(total_steps: int, snapshot_every: int) -> int:
    """How many snapshots a whole run keeps: one every snapshot_every steps and one at the end,
    every other older one dropped past MAX_SNAPSHOTS (deeparch.engine.metrics_log)."""
    count = 0
    for _ in range(total_steps // snapshot_every + 1):
        count += 1
        if count > MAX_SNAPSHOTS:
            count = count // 2 + 1  # the older count - 1 halved (older[::2]), and the newest
    return count


def training_parts(job: ThreadJob) -> dict[str, float]:
    """MB per part of a ThreadJob as it ends, before the manager stores it."""
    prepared, trainer = job._prepared, job.trainer
    shared = load_dataset(job.dataset)
    seen: set = set()
    tensor_bytes([shared.x_train, shared.y_train, shared.x_val, shared.y_val], seen)
    parts = {"weights": module_bytes(prepared.model, seen)}
    parts["template"] = module_bytes(prepared.template, seen)
    grads = [p.grad for p in prepared.model.parameters() if p.grad is not None]
    parts["gradients"] = tensor_bytes(grads, seen)
    moments = [
        value
        for optimizer in prepared.task.optimizers.values()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    ]
    parts["optimizer"] = tensor_bytes(moments, seen)
    best = [
        tensor
        for callback in trainer.callbacks
        for tensor in (getattr(callback, "best_state", None) or {}).values()
    ]
    parts["best_weights"] = tensor_bytes(best, seen)
    task_tensors = [v for v in vars(prepared.task).values() if isinstance(v, torch.Tensor)]
    parts["task_tensors"] = tensor_bytes(task_tensors, seen)
    own_data = [prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val]
    parts["own_data"] = tensor_bytes(own_data, seen)
    return {name: value / MB for name, value in parts.items()}


def measure(arch: str, steps: int, store: RunStore) -> dict[str, float | int | str]:
    config = TrainConfig(arch=arch, **train_defaults(arch))
    measured = dataclasses.replace(config, max_steps=steps, snapshot_every=max(1, steps))
    manager = JobManager(max_running=1, heartbeat_timeout=0, store=store, runs_in_memory=1)
    captured: dict = {}
    original_store = manager._store

    def store_and_look(job):  # measure the ThreadJob as it ended, then let the manager keep it
        captured.update(training_parts(job))
        captured["full_steps"] = int(config.epochs) * job.trainer.steps_per_epoch
        original_store(job)

    manager._store = store_and_look
    job = manager.submit(measured, owner=OWNER)
    assert job.wait(600), arch
    log = job.log.copy()
    one_snapshot = payload_bytes(log["snapshots"][-1]) / MB if log["snapshots"] else 0.0
    kept = manager.jobs(OWNER)[0]
    full_snapshots = snapshots_of_a_default_run(captured["full_steps"], int(config.snapshot_every))
    row = {"arch": arch, "state": job.state, **captured, "one_snapshot": one_snapshot}
    row["snapshots_full_run"] = full_snapshots
    row["snapshots_mb_full_run"] = full_snapshots * one_snapshot
    row["curves_mb_full_run"] = curve_bytes(log["losses"]) / max(1, steps) * row["full_steps"] / MB
    row["kept_now_mb"] = kept.held_bytes() / MB
    trained, reopened = job.model_copy().state_dict(), kept.model_copy().state_dict()
    same = trained.keys() == reopened.keys()
    row["same_weights"] = same and all(torch.equal(reopened[k], v) for k, v in trained.items())
    manager.end_session(OWNER)
    manager.shutdown()
    return row


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list_archs())
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    columns = (
        "weights template gradients optimizer best_weights task_tensors own_data one_snapshot "
        "snapshots_full_run snapshots_mb_full_run curves_mb_full_run kept_now_mb same_weights"
    ).split()
    print("| arch | task | " + " | ".join(columns) + " |")
    print("|---|---|" + "--:|" * len(columns))
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        for arch in args.archs:
            try:
                row = measure(arch, args.steps, store)
            except Exception as error:  # noqa: BLE001  (one architecture's failure is a row)
                print(f"| {arch} | failed: {type(error).__name__}: {error} |", flush=True)
                continue
            cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
            print(f"| {arch} | {get_arch(arch).task} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
