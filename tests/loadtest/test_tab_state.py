"""The tab's page model fed ForwardMsgs by hand: what it keeps, drops and polls, as the frontend."""

import asyncio

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from scripts.loadtest.protocol import Tab

LIVE, SIDEBAR = "fragment-live", "fragment-sidebar"


def new_session(run_id: str, fragments=(), page_hash="train-hash") -> ForwardMsg:
    msg = ForwardMsg()
    msg.new_session.page_script_hash = page_hash
    msg.metadata.run.script_run_id = run_id
    msg.metadata.run.fragment_ids.extend(fragments)
    return msg


def number_box(path, key, value, set_value=False, fragment="") -> ForwardMsg:
    msg = ForwardMsg()
    msg.metadata.delta_path.extend(path)
    box = msg.delta.new_element.number_input
    box.id, box.value, box.set_value = f"$$ID-0-{key}", value, set_value
    msg.delta.fragment_id = fragment
    return msg


def text(path, body, fragment="") -> ForwardMsg:
    msg = ForwardMsg()
    msg.metadata.delta_path.extend(path)
    msg.delta.new_element.markdown.body = body
    msg.delta.fragment_id = fragment
    return msg


def finished(status="FINISHED_SUCCESSFULLY") -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = ForwardMsg.ScriptFinishedStatus.Value(status)
    return msg


def auto_rerun(fragment: str) -> ForwardMsg:
    msg = ForwardMsg()
    msg.auto_rerun.interval, msg.auto_rerun.fragment_id = 60.0, fragment
    return msg


def feed(tab: Tab, *messages: ForwardMsg) -> None:
    for msg in messages:
        tab._handle(msg)


def epochs(tab: Tab) -> int:
    return tab.widgets["$$ID-0-epochs"].int_value


def test_a_full_run_drops_what_it_did_not_draw_and_a_fragment_run_only_within_it():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        feed(tab, new_session("r1"), text([0, 0], "title"), text([0, 1], "old", LIVE),
             text([1, 0], "sidebar", SIDEBAR), finished())  # fmt: skip
        feed(tab, new_session("r2", [LIVE]), text([0, 2], "new", LIVE),
             finished("FINISHED_FRAGMENT_RUN_SUCCESSFULLY"))  # fmt: skip
        after_fragment = sorted(tab.elements)
        feed(tab, new_session("r3"), text([0, 0], "title"), finished())
        return after_fragment, sorted(tab.elements)

    after_fragment, after_full = asyncio.run(scenario())
    assert after_fragment == [(0, 0), (0, 2), (1, 0)]  # the fragment's old text went, no other
    assert after_full == [(0, 0)]


def test_a_run_ended_early_for_a_rerun_drops_nothing_and_the_tab_waits_for_the_next():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        feed(tab, new_session("r1"), text([0, 0], "a"), text([0, 1], "b"), finished())
        tab._action_index = len(tab.runs)  # the student pressed something after r1
        waiting = tab.idle()
        feed(tab, new_session("r2"), text([0, 0], "a"), finished("FINISHED_EARLY_FOR_RERUN"))
        after_early = tab.idle(), sorted(tab.elements)
        feed(tab, new_session("r3"), text([0, 0], "a"), finished())
        return waiting, after_early, tab.idle()

    waiting, (idle_after_early, elements), idle_at_end = asyncio.run(scenario())
    assert waiting is False and idle_after_early is False and idle_at_end is True
    assert elements == [(0, 0), (0, 1)]


def test_a_widget_keeps_the_students_value_until_the_server_sets_one():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        feed(tab, new_session("r1"), number_box([0, 0], "epochs", 10), finished())
        first = epochs(tab)
        tab.widgets["$$ID-0-epochs"].int_value = 3  # typed by the student
        feed(tab, new_session("r2"), number_box([0, 0], "epochs", 10), finished())
        kept = epochs(tab)
        feed(tab, new_session("r3"), number_box([0, 0], "epochs", 7, set_value=True), finished())
        return first, kept, epochs(tab)

    first, kept, set_by_server = asyncio.run(scenario())
    assert (first, kept, set_by_server) == (0, 3, 7)  # unset: the default (0 here)


def test_a_widget_gone_after_a_full_run_is_forgotten():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        feed(tab, new_session("r1"), number_box([0, 0], "epochs", 10, True), finished())
        before = set(tab.widgets)
        feed(tab, new_session("r2"), text([0, 0], "no widget"), finished())
        return before, set(tab.widgets)

    before, after = asyncio.run(scenario())
    assert before == {"$$ID-0-epochs"} and after == set()


def test_timers_start_on_auto_rerun_and_a_full_run_cancels_them():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        feed(tab, new_session("r1"), auto_rerun(LIVE), auto_rerun(SIDEBAR), finished())
        both = tab.timers
        feed(tab, new_session("r2", [LIVE]))  # a fragment run keeps them
        during_fragment = tab.timers
        stop = ForwardMsg()
        stop.stop_auto_rerun.fragment_ids.append(SIDEBAR)
        feed(tab, stop)
        after_stop = tab.timers
        feed(tab, finished("FINISHED_FRAGMENT_RUN_SUCCESSFULLY"), new_session("r3"))
        after_full = tab.timers
        await tab.close()
        return both, during_fragment, after_stop, after_full, tab.timed_fragments

    both, during, after_stop, after_full, timed = asyncio.run(scenario())
    assert both == during == sorted([LIVE, SIDEBAR])
    assert after_stop == [LIVE]
    assert after_full == []
    assert timed == {LIVE, SIDEBAR}


def test_an_exception_element_is_an_error_page():
    async def scenario():
        tab = Tab("http://127.0.0.1:1")
        msg = ForwardMsg()
        msg.metadata.delta_path.extend([0, 0])
        msg.delta.new_element.exception.message = "This app has encountered an error."
        feed(tab, new_session("r1"), msg, finished())
        return tab

    tab = asyncio.run(scenario())
    assert tab.error_page and tab.errors == ["This app has encountered an error."]
