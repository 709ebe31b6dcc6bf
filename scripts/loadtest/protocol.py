"""One browser tab at the protocol level: Streamlit's websocket, BackMsg out, ForwardMsg in.

What the Streamlit frontend does, and this tab copies (checked against Chromium by
tests/loadtest/test_browser_parity.py):
- it connects to `/_stcore/stream` offering the subprotocol "streamlit" (the second and third
  entries would carry an XSRF token and a session id to resume; a fresh tab sends neither);
- a run is a `rerun_script` BackMsg carrying the page (its script hash, empty for the default
  page), the query string, and every widget value the tab holds; a button press is the button's
  id with `trigger_value` true, sent once;
- a widget's value comes from its element (`value`/`raw_value` when the server set one, else the
  default); a user's change stays until the server sets another or the widget disappears after
  a complete run; switching pages forgets them all;
- `auto_rerun` (a fragment's `run_every`) starts a timer the tab keeps, each tick a fragment
  rerun with `is_auto_rerun`; a complete run (its `new_session` names no fragment) cancels them,
  and `stop_auto_rerun` cancels the named ones.
Cached-message hashes are never sent, so the server always sends whole elements.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.WidgetStates_pb2 import WidgetState

STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"
# Elements whose value the frontend keeps as widget state; buttons only ever send triggers.
VALUE_WIDGETS = (
    "selectbox",
    "text_input",
    "text_area",
    "number_input",
    "checkbox",
    "slider",
    "radio",
    "multiselect",
    "file_uploader",
)
TRIGGER_WIDGETS = ("button", "download_button")
# The generic text Streamlit shows instead of a traceback (client.showErrorDetails = "none").
ERROR_PAGE_TEXT = "This app has encountered an error"
TRACE_KEPT = 60  # messages a tab remembers for its report, both ways
UNANSWERED_RERUNS = 3  # reruns sent in silence before a tab counts as dropped (Tab.dropped)


def widget_state_from_element(element: Element) -> WidgetState | None:
    """The WidgetState the frontend holds for a widget element when it first shows it."""
    kind = element.WhichOneof("type")
    if kind not in VALUE_WIDGETS:
        return None
    proto = getattr(element, kind)
    state = WidgetState(id=proto.id)
    if kind == "selectbox" or kind == "radio":
        if proto.set_value:
            state.string_value = proto.raw_value
        elif proto.options and proto.HasField("default"):
            state.string_value = proto.options[proto.default]
        else:
            return None
    elif kind in ("text_input", "text_area"):
        state.string_value = proto.value if proto.set_value else proto.default
    elif kind == "number_input":
        value = proto.value if proto.set_value else proto.default
        if proto.data_type == NumberInput.INT:
            state.int_value = int(value)
        else:
            state.double_value = float(value)
    elif kind == "checkbox":
        state.bool_value = proto.value if proto.set_value else proto.default
    elif kind == "slider":
        state.double_array_value.data.extend(
            list(proto.value if proto.set_value else proto.default)
        )
    elif kind == "multiselect":
        if proto.set_value:
            state.string_array_value.data.extend(proto.raw_values)
        else:
            state.string_array_value.data.extend(proto.options[i] for i in proto.default)
    elif kind == "file_uploader":
        state.file_uploader_state_value.SetInParent()
    return state


def user_key(widget_id: str) -> str:
    """The key= a page gave a widget: Streamlit's ids read "$$ID-<hash>-<key>"."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "$$ID" else widget_id


def plotly_points(spec_json: str) -> int:
    """Points in all traces of a plotly chart's JSON (numpy arrays arrive base64-encoded)."""
    spec = json.loads(spec_json)
    total = 0
    for trace in spec.get("data", []):
        xs = trace.get("x")
        if isinstance(xs, dict) and "bdata" in xs:
            size = int(xs.get("dtype", "f8")[1:] or 8)
            total += len(base64.b64decode(xs["bdata"])) // size
        elif isinstance(xs, list):
            total += len(xs)
    return total


@dataclass
class RunRecord:
    """One script run as the tab saw it."""

    run_id: str
    fragment_ids: tuple[str, ...]
    started: float
    finished: float | None = None
    status: str = ""


@dataclass
class Tab:
    """A browser tab: connect(), open a page, set widgets, click buttons, watch the page.

    Everything is read from the ForwardMsgs: `elements` is the page as drawn (delta path ->
    element), `widgets` the values the tab would send. `on_change` is called after every message
    that changed the page, so a watcher can time what a student would see.
    """

    url: str
    name: str = "tab"
    timezone: str = "UTC"
    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)
    widgets: dict[str, WidgetState] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)  # url path name -> page script hash
    page_hash: str = ""
    query_string: str = ""
    errors: list[str] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    sent: list[BackMsg] = field(default_factory=list)
    session_id: str = ""
    timed_fragments: set[str] = field(default_factory=set)  # every fragment given a timer
    closed: bool = False
    # Longer than any run keeps a tab waiting (a submit waits up to 120 s for a Ray worker)
    silent_s: float = 180.0
    on_change: Callable[[Tab], None] | None = None

    def __post_init__(self) -> None:
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._timers: dict[str, asyncio.Task] = {}
        self._written: dict[tuple[int, ...], str] = {}  # delta path -> run id that wrote it
        self._fragment_of: dict[tuple[int, ...], str] = {}
        self._run: RunRecord | None = None
        self._run_index: dict[str, int] = {}  # script run id -> its place in self.runs
        self._action_index = 0  # the first run that can answer the student's last action
        self._changed = asyncio.Event()
        # The last messages both ways, (seconds since connect, direction, what): a report of a
        # stuck tab shows them (TRACE_KEPT)
        self._trace: collections.deque = collections.deque(maxlen=TRACE_KEPT)
        self._connected_at = time.monotonic()
        self._points: dict[tuple[int, ...], int] = {}  # a chart's points, counted once per delta
        self.last_received = time.monotonic()
        self.unanswered = 0  # reruns sent since the server's last message

    # ---------------------------------------------------------------- connection
    async def connect(self, timeout: float = 60.0) -> None:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        origin = f"{parts.scheme}://{parts.netloc}"
        self._ws = await websockets.connect(
            f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{STREAM_PATH}",
            subprotocols=[SUBPROTOCOL],
            origin=origin,
            max_size=None,
            open_timeout=timeout,
            ping_interval=None,  # the browser sends no websocket pings either
            compression=None,
        )
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    async def close(self) -> None:
        """Close the tab: the websocket goes, as when a student closes the browser tab."""
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def __aenter__(self) -> Tab:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---------------------------------------------------------------- sending
    def _context_url(self) -> str:
        parts = urlsplit(self.url)
        path = next((name for name, h in self.pages.items() if h == self.page_hash), "")
        return f"{parts.scheme}://{parts.netloc}/{path}"

    async def _send_rerun(
        self,
        triggers: tuple[str, ...] = (),
        fragment_id: str = "",
        auto: bool = False,
        page_name: str = "",
    ) -> None:
        """One rerun_script BackMsg; unless it is a timer's, settle() waits for its answer."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_hash
        if page_name:
            state.page_name = page_name
        if fragment_id:
            state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        for widget in self.widgets.values():
            state.widget_states.widgets.append(widget)
        for widget_id in triggers:
            state.widget_states.widgets.append(WidgetState(id=widget_id, trigger_value=True))
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale = self.timezone, 0, "en-US"
        info.url, info.is_embedded, info.color_scheme = self._context_url(), False, "light"
        self.sent.append(msg)
        pressed = ",".join(map(user_key, triggers))
        scope = f" of {fragment_id[:8]}" if fragment_id else ""
        self._note(
            "sent",
            f"rerun{scope}{' (timer)' if auto else ''}{' pressing ' * bool(pressed)}{pressed}",
        )
        self.unanswered += 1
        if not auto:
            self._action_index = len(self.runs)
        await self._ws.send(msg.SerializeToString())

    async def open(self, page: str = "") -> None:
        """A fresh tab's first run: the default page, or a URL path such as "train"."""
        await self._send_rerun(page_name=page)

    async def goto(self, title_or_path: str) -> None:
        """Click a page in the sidebar menu: its script hash, no widget values."""
        key = title_or_path.lower()
        page_hash = self.pages.get(key)
        if page_hash is None:
            raise LookupError(f"no page {title_or_path!r} in the menu ({sorted(self.pages)})")
        self.page_hash = page_hash
        self.widgets.clear()
        self.query_string = ""
        self._cancel_timers()
        await self._send_rerun()

    def widget_id(self, key: str) -> str:
        """The id of the widget (or button) on the page with this key=."""
        for element in self.elements.values():
            kind = element.WhichOneof("type")
            if kind in VALUE_WIDGETS + TRIGGER_WIDGETS:
                widget_id = getattr(element, kind).id
                if user_key(widget_id) == key:
                    return widget_id
        raise LookupError(f"no widget with key {key!r} on the page")

    async def set_widget(self, key: str, value) -> None:
        """Change a widget as a student would (type and leave the box): a rerun follows."""
        widget_id = self.widget_id(key)
        state = self.widgets[widget_id]
        kind = state.WhichOneof("value")
        if kind == "int_value":
            state.int_value = int(value)
        elif kind == "double_value":
            state.double_value = float(value)
        elif kind == "bool_value":
            state.bool_value = bool(value)
        elif kind == "string_value":
            state.string_value = str(value)
        else:
            raise TypeError(f"widget {key!r} holds a {kind}; set_widget takes scalars only")
        await self._send_rerun()

    async def click(self, key: str) -> None:
        """Press a button: its id with trigger_value true, in a full run (or its fragment's)."""
        widget_id = self.widget_id(key)
        fragment = next(
            (
                self._fragment_of.get(path, "")
                for path, element in self.elements.items()
                if getattr(element, element.WhichOneof("type") or "", None) is not None
                and getattr(getattr(element, element.WhichOneof("type")), "id", "") == widget_id
            ),
            "",
        )
        await self._send_rerun(triggers=(widget_id,), fragment_id=fragment)

    # ---------------------------------------------------------------- receiving
    async def _read(self) -> None:
        try:
            async for data in self._ws:
                if isinstance(data, str):
                    continue
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._handle(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._changed.set()

    def _note(self, direction: str, what: str) -> None:
        self._trace.append((round(time.monotonic() - self._connected_at, 3), direction, what))

    def _note_received(self, msg: ForwardMsg, kind: str) -> None:
        if kind == "new_session":
            run = msg.metadata.run
            fragments = ",".join(f[:8] for f in run.fragment_ids)
            self._note("got", f"new_session {run.script_run_id[:8]} {fragments or 'full'}")
        elif kind == "auto_rerun":
            self._note(
                "got",
                f"auto_rerun {msg.auto_rerun.fragment_id[:8]} every {msg.auto_rerun.interval:g} s",
            )
        elif kind == "stop_auto_rerun":
            self._note(
                "got",
                f"stop_auto_rerun {','.join(f[:8] for f in msg.stop_auto_rerun.fragment_ids)}",
            )
        elif kind == "script_finished":
            self._note("got", ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished))
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "metric" and element.metric.label == "state":
                self._note("got", f"state {element.metric.body}")

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        now = time.monotonic()
        self.last_received, self.unanswered = now, 0
        self._note_received(msg, kind)
        if kind == "new_session":
            run = msg.metadata.run
            self._run = RunRecord(run.script_run_id, tuple(run.fragment_ids), now)
            self._run_index[run.script_run_id] = len(self.runs)
            self.runs.append(self._run)
            session = msg.new_session
            self.session_id = session.initialize.session_id or self.session_id
            if session.page_script_hash:
                self.page_hash = session.page_script_hash
            if not run.fragment_ids:
                self._cancel_timers()
        elif kind == "navigation":
            for page in msg.navigation.app_pages:
                self.pages[page.url_pathname.lower() or page.page_name.lower()] = (
                    page.page_script_hash
                )
                self.pages[page.page_name.lower()] = page.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            self._start_timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                timer = self._timers.pop(fragment_id, None)
                if timer is not None:
                    timer.cancel()
        elif kind == "delta":
            self._apply_delta(msg)
        elif kind == "session_event" and msg.session_event.HasField(
            "script_compilation_exception"
        ):  # a page that does not even compile: the browser shows it as an error page too
            error = msg.session_event.script_compilation_exception
            self.errors.append(error.message or error.type)
        elif kind == "script_finished":
            self._finish(ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished), now)
        if kind in ("delta", "script_finished") and self.on_change is not None:
            self.on_change(self)
        self._changed.set()

    def _apply_delta(self, msg: ForwardMsg) -> None:
        delta = msg.delta
        path = tuple(msg.metadata.delta_path)
        run_id = self._run.run_id if self._run else ""
        if delta.WhichOneof("type") == "new_element":
            element = delta.new_element
            self.elements[path] = element
            self._points.pop(path, None)
            self._written[path] = run_id
            self._fragment_of[path] = delta.fragment_id
            if element.WhichOneof("type") == "exception":
                self.errors.append(element.exception.message or element.exception.type)
            state = widget_state_from_element(element)
            if state is not None:
                widget = getattr(element, element.WhichOneof("type"))
                if state.id not in self.widgets or getattr(widget, "set_value", False):
                    self.widgets[state.id] = state
        else:  # a block: what was drawn under it before is redrawn in this run or goes
            self._written[path] = run_id
            self._fragment_of[path] = delta.fragment_id

    def _finish(self, status: str, now: float) -> None:
        run = self._run
        if run is not None:
            run.finished, run.status = now, status
            if status in ("FINISHED_SUCCESSFULLY", "FINISHED_FRAGMENT_RUN_SUCCESSFULLY"):
                self._drop_stale(run)

    def _drop_stale(self, run: RunRecord) -> None:
        """After a complete run what it did not draw is gone (after a fragment run, within it)."""
        fragments = set(run.fragment_ids)
        for path in list(self.elements):
            if self._written.get(path) == run.run_id:
                continue
            if fragments and self._fragment_of.get(path) not in fragments:
                continue
            del self.elements[path]
        present = {
            getattr(e, e.WhichOneof("type")).id
            for e in self.elements.values()
            if e.WhichOneof("type") in VALUE_WIDGETS
        }
        for widget_id in list(self.widgets):
            if widget_id not in present:
                del self.widgets[widget_id]

    # ---------------------------------------------------------------- timers
    def _start_timer(self, fragment_id: str, interval: float) -> None:
        self.timed_fragments.add(fragment_id)
        old = self._timers.pop(fragment_id, None)
        if old is not None:
            old.cancel()
        self._timers[fragment_id] = asyncio.create_task(
            self._tick(fragment_id, max(0.05, float(interval))), name=f"{self.name}-timer"
        )

    async def _tick(self, fragment_id: str, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            try:
                await self._send_rerun(fragment_id=fragment_id, auto=True)
            except websockets.ConnectionClosed:
                pass
            except Exception as error:
                self._note("timer", f"{fragment_id[:8]} died: {error!r}")
                raise

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    @property
    def timers(self) -> list[str]:
        return sorted(self._timers)

    # ---------------------------------------------------------------- waiting and reading
    def idle(self) -> bool:
        """A run begun after the student's last action has finished, and not early for a rerun
        (st.rerun(): the server starts the next run itself); timers' runs may go on."""
        answers = self.runs[self._action_index :]
        done = any(r.status not in ("", "FINISHED_EARLY_FOR_RERUN") for r in answers)
        return self.closed or done

    def view(self) -> dict:
        """What the tab holds now, for a report to say why a wait never ended."""
        return {
            "state": self.metric("state"),
            "texts": self.texts()[:6],
            "timers": self.timers,
            "closed": self.closed,
            # A server that dropped the session (its send queue full: a client too slow) keeps
            # the websocket open and ignores what the tab sends: reruns go unanswered.
            "last_message_s_ago": round(time.monotonic() - self.last_received, 1),
            "reruns_unanswered": self.unanswered,
            "dropped": self.dropped(),
            "last_runs": [
                {
                    "fragments": list(r.fragment_ids),
                    "status": r.status,
                    "seconds_ago": round(time.monotonic() - r.started, 1),
                }
                for r in self.runs[-4:]
            ],
            "messages": [list(entry) for entry in self._trace],
        }

    def run_count(self) -> int:
        """Runs begun so far: pass it as `since` to look only at what later runs drew."""
        return len(self.runs)

    def _drawn_since(self, path: tuple[int, ...], since: int) -> bool:
        return self._run_index.get(self._written.get(path, ""), -1) >= since

    async def settle(self, timeout: float = 120.0) -> None:
        """Wait until the run in progress (and any rerun it asked for) has finished."""
        if not await self.wait_for(Tab.idle, timeout):
            if self.dropped():
                raise TimeoutError(
                    f"{self.name}: the server stopped answering this tab ({self.unanswered} "
                    f"reruns unanswered for {self.silent_s:g} s or more: dropped by the server)"
                )
            raise TimeoutError(f"{self.name}: the page did not finish in {timeout} s")

    async def wait_for(self, predicate: Callable[[Tab], bool], timeout: float) -> bool:
        """Wait until predicate(tab) holds (checked after every message); False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed or self.dropped():
                return predicate(self)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, self.silent_s / 4))
        return True

    def dropped(self) -> bool:
        """Whether the server has stopped answering this tab: reruns sent, nothing received for
        silent_s. Streamlit drops a session whose client reads too slowly (500 messages waiting
        to be sent) but leaves its websocket open: a browser's page then stays as it was."""
        silence = time.monotonic() - self.last_received
        return self.unanswered >= UNANSWERED_RERUNS and silence >= self.silent_s

    def find(self, kind: str, since: int = 0) -> list[Element]:
        """The page's elements of one type (in page order), drawn by run `since` or later."""
        return [
            self.elements[p]
            for p in sorted(self.elements)
            if self.elements[p].WhichOneof("type") == kind and self._drawn_since(p, since)
        ]

    def metric(self, label: str, since: int = 0) -> str | None:
        for element in self.find("metric", since):
            if element.metric.label == label:
                return element.metric.body
        return None

    def texts(self, since: int = 0) -> list[str]:
        """Every markdown, alert, heading and progress text on the page, in page order."""
        out = []
        for path in sorted(self.elements):
            element, kind = self.elements[path], self.elements[path].WhichOneof("type")
            if not self._drawn_since(path, since):
                continue
            if kind in ("markdown", "alert", "heading"):
                out.append(getattr(element, kind).body)
            elif kind == "progress":
                out.append(element.progress.text)
        return out

    def chart_points(self, key: str, since: int = 0) -> int:
        """Points on the plotly chart with this key= (-1: none on the page, or an older one)."""
        for path in sorted(self.elements):
            element = self.elements[path]
            if element.WhichOneof("type") != "plotly_chart" or not self._drawn_since(path, since):
                continue
            if user_key(element.plotly_chart.id) == key:
                if path not in self._points:  # a spec is tens of kB of JSON: parse it once
                    self._points[path] = plotly_points(element.plotly_chart.spec)
                return self._points[path]
        return -1

    @property
    def error_page(self) -> bool:
        return bool(self.errors)
