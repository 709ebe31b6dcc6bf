"""Browser components (st.components.v2): views that answer every pointer move without a rerun.

Each component is an HTML, a CSS and a JS file in this folder, registered once per process. The
server sends what a view needs to answer every move locally (a decode grid, a decoder's weights,
a layer's cell links), computed in deeparch; the component repaints in the browser and tells
Python only what a later view needs. Every page keeps its server-drawn path as the fallback (and
for AppTest, which does not run JavaScript), behind a toggle whose key this module names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

HERE = Path(__file__).resolve().parent
COMMON_JS = "common.js"  # helpers (unpacking a payload, drawing images), prepended where used


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def _register(name: str, common: bool) -> Any:
    js = _read(f"{name}.js")
    if common:
        js = _read(COMMON_JS) + "\n" + js
    return st.components.v2.component(
        f"deeparch_{name}", html=_read(f"{name}.html"), css=_read(f"{name}.css"), js=js
    )


_conv_window = _register("conv_window", common=False)


def instant_toggle(key: str, what: str) -> bool:
    """The switch between the browser component (on, the default) and the server-drawn path."""
    return st.toggle(
        "answer in the browser",
        value=True,
        key=key,
        help=f"On: {what} is drawn in your browser and follows the pointer at once. Off: every "
        "move goes to the server and back (slower; the same pictures).",
    )


def conv_window(axis: dict, dims: int, key: str) -> None:
    """The convolution helper's input and output cells; pointing at a cell shows its links."""
    # The component starts again at the first cell when the numbers change, not on a rerun.
    version = f"{dims}:" + ",".join(f"{k}={v}" for k, v in sorted(axis.items()) if k != "links")
    _conv_window(data={"axis": axis, "dims": dims, "key": version}, key=key)
