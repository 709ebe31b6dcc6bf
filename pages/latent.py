"""VAE latent space: the decoded grid, the means of validation images, sliders and interpolation."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch.explore import latent
from deeparch.explore.payload import pack
from deeparch.figures import explore as figs
from deeparch.figures.text import escape_markdown
from pages._components import (
    browser_weights,
    choose,
    chosen,
    image_scrubber,
    instant_toggle,
    latent_explorer,
    refresh_step,
)
from pages._explore_common import (
    dataset,
    is_active,
    job_model,
    model_at,
    show_chosen_job,
)
from pages._shared import forget, index_within, keep, keep_fitting

P = "lat"  # widget key prefix of this page
MEANS_SHOWN = 1000  # validation images encoded for the scatter
EXPLORER, STRIP = f"{P}_explorer", f"{P}_interpolation"  # the browser components' keys


# Each cache below is keyed by (job, step) plus what the widget changed, so moving one slider
# re-decodes only its own picture: the grid and the means are not recomputed.
# The grid's figure itself is kept (not a copy: st.plotly_chart does not change it), since
# building it, PNG included, costs more than the whole decode of a slider move.
@st.cache_resource(max_entries=16, show_spinner="Decoding the grid ...")
def grid_figure_cached(job_id: str, step: int, z1_range: tuple, z2_range: tuple, side: int):
    grid = latent.decode_grid(model_at(job_id, step), *z1_range, side, z2_range)
    title = (
        f"decoded {side}x{side} grid: z1 {z1_range[0]:g} to {z1_range[1]:g}, "
        f"z2 {z2_range[0]:g} to {z2_range[1]:g}"
    )
    return figs.latent_grid_figure(grid, z1_range, z2_range, title)  # grid (side, side, C, H, W)


@st.cache_data(max_entries=256, show_spinner=False)
def decode_cached(job_id: str, step: int, z: tuple[float, ...]) -> np.ndarray:
    return latent.decode(model_at(job_id, step), np.asarray(z, dtype=np.float32))[0]


@st.cache_data(max_entries=8, show_spinner="Encoding validation images ...")
def means_cached(job_id: str, step: int, dataset_name: str) -> np.ndarray:
    data = dataset(dataset_name)
    return latent.encode_means(model_at(job_id, step), data.x_val[:MEANS_SHOWN])


@st.cache_resource(max_entries=8, show_spinner="Preparing the explorer for your browser ...")
def explorer_cached(job_id: str, refresh: int, dataset_name: str) -> tuple[bytes, str] | None:
    """The latent explorer's shared payload (packed) and its name, once per job and snapshot for
    the whole server; None where the browser cannot answer (a larger latent, conv decoder)."""
    model, step = browser_weights(job_id, refresh)
    data = dataset(dataset_name)
    means = latent.encode_means(model, data.x_val[:MEANS_SHOWN])
    payload = latent.explorer_payload(
        model, means, data.y_val[: len(means)].numpy(), data.info.class_names,
        data.info.input_shape, job_id, step,
    )  # fmt: skip
    return None if payload is None else (pack(*payload), payload[0]["name"])


@st.cache_resource(max_entries=16, show_spinner=False)
def strip_cached(
    job_id: str, refresh: int, dataset_name: str, index_from: int, index_to: int
) -> tuple[bytes, str]:
    model, step = browser_weights(job_id, refresh)
    data = dataset(dataset_name)
    header, arrays = latent.interpolation_payload(
        model, data.x_val[index_from], data.x_val[index_to], job_id, step
    )
    return pack(header, arrays), header["name"]


@st.cache_data(max_entries=32, show_spinner=False)
def interpolation_cached(
    job_id: str, step: int, dataset_name: str, index_from: int, index_to: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    data = dataset(dataset_name)
    model = model_at(job_id, step)
    return latent.interpolate_images(model, data.x_val[index_from], data.x_val[index_to], steps)


# Half the range of every z slider (latent.Z_BOUND). Fixed, not taken from the means: a widget
# whose bounds change is a new widget to Streamlit and jumps back to its default while the job
# trains. The prior is N(0, 1), so +-4 holds all but 0.006% of it, and the means of a trained VAE
# mostly lie within it.
Z_BOUND = latent.Z_BOUND


def set_sliders(values: np.ndarray, bound: float) -> None:
    """Button callback (runs before the widgets exist): put the z sliders at a latent point."""
    for dim, value in enumerate(values):
        st.session_state[f"{P}_z{dim + 1}"] = float(np.clip(round(float(value), 2), -bound, bound))


def latent_sliders(latent_dim: int, means: np.ndarray) -> tuple[float, ...]:
    """One slider per latent dimension (z1, z2, ...) over [-Z_BOUND, Z_BOUND] (the fallback).

    "Start from" puts them at a validation image's mean, a real digit to move away from. They
    start where the browser explorer left the point, and tell it where they leave it.
    """
    bound = Z_BOUND
    pick_col, go_col, zero_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    index = pick_col.number_input(
        "start from validation image #", 0, len(means) - 1,
        key=keep_fitting(f"{P}_start_index", index_within(len(means)), 0),
    )  # fmt: skip
    go_col.button(
        "Sliders to its mean", key=f"{P}_to_mean", on_click=set_sliders,
        args=(means[int(index)], bound),
    )  # fmt: skip
    zero_col.button(
        "Sliders to 0", key=f"{P}_to_zero", on_click=set_sliders,
        args=(np.zeros(latent_dim), bound),
    )  # fmt: skip
    columns = st.columns(min(latent_dim, 4))
    values = []
    start = latent.slider_start(means)
    point = chosen(EXPLORER)
    if point is not None and len(point) == latent_dim:
        start = np.asarray(point)
    for dim in range(latent_dim):
        key = f"{P}_z{dim + 1}"
        # Set only when missing or out of range: writing a widget's key on every run would
        # push the server's value back to the browser while the student drags the slider.
        value = st.session_state.get(key)
        if value is None or not -bound <= value <= bound:
            first = start[dim] if value is None else value
            st.session_state[key] = float(np.clip(round(float(first), 2), -bound, bound))
        with columns[dim % len(columns)]:
            values.append(st.slider(f"z{dim + 1}", -bound, bound, step=0.05, key=key))
    values = tuple(float(v) for v in values)
    choose(EXPLORER, list(values), from_server=True)
    return values


def show_explorer(job, latent_dim: int, dataset_name: str) -> bool:
    """The browser's latent explorer, where it can decode; whether it is shown."""
    cached = explorer_cached(job.id, refresh_step(job, is_active(job)), dataset_name)
    if cached is None:
        st.caption(
            "This decoder has convolutions and the latent more than two dimensions: your browser "
            "cannot decode it, so the sliders below go through the server."
        )
        return False
    latent_explorer(*cached, job.id, EXPLORER)
    for dim in range(latent_dim):  # the fallback's sliders start again from the chosen point
        st.session_state.pop(f"{P}_z{dim + 1}", None)
    return True


RANGE_FOLLOW, RANGE_JOB = f"{P}_range_follow", f"{P}_range_job"


def grid_range_controls(job_id: str, means: np.ndarray) -> tuple[tuple, tuple, int]:
    """Range sliders for z1 and z2, seeded from where the validation means lie, and the side.

    While "grid follows the data" is ticked (again for each new job) the script sets the
    ranges at every step and the sliders are disabled: a student dragging a slider while a
    timer rerun writes it would race it. Unticked, the ranges are the student's.
    """
    keep(RANGE_FOLLOW)  # the student's tick, and below their ranges, stay across pages
    if st.session_state.get(RANGE_JOB) != job_id or RANGE_FOLLOW not in st.session_state:
        st.session_state[RANGE_JOB] = job_id
        st.session_state[RANGE_FOLLOW] = True
    follow = bool(st.session_state[RANGE_FOLLOW])
    if follow:
        for axis, values in enumerate(latent.grid_range(means, bound=latent.GRID_BOUND)):
            key = f"{P}_range_z{axis + 1}"
            if st.session_state.get(key) != values:  # written only on a change: see the z sliders
                st.session_state[key] = values
    bound = latent.GRID_BOUND
    z1_col, z2_col, side_col = st.columns(3)
    ranges = [
        column.slider(
            f"z{axis + 1} range of the grid",
            -bound,
            bound,
            step=0.1,
            key=keep(f"{P}_range_z{axis + 1}"),
            disabled=follow,
        )
        for axis, column in enumerate((z1_col, z2_col))
    ]
    side = side_col.slider("grid size (side)", 5, 30, key=keep(f"{P}_side", 20))
    follow_col, note_col = st.columns([1, 3], vertical_alignment="center")
    follow_col.checkbox("grid follows the data", key=RANGE_FOLLOW)
    note_col.caption(
        "Ticked, the grid covers where the validation means lie (2nd to 98th percentile of each "
        "axis, plus 10%, at least 1 wide; the dashed box on the scatter), step by step while "
        "the job trains. Untick it to set the ranges yourself."
    )
    return tuple(ranges[0]), tuple(ranges[1]), side


def explore_2d(
    job, step: int, means: np.ndarray, labels: np.ndarray, names: tuple, sliders: bool
) -> None:
    """The decoded grid; with `sliders` (no browser explorer) the sliders, scatter and decode."""
    z1_range, z2_range, side = grid_range_controls(job.id, means)
    z = latent_sliders(2, means) if sliders else None
    grid_col, scatter_col = st.columns(2)
    with grid_col:
        st.plotly_chart(grid_figure_cached(job.id, step, z1_range, z2_range, side), key=f"{P}_grid")
    if z is None:
        return
    with scatter_col:
        st.plotly_chart(
            figs.latent_scatter_figure(
                means, labels, z, title="validation means by label", class_names=names,
                region=(z1_range, z2_range),
            ),
            key=f"{P}_scatter",
        )  # fmt: skip
    decoded_col, _ = st.columns([1, 2])
    with decoded_col:
        st.plotly_chart(
            figs.image_figure(decode_cached(job.id, step, z), f"decode({z[0]:.2f}, {z[1]:.2f})"),
            key=f"{P}_decoded",
        )


def explore_nd(
    job, step: int, latent_dim: int, means: np.ndarray, labels: np.ndarray, names: tuple
) -> None:
    z = latent_sliders(latent_dim, means)
    projection = latent.project_means(means)
    marker = tuple(float(v) for v in projection.project(np.asarray(z)))
    decoded_col, scatter_col = st.columns([1, 2])
    with decoded_col:
        st.plotly_chart(
            figs.image_figure(decode_cached(job.id, step, z), "decode(z)"), key=f"{P}_decoded"
        )
    with scatter_col:
        explained = projection.explained
        st.plotly_chart(
            figs.latent_scatter_figure(
                projection.points,
                labels,
                marker,
                (f"PC1 ({explained[0]:.0%})", f"PC2 ({explained[1]:.0%})"),
                "validation means, first two principal components",
                class_names=names,
            ),
            key=f"{P}_scatter",
        )


def interpolation(job, step: int, dataset_name: str, count: int, instant: bool) -> None:
    st.subheader("Interpolate between two validation images")
    a_col, b_col, n_col = st.columns(3)
    fits = index_within(count)
    index_from = a_col.number_input(
        "from image #", 0, count - 1, key=keep_fitting(f"{P}_from", fits, 0)
    )
    index_to = b_col.number_input(
        "to image #", 0, count - 1, key=keep_fitting(f"{P}_to", fits, min(1, count - 1))
    )
    steps = n_col.slider("steps", 3, 20, key=keep(f"{P}_steps", 10))
    data = dataset(dataset_name)
    names = data.info.class_names
    ends = []
    for index in (int(index_from), int(index_to)):
        label = int(data.y_val[index])
        ends.append(f"#{index}: {names[label] if label < len(names) else label}")
    title = (
        f"image {ends[0]} (framed, left) to image {ends[1]} (framed, right), "
        "decoded along the line between their means"
    )
    if instant:
        shared, name = strip_cached(
            job.id, refresh_step(job, is_active(job)), dataset_name, int(index_from), int(index_to)
        )
        image_scrubber(shared, name, job.id, STRIP, steps, title, memory="interpolation")
        forget(f"{P}_lambda")  # the fallback starts from the chosen lambda, not a kept one
        return
    lambdas, strip = interpolation_cached(
        job.id, step, dataset_name, int(index_from), int(index_to), steps
    )
    st.plotly_chart(
        figs.interpolation_figure(
            data.x_val[[index_from, index_to]].numpy(), strip, lambdas, tuple(ends), title, 200
        ),
        key=f"{P}_strip",
    )
    browser_lambda = round(float((chosen(STRIP) or {}).get("lambda", 0.5)), 2)
    mix = st.slider("lambda", 0.0, 1.0, step=0.05, key=keep(f"{P}_lambda", browser_lambda))
    choose(STRIP, {"lambda": float(mix), "set": 0}, from_server=True)
    means = latent.encode_means(model_at(job.id, step), data.x_val[[index_from, index_to]])
    z = latent.interpolate_latents(means[0], means[1], np.array([mix]))[0]
    st.plotly_chart(
        figs.image_figure(
            decode_cached(job.id, step, tuple(float(v) for v in z)), f"lambda = {mix:.2f}", 220
        ),
        key=f"{P}_mix",
    )


def latent_view(job) -> None:
    """The job's latent space: the explorer (or the sliders), the grid and an interpolation."""
    snap = job.snapshot()
    model, step = job_model(job)
    data = dataset(snap["dataset"])
    instant = instant_toggle(f"{P}_instant", "decoding")
    st.subheader(escape_markdown(latent.latent_space_heading(model.latent_dim)))
    explorer = instant and show_explorer(job, model.latent_dim, snap["dataset"])
    means = means_cached(job.id, step, snap["dataset"])
    labels = data.y_val[: len(means)].numpy()
    names = data.info.class_names
    if model.latent_dim == 2:
        explore_2d(job, step, means, labels, names, sliders=not explorer)
    elif not explorer:
        explore_nd(job, step, model.latent_dim, means, labels, names)
    interpolation(job, step, snap["dataset"], len(data.x_val), instant)


st.title("VAE latent space")
st.write(
    "A VAE encodes each image as a Gaussian in latent space; the decoder turns any point z back "
    "into an image. Move through the space and watch the digits morph, as in the learned MNIST "
    "manifold of Kingma & Welling (2014)."
)
show_chosen_job("latent", P, latent_view)
