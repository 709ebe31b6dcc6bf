"""The load test's plans: the full one holds the issue's sizes, and a plan goes on past a
scenario that fails or hangs, writing every report and the summary (no server started here)."""

import asyncio
import json

import pytest

from scripts.loadtest import plan
from scripts.loadtest.arrival import ProgressLog
from scripts.loadtest.scenarios import Options


def sizes(name):
    return {(step.scenario, step.backend): step.changes for step in plan.PLANS[name]}


def test_the_full_plan_runs_every_scenario_at_the_issues_size():
    full = sizes("full")
    assert full[("cold", "threads")] == {"students": 30, "repeat": 10}
    assert full[("ramp", "threads")]["stages"] == (1, 5, 10, 20, 30)
    assert full[("soak", "threads")] == {"students": 10, "minutes": 10.0}
    assert full[("churn", "threads")]["cycles"] == 100
    assert full[("arrival", "threads")]["students"] == 30  # 29 training, the 30th arriving
    assert {"soak", "abandon", "churn"} <= {s for s, backend in full if backend == "ray"}
    assert sizes("smoke").keys() == full.keys()  # the smoke plan checks the same sequence


def test_each_step_gets_its_own_server_port_log_folder_and_run_store(tmp_path):
    rows = plan.planned("smoke", Options(port=8830), tmp_path)
    ports = [options.port for _, options, _ in rows]
    assert ports == list(range(8830, 8830 + len(rows)))
    stores = {options.server_env["DEEPARCH_RUN_STORE"] for _, options, _ in rows}
    assert len(stores) == len(rows) and len({o.log_dir for _, o, _ in rows}) == len(rows)
    assert all(estimate > 0 for *_, estimate in rows)


def test_the_command_options_repeat_the_step_alone():
    step = plan.Step("soak", "ray", {"students": 10, "minutes": 5.0})
    assert plan.command_options(step) == "--scenario soak --students 10 --minutes 5 --backend ray"


def test_a_plan_goes_on_past_a_failing_and_a_stuck_scenario(tmp_path, monkeypatch):
    async def fake_run(options):
        if options.scenario == "cold":
            raise RuntimeError("streamlit exited with code 1")
        if options.scenario == "ramp":
            await asyncio.sleep(60)  # stuck: cancelled at its cap
        return {"scenario": options.scenario, "wall_s": 0.1, "result": {}}

    steps = (plan.Step("cold"), plan.Step("ramp"), plan.Step("churn", changes={"cycles": 1}))
    monkeypatch.setitem(plan.PLANS, "test", steps)
    monkeypatch.setattr(plan, "run", fake_run)
    monkeypatch.setattr(plan, "cap_s", lambda estimate: 0.5)
    summary = asyncio.run(plan.run_plan("test", Options(), tmp_path))
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("0*.json"))]
    assert [r["scenario"] for r in reports] == ["cold", "ramp", "churn"]
    assert reports[0]["error"] == "RuntimeError: streamlit exited with code 1"
    assert reports[1]["error"].startswith("cancelled after 0 s")
    assert "error" not in reports[2]
    text = summary.read_text()
    assert text.count("\n| cold start") == 1 and "report incomplete" in text  # churn had no fields
    assert "streamlit exited" in text and "cancelled after" in text


def test_a_tabs_rate_is_its_steps_at_the_window_ends_over_the_windows_length():
    log = ProgressLog([(0.0, 0), (1.0, 10), (2.0, 30), (5.0, 40)])
    assert log.steps_at(0.5) == pytest.approx(5) and log.steps_at(3.5) == pytest.approx(35)
    assert log.samples_per_s(0.5, 2.5, 64) == pytest.approx((30 + 10 / 6 - 5) * 64 / 2.0)
    assert log.samples_per_s(0.0, 5.0, 64) == pytest.approx(40 * 64 / 5.0)
    assert log.samples_per_s(2.5, 4.0, 64) == pytest.approx(5 * 64 / 1.5)  # between readings
    assert log.samples_per_s(4.0, 6.0, 64) is None  # no reading after its end: unknown
    # Two readings in one burst inside the window: the rate is the window's, not the burst's.
    burst = ProgressLog([(0.0, 0), (9.999, 100), (10.0, 200), (20.0, 300)])
    assert burst.samples_per_s(5.0, 15.0, 1) == pytest.approx((250 - 50) / 10.0, rel=1e-3)


def test_a_ramp_cancelled_in_a_later_stage_keeps_the_stages_it_finished(tmp_path, monkeypatch):
    stage_one = {
        "students": 1,
        "first_point_s": {"n": 1, "missing": 0, "median": 0.4, "p90": 0.4, "max": 0.4},
        "queue_wait_s": {"n": 1, "missing": 0, "median": 0.0, "p90": 0.0, "max": 0.0},
        "class_samples_per_s": 1500.0,
        "rss_mb_after": 900.0,
    }

    async def fake_run(options):
        options.so_far.setdefault("stages", []).append(stage_one)
        await asyncio.sleep(60)  # the second stage never ends: cancelled at its cap

    monkeypatch.setitem(plan.PLANS, "test", (plan.Step("ramp"), plan.Step("ramp")))
    monkeypatch.setattr(plan, "run", fake_run)
    monkeypatch.setattr(plan, "cap_s", lambda estimate: 0.3)
    summary = asyncio.run(plan.run_plan("test", Options(), tmp_path))
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("0*.json"))]
    # each step has its own record of what it finished: one stage each, never both in one
    assert [r["result_so_far"]["stages"] for r in reports] == [[stage_one], [stage_one]]
    text = summary.read_text()
    assert text.count("1 student (finished before)") == 2
    assert text.count("class 1,500 samples/s") == 2


def test_an_arrival_cancelled_midway_keeps_the_job_alone_and_the_arrivals_so_far(
    tmp_path, monkeypatch
):
    async def fake_run(options):
        options.so_far["one_job_alone"] = {"samples_per_s": 1800.0}
        options.so_far.update(crowd_ready_s=40.0, crowd_training=29)
        options.so_far["arrivals"] = [
            {"page_s": 3.0, "first_point_s": 2.5, "problem": None},
            {"page_s": 9.0, "first_point_s": 4.0, "problem": None},
        ]
        await asyncio.sleep(60)  # the third arrival never ends

    monkeypatch.setitem(plan.PLANS, "test", (plan.Step("arrival"),))
    monkeypatch.setattr(plan, "run", fake_run)
    monkeypatch.setattr(plan, "cap_s", lambda estimate: 0.3)
    summary = asyncio.run(plan.run_plan("test", Options(), tmp_path))
    report = json.loads(next(tmp_path.glob("01-*.json")).read_text())
    assert [a["first_point_s"] for a in report["result_so_far"]["arrivals"]] == [2.5, 4.0]
    assert (
        "one job alone 1,800 samples/s; 29 of the others training after 40.0 s; "
        "2 arrival(s): page after 3.0-9.0 s, first loss point 2.5-4.0 s"
    ) in summary.read_text()
