"""The explore pages' time slider follows the newest snapshot until the student moves it, and a
browser's late echo of the value it showed before a new snapshot is not a move."""

from streamlit.testing.v1 import AppTest

KEY = "t"


def slider_script():
    import streamlit as st

    from pages._explore_common import time_slider

    st.write(time_slider(st.session_state["steps"], "t"))


def run_with_label(at: AppTest, label: str) -> None:
    """A rerun whose widget states say the slider shows `label` (what a browser sends)."""
    states = at._tree.get_widget_states()
    slider_id = at.select_slider(key=KEY).id
    for state in states.widgets:
        if state.id == slider_id:
            state.string_array_value.data[:] = [label]
    at._run(widget_state=states)


def test_a_late_echo_of_the_old_newest_step_keeps_following_and_a_move_stops_it():
    at = AppTest.from_function(slider_script, default_timeout=60)
    at.session_state["steps"] = [5, 10]
    at.run()
    assert at.select_slider(key=KEY).value == 10
    shown_before = at.select_slider(key=KEY).options[-1]  # the label a slow browser still shows
    at.session_state["steps"] = [5, 10, 15]  # a new snapshot: the slider follows
    at.run()
    assert at.select_slider(key=KEY).value == 15
    run_with_label(at, shown_before)  # the browser answers from its view before that snapshot
    assert not at.exception
    assert at.session_state[f"{KEY}_follow"] is True
    assert at.select_slider(key=KEY).value == 15
    at.session_state["steps"] = [5, 10, 15, 20]
    at.run()
    assert at.select_slider(key=KEY).value == 20  # still following

    at.select_slider(key=KEY).set_value(10).run()  # the student scrolls back
    assert at.session_state[f"{KEY}_follow"] is False
    at.session_state["steps"] = [5, 10, 15, 20, 25]
    at.run()
    assert at.select_slider(key=KEY).value == 10  # stays where the student scrolled to
    run_with_label(at, at.select_slider(key=KEY).options[-1])  # drags to the right end
    assert at.session_state[f"{KEY}_follow"] is True
    assert at.select_slider(key=KEY).value == 25
