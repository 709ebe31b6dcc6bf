"""A browser tab at the protocol level: what the Streamlit frontend sends and receives.

The frontend speaks protobuf over the websocket at /_stcore/stream: it sends a BackMsg whose
rerun_script ClientState names the page (the URL's path) and the query string, and receives
ForwardMsgs until script_finished. An uncaught exception in a script arrives as an element of type
"exception": what the browser shows as "This app has encountered an error". Tests use it where
thirty Chromium tabs would not fit on the machine (a cold start opened by a whole class at once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

# ForwardMsg.script_finished values (streamlit/proto/ForwardMsg.proto: ScriptFinishedStatus).
FINISHED_SUCCESSFULLY = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY


@dataclass
class TabResult:
    """What one tab saw of one page load."""

    page: str
    exceptions: list[str] = field(default_factory=list)  # "ImportError: cannot import ..."
    texts: list[str] = field(default_factory=list)  # the Markdown the run wrote
    runs_finished: int = 0  # script runs that ended (a router's rerun ends one early)
    finished: bool = False  # a run ended successfully
    error: str = ""  # the connection failed or timed out


async def open_tab(url: str, page: str = "", query: str = "", timeout: float = 120.0) -> TabResult:
    """Connect like a fresh browser tab, ask for `page`, read until a run finishes successfully."""
    result = TabResult(page)
    ws_url = url.replace("http://", "ws://", 1) + "/_stcore/stream"
    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(
                ws_url, subprotocols=["streamlit"], origin=url, max_size=None
            ) as socket:
                message = BackMsg()
                message.rerun_script.page_name = page
                message.rerun_script.query_string = query
                await socket.send(message.SerializeToString())
                async for data in socket:
                    if isinstance(data, str):
                        continue
                    forward = ForwardMsg()
                    forward.ParseFromString(data)
                    kind = forward.WhichOneof("type")
                    if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                        element = forward.delta.new_element
                        if element.WhichOneof("type") == "markdown":
                            result.texts.append(element.markdown.body)
                        if element.WhichOneof("type") == "exception":
                            error = element.exception
                            result.exceptions.append(f"{error.type}: {error.message}")
                    elif kind == "session_event" and forward.session_event.HasField(
                        "script_compilation_exception"
                    ):
                        error = forward.session_event.script_compilation_exception
                        result.exceptions.append(f"{error.type}: {error.message}")
                    elif kind == "script_finished":
                        result.runs_finished += 1
                        if forward.script_finished == FINISHED_SUCCESSFULLY:
                            result.finished = True
                            return result
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        result.error = f"{type(error).__name__}: {error}"
    return result


def open_tabs_at_once(url: str, pages: list[str], timeout: float = 180.0) -> list[TabResult]:
    """Every page in its own tab, all connecting at the same moment."""

    async def everyone() -> list[TabResult]:
        return list(await asyncio.gather(*(open_tab(url, page, timeout=timeout) for page in pages)))

    return asyncio.run(everyone())
