"""Every scenario in a row, each on a fresh server: `python scripts/loadtest.py --plan full`.

A plan is the issue's list of scenarios (cold start, ramp, the arrival figures, soak,
abandonment, churn, and soak, abandonment and churn on Ray) at one size: `full` is the issue's
size, `smoke` the same sequence tiny, to check that every scenario completes and reports. Each
scenario's report is written to the output folder as soon as it ends (NN-scenario-backend.json),
and summary.md is rewritten after each, so a plan stopped halfway keeps what it measured. A
scenario that fails or outlasts its cap is recorded as such and the plan goes on with the next;
a cancelled scenario's server is stopped on the way out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import logging
import shutil
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .report import commit_of, run
from .scenarios import Options, load_average
from .summary import write_summary

log = logging.getLogger("loadtest.plan")

# Seconds each part takes, measured with the smoke plan on the 2-core build machine at load
# 4-8 (the lead's quiet machine should be faster). They only size the estimate and the caps.
SERVER_START_S = 12.0  # a fresh `streamlit run app.py` to healthy, and its stop
RAY_START_S = 15.0  # a local Ray below the server, and its first worker
COLD_TAB_S = 0.6  # per tab opening a fresh server at once (the tabs share its cores)
# With 30 tabs the server's interpreter is busy with their reruns, and a 30-student ramp and
# arrival ran past the caps 1.5 s and 6 s gave them (365 and 414 s) on the quiet lead machine.
RAMP_TAB_S = 4.0  # per student of a ramp stage: open, set, Start, a 60-step run, watch
ARRIVAL_S = 30.0  # one arriving student: open, Start, first loss point, Stop
CHURN_CYCLE_S = 3.0  # Start, first loss point, Stop (4-6 s here at load 4-16)
ABANDON_S = 100.0  # start, close, the 60 s heartbeat stopping the jobs, looks every 10 s
# A scenario running past twice its estimate (and two minutes more) is stuck: cancel it, go on.
CAP_FACTOR, CAP_MARGIN_S = 2.0, 120.0


def cap_s(estimate_s: float) -> float:
    return CAP_FACTOR * estimate_s + CAP_MARGIN_S


@dataclass(frozen=True)
class Step:
    """One scenario of a plan: its options (over the plan's common ones) and its sizes."""

    scenario: str
    backend: str = "threads"
    changes: dict = field(default_factory=dict)
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.scenario}-{self.backend}"

    def options(self, base: Options, port: int, out: Path, index: int) -> Options:
        name = f"{index:02d}-{self.label}"
        server_env = {
            # a run store of its own: each scenario starts with a fresh server and an empty store
            "DEEPARCH_RUN_STORE": str(out / "run-stores" / name),
            **base.server_env,
        }
        return dataclasses.replace(
            base,
            scenario=self.scenario,
            backend=self.backend,
            port=port,
            server_env=server_env,
            log_dir=out / "logs" / name,
            so_far={},  # its own, never the base's (replace() would share one dict)
            **self.changes,
        )

    def estimate_s(self, options: Options) -> float:
        """From the scenario's sizes and the per-part seconds above."""
        start = SERVER_START_S + (RAY_START_S if self.backend == "ray" else 0.0)
        if self.scenario == "cold":
            return options.repeat * (SERVER_START_S + COLD_TAB_S * options.students)
        if self.scenario == "ramp":
            stages = [n for n in options.stages if n <= options.students]
            return start + RAMP_TAB_S * (1 + sum(stages)) + 2 * len(stages)
        if self.scenario == "arrival":
            crowd = RAMP_TAB_S * options.students
            return start + 2 * options.window_s + crowd + ARRIVAL_S * options.arrivals
        if self.scenario == "soak":
            return start + 60 * options.minutes + RAMP_TAB_S * options.students
        if self.scenario == "abandon":
            return start + ABANDON_S + COLD_TAB_S * options.students
        if self.scenario == "churn":
            return start + CHURN_CYCLE_S * options.cycles
        raise ValueError(f"no estimate for scenario {self.scenario!r}")


FULL = (
    Step("cold", changes={"students": 30, "repeat": 10}),
    Step("ramp", changes={"students": 30, "stages": (1, 5, 10, 20, 30)}),
    Step("arrival", changes={"students": 30, "arrivals": 10, "window_s": 15.0}),
    Step("soak", changes={"students": 10, "minutes": 10.0}),
    Step("abandon", changes={"students": 10}),
    Step("churn", changes={"cycles": 100}),
    Step("soak", "ray", {"students": 10, "minutes": 10.0}),
    Step("abandon", "ray", {"students": 10}),
    Step("churn", "ray", {"cycles": 100}),
)
SMOKE = (
    Step("cold", changes={"students": 3, "repeat": 2}),
    Step("ramp", changes={"students": 2, "stages": (1, 2)}),
    Step("arrival", changes={"students": 3, "arrivals": 2, "window_s": 5.0}),
    Step("soak", changes={"students": 2, "minutes": 1.0}),
    Step("abandon", changes={"students": 2}),
    Step("churn", changes={"cycles": 5}),
    Step("soak", "ray", {"students": 2, "minutes": 1.0}),
    Step("abandon", "ray", {"students": 2}),
    Step("churn", "ray", {"cycles": 5}),
)
PLANS = {"full": FULL, "smoke": SMOKE}


def planned(name: str, base: Options, out: Path) -> list[tuple[Step, Options, float]]:
    """The plan's steps with their options and estimates; ports from base.port on (0: free)."""
    rows = []
    for index, step in enumerate(PLANS[name], start=1):
        port = base.port + index - 1 if base.port else 0
        options = step.options(base, port, out, index)
        rows.append((step, options, step.estimate_s(options)))
    return rows


def describe(name: str, rows: list[tuple[Step, Options, float]]) -> str:
    """The plan as text: each scenario's sizes and estimate, and the total."""
    lines = [f"plan {name}: {len(rows)} scenarios, each on a fresh server"]
    for index, (step, _, estimate) in enumerate(rows, start=1):
        sizes = ", ".join(f"{k}={v}" for k, v in step.changes.items())
        note = f" ({step.note})" if step.note else ""
        lines.append(f"  {index:2d}. {step.label:16s} {sizes}: about {estimate / 60:.1f} min{note}")
    total = sum(estimate for *_, estimate in rows)
    cap = f"{CAP_FACTOR:g}x its estimate + {CAP_MARGIN_S:.0f} s"
    lines.append(f"  total: about {total / 60:.0f} min (each cancelled after {cap})")
    return "\n".join(lines)


def missing_for(step: Step) -> str:
    """Why a step cannot run on this machine ("" if it can)."""
    if step.backend == "ray" and importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install -r requirements.txt)"
    return ""


async def run_step(step: Step, options: Options, cap: float) -> dict:
    """The scenario's report; on a failure or past its cap, what happened instead."""
    started = time.monotonic()
    reason = missing_for(step)
    if reason:
        return {"scenario": step.scenario, "backend": step.backend, "skipped": reason}
    try:
        return await asyncio.wait_for(run(options), cap)
    except Exception as failure:  # noqa: BLE001  (recorded; the plan goes on)
        error, trace = f"{type(failure).__name__}: {failure}", traceback.format_exc()
        if isinstance(failure, TimeoutError) and time.monotonic() - started >= cap:
            error = f"cancelled after {cap:.0f} s (its cap: stuck, or far slower than estimated)"
    return {
        "scenario": step.scenario,
        "backend": step.backend,
        "error": error,
        "traceback": trace,
        "wall_s": round(time.monotonic() - started, 1),
        "load_average_after": load_average(),
        "server_logs": str(options.log_dir),
        **({"result_so_far": options.so_far} if any(options.so_far.values()) else {}),
    }


def cancel_on_signals() -> None:
    """SIGTERM or a closed terminal cancels the running task as Ctrl-C does: a started server
    is stopped on the way out (it runs in a session of its own, so nothing else would)."""
    task = asyncio.current_task()
    for signal_number in (signal.SIGTERM, signal.SIGHUP):
        asyncio.get_running_loop().add_signal_handler(signal_number, task.cancel)


async def run_plan(name: str, base: Options, out: Path) -> Path:
    """Run every step of the plan into `out`; the summary's path."""
    cancel_on_signals()
    out.mkdir(parents=True, exist_ok=True)
    rows = planned(name, base, out)
    plan_text = describe(name, rows)
    log.info("%s\nreports in %s", plan_text, out)
    header = {
        "plan": name,
        "app_dir": str(base.app_dir),
        "app_commit": commit_of(base.app_dir),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_average_before": load_average(),
        "estimate_s": round(sum(estimate for *_, estimate in rows)),
        "description": plan_text,
    }
    (out / "plan.json").write_text(json.dumps(header, indent=1) + "\n")
    reports: list[tuple[str, Step, dict]] = []
    started = time.monotonic()
    for index, (step, options, estimate) in enumerate(rows, start=1):
        file_name = f"{index:02d}-{step.label}.json"
        log.info("[%d/%d] %s (about %.1f min)", index, len(rows), step.label, estimate / 60)
        report = await run_step(step, options, cap_s(estimate))
        report["estimate_s"] = round(estimate)
        report["command_options"] = command_options(step)
        (out / file_name).write_text(json.dumps(report, indent=1) + "\n")
        reports.append((file_name, step, report))
        header["wall_s"] = round(time.monotonic() - started, 1)
        header["load_average_after"] = load_average()
        write_summary(out / "summary.md", header, reports)
        log.info("[%d/%d] %s: %s", index, len(rows), step.label, outcome(report))
    shutil.rmtree(out / "run-stores", ignore_errors=True)  # checkpoints of simulated students
    return out / "summary.md"


def outcome(report: dict) -> str:
    for key in ("skipped", "error"):
        if key in report:
            return f"{key}: {report[key]}"
    return f"done in {report.get('wall_s')} s"


def command_options(step: Step) -> str:
    """The single-scenario command that runs the same step alone (for the table's first column)."""
    words = [f"--scenario {step.scenario}"]
    flags = {"students": "--students", "repeat": "--repeat", "minutes": "--minutes",
             "cycles": "--cycles", "arrivals": "--arrivals", "window_s": "--window"}  # fmt: skip
    for key, value in step.changes.items():
        if key == "stages":
            words.append("--stages " + ",".join(str(n) for n in value))
        else:
            words.append(
                f"{flags[key]} {value:g}" if isinstance(value, float) else f"{flags[key]} {value}"
            )
    if step.backend != "threads":
        words.append(f"--backend {step.backend}")
    return " ".join(words)
