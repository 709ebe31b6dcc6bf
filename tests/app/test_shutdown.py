"""Stopping the server while a job trains: the job stops at a step, is stored, and the process
exits cleanly (no "terminate called without an active exception", no abort)."""

import asyncio
import json
import re
import signal
import time

import pytest

from tests.app.browser import ARTIFACTS, REPO, free_port, start_server, wait_healthy
from tests.app.wire import open_tab

APP = "tests/app/apps/one_long_job.py"


def training_step(url: str) -> int:
    texts = asyncio.run(open_tab(url)).texts
    found = [int(m.group(1)) for t in texts for m in [re.search(r"step (\d+)", t)] if m]
    return found[0] if found else 0


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_jobs_stores_them_and_exits_cleanly(tmp_path, signal_number):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"shutdown_{signal_number.name}.log"
    env = {
        "DEEPARCH_RUN_STORE": str(tmp_path),
        "DEEPARCH_HEARTBEAT_S": "0",
        "PYTHONPATH": str(REPO),
    }
    port = free_port()
    server = start_server(port, log, env=env, app=APP)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        for _ in range(120):
            if training_step(url) > 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the job never trained a step")
    finally:
        server.send_signal(signal_number)
        code = server.wait(timeout=120)
    output = log.read_text()
    assert "terminate called" not in output and "Aborted" not in output
    assert code == 0, output[-2000:]
    summaries = list(tmp_path.rglob("*.run.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["state"] == "stopped" and "the server shut down" in summary["reason"]
    assert summary["step"] > 0
    assert summaries[0].with_name(summary["id"] + ".safetensors").is_file()
