"""VAE latent space: the decoded grid, the means of validation images, sliders and interpolation."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch import explore_figures as figs
from deeparch import explore_latent as latent
from pages._explore_common import (
    choose_job,
    dataset,
    job_model,
    model_at,
    show_live,
)

P = "lat"  # widget key prefix of this page
MEANS_SHOWN = 1000  # validation images encoded for the scatter


# Each cache below is keyed by (job, step) plus what the widget changed, so moving one slider
# re-decodes only its own picture: the grid and the means are not recomputed.
@st.cache_data(max_entries=16, show_spinner="Decoding the grid ...")
def grid_cached(job_id: str, step: int, low: float, high: float, side: int) -> np.ndarray:
    return latent.decode_grid(model_at(job_id, step), low, high, side)


@st.cache_data(max_entries=256, show_spinner=False)
def decode_cached(job_id: str, step: int, z: tuple[float, ...]) -> np.ndarray:
    return latent.decode(model_at(job_id, step), np.asarray(z, dtype=np.float32))[0]


@st.cache_data(max_entries=8, show_spinner="Encoding validation images ...")
def means_cached(job_id: str, step: int, dataset_name: str) -> np.ndarray:
    data = dataset(dataset_name)
    return latent.encode_means(model_at(job_id, step), data.x_val[:MEANS_SHOWN])


@st.cache_data(max_entries=32, show_spinner=False)
def interpolation_cached(
    job_id: str, step: int, dataset_name: str, index_from: int, index_to: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    data = dataset(dataset_name)
    model = model_at(job_id, step)
    return latent.interpolate_images(model, data.x_val[index_from], data.x_val[index_to], steps)


# Half the range of every z slider. Fixed, not taken from the means: a widget whose bounds change
# is a new widget to Streamlit and jumps back to its default while the job trains. The prior is
# N(0, 1), so +-4 holds all but 0.006% of it, and the means of a trained VAE mostly lie within it.
Z_BOUND = 4.0


def set_sliders(values: np.ndarray, bound: float) -> None:
    """Button callback (runs before the widgets exist): put the z sliders at a latent point."""
    for dim, value in enumerate(values):
        st.session_state[f"{P}_z{dim + 1}"] = float(np.clip(round(float(value), 2), -bound, bound))


def latent_sliders(latent_dim: int, means: np.ndarray) -> tuple[float, ...]:
    """One slider per latent dimension (z1, z2, ...) over [-Z_BOUND, Z_BOUND].

    "Start from" puts them at a validation image's mean, a real digit to move away from.
    """
    bound = Z_BOUND
    pick_col, go_col, zero_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    index = pick_col.number_input(
        "start from validation image #", 0, len(means) - 1, 0, key=f"{P}_start_index"
    )
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
    for dim in range(latent_dim):
        key = f"{P}_z{dim + 1}"
        # Set only when missing or out of range: writing a widget's key on every run would
        # push the server's value back to the browser while the student drags the slider.
        value = st.session_state.get(key)
        if value is None or not -bound <= value <= bound:
            st.session_state[key] = float(np.clip(value or 0.0, -bound, bound))
        with columns[dim % len(columns)]:
            values.append(st.slider(f"z{dim + 1}", -bound, bound, step=0.05, key=key))
    return tuple(float(v) for v in values)


def explore_2d(job, step: int, means: np.ndarray, labels: np.ndarray) -> None:
    st.subheader("The 2-D latent space")
    range_col, side_col = st.columns(2)
    low, high = range_col.slider(
        "latent range of the grid", -4.0, 4.0, (-1.5, 1.5), 0.25, key=f"{P}_range"
    )
    side = side_col.slider("grid size (side)", 5, 30, 20, key=f"{P}_side")
    z = latent_sliders(2, means)
    grid_col, scatter_col = st.columns(2)
    with grid_col:
        grid = grid_cached(job.id, step, low, high, side)  # (side, side, C, H, W)
        images = grid.reshape(side * side, *grid.shape[2:])
        st.plotly_chart(
            figs.image_grid_figure(images, side, f"decoded {side}x{side} grid", 600),
            key=f"{P}_grid",
        )
    with scatter_col:
        st.plotly_chart(
            figs.latent_scatter_figure(means, labels, z, title="validation means by label"),
            key=f"{P}_scatter",
        )
    decoded_col, _ = st.columns([1, 2])
    with decoded_col:
        st.plotly_chart(
            figs.image_figure(decode_cached(job.id, step, z), f"decode({z[0]:.2f}, {z[1]:.2f})"),
            key=f"{P}_decoded",
        )


def explore_nd(job, step: int, latent_dim: int, means: np.ndarray, labels: np.ndarray) -> None:
    st.subheader(f"A {latent_dim}-D latent space")
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
            ),
            key=f"{P}_scatter",
        )


def interpolation(job, step: int, dataset_name: str, count: int) -> None:
    st.subheader("Interpolate between two validation images")
    a_col, b_col, n_col = st.columns(3)
    index_from = a_col.number_input("from image #", 0, count - 1, 0, key=f"{P}_from")
    index_to = b_col.number_input("to image #", 0, count - 1, 1, key=f"{P}_to")
    steps = n_col.slider("steps", 3, 20, 10, key=f"{P}_steps")
    lambdas, strip = interpolation_cached(
        job.id, step, dataset_name, int(index_from), int(index_to), steps
    )
    st.plotly_chart(
        figs.image_grid_figure(strip, steps, "lambda from 0 to 1", 160), key=f"{P}_strip"
    )
    mix = st.slider("lambda", 0.0, 1.0, 0.5, 0.05, key=f"{P}_lambda")
    data = dataset(dataset_name)
    means = latent.encode_means(model_at(job.id, step), data.x_val[[index_from, index_to]])
    z = latent.interpolate_latents(means[0], means[1], np.array([mix]))[0]
    st.plotly_chart(
        figs.image_figure(
            decode_cached(job.id, step, tuple(float(v) for v in z)), f"lambda = {mix:.2f}", 220
        ),
        key=f"{P}_mix",
    )


st.title("VAE latent space")
st.write(
    "A VAE encodes each image as a Gaussian in latent space; the decoder turns any point z back "
    "into an image. Move through the space and watch the digits morph (seed 004)."
)
job = choose_job("latent", P)
if job is not None:

    def latent_view(job) -> None:
        snap = job.snapshot()
        model, step = job_model(job)
        data = dataset(snap["dataset"])
        means = means_cached(job.id, step, snap["dataset"])
        labels = data.y_val[: len(means)].numpy()
        if model.latent_dim == 2:
            explore_2d(job, step, means, labels)
        else:
            explore_nd(job, step, model.latent_dim, means, labels)
        interpolation(job, step, snap["dataset"], len(data.x_val))

    show_live(job, latent_view)
