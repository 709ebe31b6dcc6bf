"""A fresh `streamlit run app.py` for the load-test tests, and what its log says."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from scripts.loadtest.server import free_port, start_server, stop_server, wait_healthy
from tests.app.browser import ARTIFACTS, REPO

TRACEBACK = re.compile(r"Traceback +\(most recent call last\)")
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # rich colours the traceback in the log


@contextlib.contextmanager
def app_server(
    name: str, app_dir: Path = REPO, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """A healthy server on a free port for the block: (its URL, its log file)."""
    port = free_port()
    log_path = ARTIFACTS / f"loadtest-{name}.log"
    server = start_server(app_dir, port, log_path, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url, log_path
    finally:
        stop_server(server)


def tracebacks_in(log_path: Path) -> int:
    """Uncaught exceptions the server printed (Streamlit logs one traceback per failed run)."""
    text = ANSI_COLOUR.sub("", log_path.read_text(errors="replace"))
    return len(TRACEBACK.findall(text))
