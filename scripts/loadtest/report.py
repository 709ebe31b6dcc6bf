"""One scenario's report: its figures and what they were measured on (commit, cores, load)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .runners import RUNNERS
from .scenarios import Options, load_average


def commit_of(folder: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stdout.strip()


async def run(options: Options) -> dict:
    """Run the scenario the options name; the JSON-ready report."""
    report = {
        "scenario": options.scenario,
        "students": options.students,
        "url": options.url if not options.start_server else None,
        "started_server": options.start_server,
        "app_dir": str(options.app_dir),
        "app_commit": commit_of(options.app_dir),
        "backend": options.backend or os.environ.get("DEEPARCH_BACKEND", "threads"),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_average(),
    }
    started = time.monotonic()
    report["result"] = await RUNNERS[options.scenario](options)
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["load_average_after"] = load_average()
    return report
