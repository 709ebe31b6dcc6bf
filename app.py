"""deeparch's Streamlit entry point: the page router and the job sidebar shown on every page."""

import os

# Training shares this process with the page threads, and the CPU with the browser, so one core is
# left to them (deeparch.engine.threads.threads_beside_a_browser has the measurement). Idle
# OpenMP workers sleep rather than spin. A thread count the user set in OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402  (after the environment is set)

from deeparch.errors import ConfigError  # noqa: E402
from deeparch.figures.text import escape_markdown  # noqa: E402
from deeparch.settings import load_settings  # noqa: E402

st.set_page_config(page_title="deeparch", page_icon=":material/hub:", layout="wide")


@st.cache_resource(show_spinner=False)
def class_settings():
    """The class settings, read once for the server (deeparch.settings; README: Classroom)."""
    return load_settings()


try:
    settings = class_settings()
except ConfigError as error:  # one clear message on every page, instead of every page failing
    message = escape_markdown(str(error))
    st.error(f"The server's class settings are invalid: {message}. Fix it and restart the server.")
    st.stop()

home = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)
sections = {
    "Learn": [
        home,
        st.Page("pages/inspect.py", title="Inspect", icon=":material/search:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/lessons.py", title="Lessons", icon=":material/school:"),
    ],
    "Explore": [
        st.Page("pages/features.py", title="Feature maps", icon=":material/grid_view:"),
        st.Page("pages/latent.py", title="Latent space", icon=":material/scatter_plot:"),
        st.Page("pages/gan_studio.py", title="GAN studio", icon=":material/palette:"),
        st.Page("pages/sequences.py", title="Sequences", icon=":material/timeline:"),
        st.Page("pages/autoencoders.py", title="Autoencoders", icon=":material/compress:"),
        st.Page("pages/forecast.py", title="Forecasting", icon=":material/show_chart:"),
        st.Page("pages/language.py", title="Language model", icon=":material/edit_note:"),
        st.Page("pages/transduction.py", title="Encoder-decoder", icon=":material/swap_horiz:"),
        st.Page("pages/names.py", title="Surnames", icon=":material/badge:"),
        st.Page("pages/words.py", title="Word embeddings", icon=":material/hub:"),
    ],
}
if settings.teacher_password:  # the Teacher page exists only where the class settings set one
    sections["Class"] = [
        st.Page("pages/teacher.py", title="Teacher", icon=":material/school:"),
    ]
# The menu before the heavy imports: until a run reaches st.navigation, Streamlit lists every file
# of pages/ (helper modules included) in the sidebar, and torch takes seconds to import on a
# fresh server.
page = st.navigation(sections)

from pages._home_heading import home_heading  # noqa: E402  (after st.navigation: pages/__init__.py)

if page is home:
    home_heading()  # Home's first paint, before the seconds of torch's import below

# pandas whole before any page builds a figure: plotly peeks at sys.modules["pandas"] without
# importing it, so while one tab's thread is importing pandas (Inspect's table) another tab's
# figure found the half-initialised module ("partially initialized module 'pandas' has no
# attribute 'Series'": 17 of 30 tabs in one of ten cold starts of the load test). An import
# statement here makes every session's run wait for the one import instead.
import pandas  # noqa: E402, F401
import torch  # noqa: E402

from deeparch.engine.threads import threads_beside_a_browser  # noqa: E402
from deeparch.warmup import start_warm_up  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(threads_beside_a_browser())

from pages._shared import (  # noqa: E402
    job_sidebar,
    restore_kept,
    restore_session,
    write_owner_cookie,
)

restore_session()
restore_kept()
with st.sidebar:
    job_sidebar()
    write_owner_cookie()  # last: its empty element shifts nothing the student reads
try:
    page.run()
finally:
    # Once per server, after its first page was sent (also when that page reran or switched):
    # what the first Start and the first Inspect tab would wait for (deeparch.warmup).
    start_warm_up()
