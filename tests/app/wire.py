"""Browser tabs at the protocol level, for tests that need more tabs than Chromium fits on the
machine (a cold start opened by a whole class at once).

The tab is the load test's client, scripts.loadtest.protocol.Tab (checked against Chromium by
tests/loadtest/test_browser_parity.py): one implementation of Streamlit's websocket protocol.
Here it opens a page, reads until the script has run, and reports what the student would have
seen; an uncaught exception arrives as an element of type "exception", what the browser shows as
"This app has encountered an error".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import websockets

from scripts.loadtest.protocol import Tab


@dataclass
class TabResult:
    """What one tab saw of one page load."""

    page: str
    exceptions: list[str] = field(default_factory=list)  # the page's exceptions, compile errors
    texts: list[str] = field(default_factory=list)  # the Markdown (and alerts) on the page
    runs_finished: int = 0  # script runs that ended (a router's rerun ends one early)
    finished: bool = False  # a run ended successfully
    error: str = ""  # the connection failed or timed out


def page_has_run(tab: Tab) -> bool:
    """A whole run of the page's script ended successfully (not a fragment's, not one ended
    early for a rerun)."""
    return any(run.status == "FINISHED_SUCCESSFULLY" for run in tab.runs)


async def open_tab(url: str, page: str = "", query: str = "", timeout: float = 120.0) -> TabResult:
    """Connect like a fresh browser tab, ask for `page`, read until a run finishes successfully."""
    result = TabResult(page)
    tab = Tab(url, name=page or "home", query_string=query)
    try:
        async with asyncio.timeout(timeout):
            await tab.connect(timeout)
            await tab.open(page)
            if not await tab.wait_for(page_has_run, timeout):
                result.error = "the connection closed before the page finished a run"
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        await tab.close()
    result.exceptions = list(tab.errors)
    result.texts = tab.texts()
    result.runs_finished = sum(1 for run in tab.runs if run.status)
    result.finished = page_has_run(tab)
    return result


def open_tabs_at_once(url: str, pages: list[str], timeout: float = 180.0) -> list[TabResult]:
    """Every page in its own tab, all connecting at the same moment."""

    async def everyone() -> list[TabResult]:
        return list(await asyncio.gather(*(open_tab(url, page, timeout=timeout) for page in pages)))

    return asyncio.run(everyone())
