"""Start and stop a `streamlit run app.py` server for a scenario (--start-server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    app_dir: Path,
    port: int,
    log_path: Path,
    env: dict[str, str] | None = None,
    app: str = "app.py",
) -> subprocess.Popen:
    """The app in app_dir as the README starts it (or another script of it: a test's small
    app), its output in log_path."""
    command = [
        sys.executable, "-m", "streamlit", "run", app, "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        command,
        cwd=app_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its Ray or worker children go with it on stop
    )


def wait_healthy(url: str, server: subprocess.Popen | None, timeout: float = 120.0) -> float:
    """Seconds until /_stcore/health answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


def stop_server(server: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM the server's process group (SIGKILL after timeout); its exit code."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return server.wait()
