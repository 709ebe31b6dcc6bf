"""A canvas to draw a digit on, answered in the browser (pages/_components/drawing_pad.*).

Our own component rather than a third-party canvas with a toolbar: nothing lies over the canvas or
over the widgets above it, so a stroke may start anywhere, from the first pointer event on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

FOLDER = Path(__file__).resolve().parent / "_components"


def _read(name: str) -> str:
    return (FOLDER / name).read_text(encoding="utf-8")


_drawing_pad = st.components.v2.component(
    "deeparch_drawing_pad",
    html=_read("drawing_pad.html"),
    css=_read("drawing_pad.css"),
    js=_read("drawing_pad.js"),
)


def _nothing() -> None:
    """A state callback: the rerun it causes is what the page needs."""


def drawing_pad(key: str, side: int = 224, brush: int = 18) -> dict[str, Any] | None:
    """The canvas; returns the last drawing ({png: data URL, strokes}) or None when blank.

    The drawing goes back to the component as its start, so a student who comes back from
    another page finds the canvas as they left it.
    """
    held = (st.session_state.get(key) or {}).get("drawing")
    _drawing_pad(
        data={"side": int(side), "brush": int(brush), "start": held},
        key=key,
        on_drawing_change=_nothing,
    )
    drawing = (st.session_state.get(key) or {}).get("drawing")
    if not isinstance(drawing, dict) or not drawing.get("png"):
        return None
    return drawing
