"""A plan's reports as the README's load-test table: one row per scenario (ramp: per stage),
its figures in words, the load average while it ran, and its wall time against the estimate."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _n(value: Any, digits: int = 1) -> str:
    """A figure as the README writes it: thousands separated, `digits` decimals below 100."""
    if value is None:
        return "?"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _span(values: Iterable[Any], unit: str = "") -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "?"
    low, high = min(present), max(present)
    text = _n(low) if _n(low) == _n(high) else f"{_n(low)}-{_n(high)}"
    return f"{text}{unit}"


def _states(states: dict | None) -> str:
    return ", ".join(f"{count} {state}" for state, count in (states or {}).items()) or "no job"


def _times(figures: dict | None, what: str = "first loss point") -> str:
    """ "first loss point 2.5 s median, 2.8 s p90, 3.1 s max" from a stats() dict."""
    if not figures or not figures.get("n"):
        return f"no {what}"
    missing = f" ({figures['missing']} never)" if figures.get("missing") else ""
    return (
        f"{what} {_n(figures['median'])} s median, {_n(figures['p90'])} s p90, "
        f"{_n(figures['max'])} s max{missing}"
    )


def load_text(report: dict) -> str:
    """The 1-minute load average while the scenario ran (sampled each second), else before/after."""
    result = report.get("result") or {}
    servers = [t.get("server") for t in result.get("trials", [])] or [result.get("server")]
    lows = [s.get("load_1m_min") for s in servers if s]
    highs = [s.get("load_1m_max") for s in servers if s]
    if not [v for v in lows if v is not None]:
        lows = highs = [
            (report.get(k) or [None])[0] for k in ("load_average_before", "load_average_after")
        ]
    return "load " + _span(lows + highs)


def _problems(result: dict) -> str:
    problems = result.get("problems") or ([result["problem"]] if result.get("problem") else [])
    errors = result.get("error_pages")
    parts = []
    if errors:
        parts.append(f"{errors} error page(s): {'; '.join(result.get('messages', {}))}")
    if problems:
        parts.append(f"{len(problems)} problem(s), the first: {problems[0]}")
    return "; ".join(parts)


def _one_row(parts: list[str], result: dict) -> list[tuple[str, str]]:
    """One row of the parts, and what went wrong for any tab after them."""
    problems = _problems(result)
    return [("", "; ".join(parts + ([problems] if problems else [])))]


def cold_cells(result: dict) -> list[tuple[str, str]]:
    trials = result["trials"]
    errors = ", ".join(str(n) for n in result["error_pages_per_trial"])
    medians = _span(t["page_s"].get("median") for t in trials)
    text = (
        f"{errors} error pages; first page after {medians} s (median), "
        f"{_span(t['page_s'].get('max') for t in trials)} s (max)"
    )
    problems = [p for t in trials for p in t["problems"]]
    if problems:
        text += f"; {len(problems)} tab problem(s), the first: {problems[0]}"
    return [("", text)]


def ramp_cells(result: dict) -> list[tuple[str, str]]:
    rows = []
    for stage in result["stages"]:
        n = stage["students"]
        parts = [_times(stage["first_point_s"])]
        if n > 1:
            parts.append(f"queue wait {_n(stage['queue_wait_s'].get('median'))} s median")
        ratio = stage.get("class_vs_one_job_alone")
        parts.append(
            f"class {_n(stage.get('class_samples_per_s'))} samples/s"
            + (f" ({ratio:.2f} of one alone)" if ratio is not None and n > 1 else "")
        )
        parts.append(f"server {_n(stage.get('rss_mb_after'))} MB")
        if _problems(stage):
            parts.append(_problems(stage))
        rows.append((f", {n} student{'s' if n > 1 else ''}", "; ".join(parts)))
    return rows


def arrival_so_far(so_far: dict) -> str:
    """What a cancelled arrival scenario had measured: the job alone, the crowd, the arrivals."""
    parts = []
    alone = so_far.get("one_job_alone")
    if alone:
        parts.append(f"one job alone {_n(alone.get('samples_per_s'))} samples/s")
    if "crowd_ready_s" in so_far:
        parts.append(
            f"{so_far.get('crowd_training')} of the others training after "
            f"{_n(so_far['crowd_ready_s'])} s"
        )
    arrivals = so_far.get("arrivals", [])
    if arrivals:
        pages = _span(a["page_s"] for a in arrivals)
        points = _span(a["first_point_s"] for a in arrivals)
        parts.append(
            f"{len(arrivals)} arrival(s): page after {pages} s, first loss point {points} s"
        )
    return "; ".join(parts) or "nothing yet"


def arrival_cells(result: dict) -> list[tuple[str, str]]:
    alone = result["one_job_alone"]
    ratio = result.get("class_vs_one_job_alone")
    sight = result["first_sight_s"]
    text = (
        f"{_times(sight, 'arriving student: Start to the first loss point')} over "
        f"{sight.get('n', 0)} arrivals with {result['students_training']} others training "
        f"(target: p90 within {_n(result['first_sight_target_p90_s'])} s); class "
        f"{_n(result.get('class_samples_per_s'))} samples/s over {_n(result['class_window_s'])} s "
        f"against {_n(alone.get('samples_per_s'))} for one job alone: "
        f"{'?' if ratio is None else f'{ratio:.2f}'} (target: at least "
        f"{result['class_ratio_target']}); "
        f"{result['crowd_training_at_window_start']}/{result['students_training']} training "
        "when the window began"
    )
    return _one_row([text], result)


def soak_cells(result: dict) -> list[tuple[str, str]]:
    parts = [
        f"{result['jobs']} runs: {_states(result.get('states'))}",
        _times(result.get("first_point_s")),
        f"server {_n(result.get('rss_mb_after_first_minute'))} MB after the first minute, "
        f"+{_n(result.get('rss_mb_growth_after_first_minute'))} MB at most after it, "
        f"{_n(result.get('rss_mb_per_run_after_first_minute'), 2)} MB per ended run",
    ]
    return _one_row(parts, result)


def abandon_cells(result: dict) -> list[tuple[str, str]]:
    idle = result.get("server_idle_after_close_s")
    stopped = result.get("jobs_stopped_after_close_s") or {}
    never = result.get("jobs_never_seen_stopped")
    parts = [
        f"{result['jobs_started']} started; when closed: {_states(result['states_when_closed'])}",
        f"afterwards: {_states(result['final_states'])}",
        f"seen stopped {_span([stopped.get('median')])} s (median), {_span([stopped.get('max')])} s"
        f" (last) after the tabs closed (looked every {_n(result.get('looked_every_s'), 0)} s)"
        + (f", {never} never" if never else ""),
        f"the server and its children idle {_n(idle)} s after"
        if idle is not None
        else f"the server and its children not idle within {_n(result['waited_up_to_s'])} s",
    ]
    return _one_row(parts, result)


def churn_cells(result: dict) -> list[tuple[str, str]]:
    parts = [
        f"{result['cycles_done']}/{result['cycles_asked']} cycles: {_states(result['states'])}",
        _times(result.get("first_point_s")),
        f"{_n(result.get('rss_mb_after_first_cycle'))} MB after the first cycle, "
        f"{_n(result.get('rss_mb_after_last_cycle'))} MB after the last: "
        f"{_n(result.get('rss_mb_per_cycle'), 2)} MB per cycle, "
        f"{_n(result.get('rss_mb_after_tab_closed'))} MB after the tab closed",
    ]
    return _one_row(parts, result)


CELLS = {
    "cold": cold_cells,
    "ramp": ramp_cells,
    "arrival": arrival_cells,
    "soak": soak_cells,
    "abandon": abandon_cells,
    "churn": churn_cells,
}
TITLES = {
    "cold": "cold start",
    "ramp": "ramp",
    "arrival": "arrival (the issue's two figures)",
    "soak": "soak",
    "abandon": "abandonment",
    "churn": "churn",
}


def rows_of(report: dict) -> list[tuple[str, str]]:
    """(what follows the title, the cell) per row; a failed or skipped step is one row."""
    for key in ("skipped", "error"):
        if key in report:
            failed = [("", f"**{key}**: {report[key]}")]
            so_far = report.get("result_so_far")
            if so_far and report["scenario"] == "ramp":  # the stages that finished before it
                failed += [
                    (f"{title} (finished before)", cell) for title, cell in ramp_cells(so_far)
                ]
            if so_far and report["scenario"] == "arrival":
                failed.append((" (measured before)", arrival_so_far(so_far)))
            return failed
    try:
        return CELLS[report["scenario"]](report["result"])
    except (KeyError, TypeError) as missing:  # a report without a field: say so, keep the rest
        return [("", f"**report incomplete**: no {missing} in it (see the JSON)")]


def table(reports: list[tuple[str, Any, dict]], commit: str) -> str:
    lines = [
        f"| scenario (command options) | `{commit}` | wall (estimate) | report |",
        "|---|---|--:|---|",
    ]
    for file_name, step, report in reports:
        backend = " on Ray" if step.backend == "ray" else ""
        note = f", {step.note}" if step.note else ""
        load = load_text(report)
        wall = f"{_n(report.get('wall_s'), 0)} s ({_n(report.get('estimate_s'), 0)} s)"
        for suffix, cell in rows_of(report):
            first = (
                f"{TITLES[step.scenario]}{backend}{suffix}{note} (`{report['command_options']}`)"
            )
            lines.append(f"| {first} | {cell}; {load} | {wall} | {file_name} |")
    return "\n".join(lines)


def write_summary(path: Path, header: dict, reports: list[tuple[str, Any, dict]]) -> None:
    """summary.md: what ran, where and when, and the table (rewritten after every scenario)."""
    before, after = header["load_average_before"], header.get("load_average_after", ["?"] * 3)
    text = [
        f"# Load test, plan `{header['plan']}`",
        "",
        f"App `{header['app_commit']}` ({header['app_dir']}), started {header['started_utc']} UTC; "
        f"{len(reports)} scenario(s) done in {_n(header.get('wall_s', 0), 0)} s "
        f"(estimate for the whole plan: {header['estimate_s']} s). Load average (1, 5, 15 min) "
        f"{', '.join(map(str, before))} before, {', '.join(map(str, after))} now; "
        "each row's load is the 1-minute average sampled every second while it ran.",
        "",
        table(reports, header["app_commit"]),
        "",
        "```",
        header["description"],
        "```",
        "",
    ]
    path.write_text("\n".join(text))
