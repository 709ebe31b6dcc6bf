"""What a load-test server's log says (tests start their servers with
tests.app.browser.running_app)."""

from __future__ import annotations

import re
from pathlib import Path

TRACEBACK = re.compile(r"Traceback +\(most recent call last\)")
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # rich colours the traceback in the log


def tracebacks_in(log_path: Path) -> int:
    """Uncaught exceptions the server printed (Streamlit logs one traceback per failed run)."""
    text = ANSI_COLOUR.sub("", log_path.read_text(errors="replace"))
    return len(TRACEBACK.findall(text))
