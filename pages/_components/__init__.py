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

from deeparch.explore.latent import explorer_step
from deeparch.explore.payload import pack
from pages._shared import keep, manager

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
_latent_explorer = _register("latent_explorer", common=True)
_image_scrubber = _register("image_scrubber", common=True)


def instant_toggle(key: str, what: str) -> bool:
    """The switch between the browser component (on, the default) and the server-drawn path."""
    return st.toggle(
        "answer in the browser",
        key=keep(key, True),
        help=f"On: {what} is drawn in your browser and follows the pointer at once. Off: every "
        "move goes to the server and back (slower; the same pictures).",
    )


def conv_window(axis: dict, dims: int, key: str) -> None:
    """The convolution helper's input and output cells; pointing at a cell shows its links."""
    # The component starts again at the first cell when the numbers change, not on a rerun.
    version = f"{dims}:" + ",".join(f"{k}={v}" for k, v in sorted(axis.items()) if k != "links")
    _conv_window(data={"axis": axis, "dims": dims, "key": version}, key=key)


# ---- the explore pages' components: a shared payload and a session's own few bytes -------------


@st.cache_resource(max_entries=8, show_spinner=False)
def browser_weights(job_id: str, refresh: int) -> tuple[Any, int]:
    """(model copy, its step) for the browser payloads: one copy per job and snapshot.

    `refresh` is explorer_step: the newest snapshot's step while the job trains, so the shared
    payloads (megabytes for a decode grid) are made and sent once per snapshot.
    """
    job = manager().get(job_id)
    model = job.model_copy()
    return model, int(job.snapshot()["step"])


def refresh_step(job: Any, active: bool) -> int:
    return explorer_step(job.snapshot(), active)


def chosen(key: str) -> Any:
    """The point a component (or the fallback's widgets) chose last in this session, or None."""
    return st.session_state.get(f"{key}_point")


def choose(key: str, point: Any, from_server: bool) -> None:
    """Remember a chosen point; `from_server` (the fallback's widgets) also tells the component.

    The component keeps its own point in the browser tab; a new serial makes it take the
    server's instead the next time it starts.
    """
    if st.session_state.get(f"{key}_point") == point:
        return
    st.session_state[f"{key}_point"] = point
    if from_server:
        st.session_state[f"{key}_serial"] = st.session_state.get(f"{key}_serial", 0) + 1


def _session_pack(key: str, job: str, name: str, extra: dict) -> bytes:
    """The session's part of a component's data, frozen while the shared payload stays the same.

    A release stores the point in session state but leaves these bytes alone, so a rerun sends
    the same element and Streamlit a reference to it, not the shared megabytes again.
    """
    serial = st.session_state.get(f"{key}_serial", 0)
    signature = (name, serial, repr(sorted(extra.items())))
    frozen = st.session_state.get(f"{key}_frozen")
    if frozen is None or frozen[0] != signature:
        header = {"job": job, "serial": serial, "start": chosen(key), **extra}
        frozen = (signature, pack(header))
        st.session_state[f"{key}_frozen"] = frozen
    return frozen[1]


def _stored(key: str, state: str, value_of: Any) -> Any:
    def callback() -> None:
        value = (st.session_state.get(key) or {}).get(state)
        if value is not None:
            choose(key, value_of(value), from_server=False)

    return callback


def latent_explorer(shared: bytes, name: str, job: str, key: str) -> None:
    """The VAE latent explorer: scatter, decoded image and z sliders, answered in the browser."""
    data = _session_pack(key, job, name, {}) + shared
    _latent_explorer(
        data=data, key=key, on_point_change=_stored(key, "point", lambda v: list(v["z"]))
    )


def image_scrubber(
    shared: bytes, name: str, job: str, key: str, steps: int, title: str = "", memory: str = ""
) -> None:
    """A decoded line (interpolation, noise walk) with its strip, scrubbed in the browser."""
    extra = {"steps": int(steps), "title": title, "memory": memory or key}
    data = _session_pack(key, job, name, extra) + shared
    _image_scrubber(
        data=data,
        key=key,
        on_choice_change=_stored(
            key, "choice", lambda v: {"lambda": float(v["lambda"]), "set": int(v["set"])}
        ),
    )
