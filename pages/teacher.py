"""Teacher: every session's jobs with Stop on any, the class's runs side by side, the settings in
force, and the server's memory and cores. Listed only when the class settings set a password,
shown only once it is entered."""

import hmac

import pandas as pd
import streamlit as st

from deeparch.engine import classroom
from deeparch.engine.manager import TEACHER
from deeparch.errors import DeeparchError
from deeparch.figures import training as viz
from deeparch.figures.text import escape_markdown
from deeparch.settings import load_settings
from pages._shared import keep_fitting, manager

TEACHER_KEY = "deeparch_teacher"
STOP_ERROR_KEY = "teacher_stop_error"
REFRESH_S = 3.0

settings = load_settings()
st.title("Teacher")
if not settings.teacher_password:
    st.info("No teacher password is set for this class (DEEPARCH_TEACHER_PASSWORD).")
    st.stop()
if not st.session_state.get(TEACHER_KEY):
    with st.form("teacher_login"):
        entered = st.text_input("password", type="password", key="teacher_password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        # Compared in constant time: how long a wrong guess takes tells nothing about the right one.
        if hmac.compare_digest(entered.encode(), settings.teacher_password.encode()):
            st.session_state[TEACHER_KEY] = True
            st.rerun()
        st.error("That is not the teacher's password.")
    st.stop()


def stop_job(job_id: str) -> None:
    try:
        manager().stop(job_id, TEACHER)
    except DeeparchError as error:  # it ended and left memory since the table was drawn
        st.session_state[STOP_ERROR_KEY] = str(error)


def live_panel() -> None:
    # The header line, the job table and the server's use in one fragment: they refresh together,
    # so the counts over the table always describe the table under them.
    rows = classroom.job_rows(manager())
    usage = classroom.server_usage(manager())
    st.markdown(f"**{escape_markdown(classroom.header_line(rows, usage))}**")
    st.subheader("Running and queued jobs")
    stop_error = st.session_state.pop(STOP_ERROR_KEY, None)
    if stop_error:
        st.error(escape_markdown(stop_error))
    if rows:
        st.dataframe(pd.DataFrame(rows).set_index("id"), width="stretch")
        labels = {
            f"{row['student']} · {row['architecture']} · {row['id'][-6:]}": row for row in rows
        }
        pick_col, stop_col = st.columns([4, 1])
        chosen = pick_col.selectbox(
            "job", list(labels), key=keep_fitting("teacher_stop_pick", lambda pick: pick in labels)
        )
        # The id goes with the button as drawn: were it read from the picker on the rerun the
        # click causes, a chosen job that left the table meanwhile would make Stop hit the first
        # one listed instead.
        stop_col.button(
            "Stop", key="teacher_stop", width="stretch", type="primary",
            on_click=stop_job, args=(labels[chosen]["id"],),
        )  # fmt: skip
    else:
        st.caption("No job is running or waiting.")
    with st.expander("The server's memory and cores"):
        st.dataframe(pd.Series(usage, name="now").astype(str), width="stretch")


st.fragment(live_panel, run_every=REFRESH_S)()

st.subheader("The class's runs, side by side")
groups = classroom.class_runs(manager())
if not groups:
    st.caption("No run has trained a step yet.")
else:
    # Picked by configuration, not by its label: the run count in the label grows.
    chosen = st.selectbox(
        "configuration",
        list(groups),
        format_func=lambda key: f"{len(groups[key])} run(s): {key}",
        key=keep_fitting("teacher_group", lambda key: key in groups),
    )
    runs = groups[chosen]
    curves = {
        f"{snap.get('label') or 'student'} · {str(snap.get('id'))[-6:]}": snap.get("losses", {})
        for snap in runs
    }
    st.plotly_chart(viz.compare_figure(curves, "loss"), key="teacher_compare_chart")
    table = {
        label: {
            "state": snap.get("state"),
            "steps": snap.get("step"),
            **{k: v for k, v in (snap.get("final_metrics") or {}).items() if k != "step"},
        }
        for label, snap in zip(curves, runs, strict=True)
    }
    st.dataframe(pd.DataFrame(table).astype(str), width="stretch")

st.caption(escape_markdown(f"{len(groups)} configuration(s) trained so far."))
st.subheader("Settings in force")
shown = {name: str(value) for name, value in settings.to_dict().items()}
st.dataframe(pd.Series(shown, name="value"), width="stretch")
