"""A tab that reads too slowly is dropped by the server, and the tab says so instead of waiting.

Streamlit (1.67, its Starlette server) queues at most 500 messages for a client; past that it
disconnects the session but leaves the websocket open, and ignores what the tab sends next. A
browser's page then stays as it was: a run shown "running" forever (issue 11's soak). The load
test's tab must report it (Tab.dropped) rather than wait out its timeout.
"""

import asyncio
import time

import pytest

from scripts.loadtest.protocol import Tab
from scripts.loadtest.server import free_port, start_server, stop_server, wait_healthy
from tests.app.browser import ARTIFACTS

# A fragment that redraws 40 elements of 20 kB every 50 ms: a tab that stops reading falls 500
# messages behind within a few seconds once the socket's buffers are full.
FLOOD_APP = """
import streamlit as st

@st.fragment(run_every=0.05)
def flood():
    count = st.session_state.setdefault("runs", 0) + 1
    st.session_state["runs"] = count
    st.metric("runs", count)
    for index in range(40):
        st.text(f"{index} " + "x" * 20_000)

flood()
"""


def test_a_tab_the_server_dropped_is_reported_as_dropped_and_stops_waiting(tmp_path):
    (tmp_path / "app.py").write_text(FLOOD_APP)
    port = free_port()
    server = start_server(tmp_path, port, ARTIFACTS / "loadtest-dropped.log")
    url = f"http://127.0.0.1:{port}"

    async def scenario():
        tab = Tab(url, name="slow")
        tab.silent_s = 3.0
        await tab.connect()
        await tab.open()
        await tab.settle(60)
        assert tab.timers  # the fragment's timer runs
        assert not tab.dropped()
        tab._ws.transport.pause_reading()  # the tab stops reading; its timer goes on sending
        await asyncio.sleep(8)
        tab._ws.transport.resume_reading()  # it reads again: the backlog, then?
        runs_seen = len(tab.runs)
        started = time.monotonic()
        ended = await tab.wait_for(lambda t: False, 120)
        waited = time.monotonic() - started
        view = tab.view()
        runs_after = len(tab.runs)
        await tab.open()  # a rerun the tab asks for (a browser's reload would open a new session)
        with pytest.raises(TimeoutError, match="dropped by the server"):
            await tab.settle(120)
        await tab.close()
        return ended, waited, view, runs_seen, runs_after

    try:
        wait_healthy(url, server)
        ended, waited, view, runs_seen, runs_after = asyncio.run(scenario())
    finally:
        stop_server(server)
    assert not ended
    assert not view["closed"]  # the websocket stayed open: nothing told the tab
    assert view["dropped"] and view["reruns_unanswered"] >= 3
    assert view["last_message_s_ago"] >= 3.0
    assert waited < 60  # it stopped waiting once dropped, long before its 120 s
    assert runs_after >= runs_seen  # the backlog arrived; nothing after it
