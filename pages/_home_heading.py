"""Home's heading, drawn by app.py before its heavy imports.

On a fresh server the first page run imports torch (2.3 s of CPU, the most of any import), and
Streamlit sends each element as the script draws it: drawn first, the heading is on the screen
while torch loads, and the gallery follows (pages/home.py). Nothing here may import deeparch.
"""

import streamlit as st

TITLE = "deeparch: deep architectures you can open up"
INTRO = (
    "Pick an architecture: **Inspect** shows every layer, its parameter count and the code that "
    "builds it; **Train** fits it on real data while you watch the loss fall. Your running jobs "
    "stay in the sidebar on every page."
)


def home_heading() -> None:
    st.title(TITLE)
    st.write(INTRO)
