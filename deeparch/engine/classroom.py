"""What the teacher sees of a class: every session's jobs, the class's runs grouped by what they
trained, and the server's memory and cores. Read-only views of a JobManager, for the Teacher page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from deeparch.engine.manager import JobManager

# What makes two runs "the same configuration": everything they trained with but the seed.
NOT_CONFIGURATION = ("seed",)


def job_rows(manager: JobManager) -> list[dict[str, Any]]:
    """One row per running or queued job of any session, oldest first."""
    rows = []
    for job in manager.jobs():
        if not job.is_active():
            continue
        snap = job.snapshot()  # not as the owner: the teacher's look keeps no job alive
        rows.append(
            {
                "id": job.id,
                "student": manager.label(job.owner),
                "architecture": snap.get("arch"),
                "dataset": snap.get("dataset"),
                "state": snap.get("state"),
                "step": f"{snap.get('step', 0)}/{snap.get('total_steps', 0)}",
                "samples/s": round(float(snap.get("samples_per_s") or 0.0)),
                # text, as "step": a table column has one type (Arrow), and a running job's
                # position is empty beside a queued job's number
                "queue position": str(snap.get("queue_position") or ""),
            }
        )
    return rows


def configuration_key(snap: Mapping[str, Any]) -> str:
    """A readable key shared by runs of the same architecture, dataset and settings."""
    config = dict(snap.get("config") or {})
    for name in NOT_CONFIGURATION:
        config.pop(name, None)
    arch_config = config.pop("arch_config", {}) or {}
    shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(arch_config.items()))
    trained = ", ".join(
        f"{k}={_short(v)}" for k, v in sorted(config.items()) if k not in ("arch", "dataset")
    )
    return f"{snap.get('arch')} on {snap.get('dataset')} ({shown}; {trained})"


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def class_runs(manager: JobManager) -> dict[str, list[dict[str, Any]]]:
    """Every run of the class that trained a step (in memory or stored), grouped by
    configuration, the largest groups first; each snapshot carries its student's label."""
    seen: set[str] = set()
    snaps = []
    for job in manager.jobs():
        snap = job.snapshot()
        if snap.get("step"):
            snaps.append({**snap, "label": manager.label(job.owner)})
            seen.add(job.id)
    if manager.store is not None:
        snaps += [run.snapshot for run in manager.store.all_runs() if run.id not in seen]
    groups: dict[str, list[dict[str, Any]]] = {}
    for snap in snaps:
        groups.setdefault(configuration_key(snap), []).append(snap)
    return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


def header_line(rows: list[Mapping[str, Any]], usage: Mapping[str, Any]) -> str:
    """One line over the job table: how many jobs train and wait, and what the server holds."""
    states = [row.get("state") for row in rows]
    waiting = states.count("queued")
    return (
        f"{len(rows) - waiting} job(s) training or paused, {waiting} queued · "
        f"{usage['jobs in memory']} in memory · {usage['resident memory (MB)']} MB resident · "
        f"load {usage['load average (1 min)']} on {usage['CPU cores']} core(s)"
    )


def resident_memory_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 where there is none)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def server_usage(manager: JobManager) -> dict[str, Any]:
    """Memory and cores: what the server holds and how its cores are shared now; on Ray, its
    workers instead of the server's turns (the jobs take their turns there)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    usage: dict[str, Any] = {
        "resident memory (MB)": round(resident_memory_bytes() / 1e6),
        "jobs in memory": manager.jobs_held(),
        "jobs training (holding a slot)": manager.running_count(),
    }
    pool = getattr(manager.backend, "pool", None)
    if pool is None:
        usage["jobs computing now (holding a turn)"] = len(manager.slices.computing())
        usage["torch threads of computing jobs"] = manager.budget.total()
        usage["cores for training"] = manager.budget.cores
    else:
        idle, busy = pool.size()
        usage["Ray workers training / idle"] = f"{busy} / {idle}"
        usage["jobs a Ray worker trains, in turns"] = pool.jobs_per_worker
        usage["CPU cores a Ray worker reserves"] = pool.cpus_per_job
    usage["CPU cores"] = os.cpu_count() or 0
    usage["load average (1 min)"] = round(load[0], 2)
    return usage
