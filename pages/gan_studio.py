"""GAN studio: fixed-noise samples through training, the losses, D(x) vs D(G(z)), noise walks."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch.explore import latent
from deeparch.explore import views as explore
from deeparch.explore.payload import pack
from deeparch.figures import explore as figs
from pages._components import (
    browser_weights,
    choose,
    chosen,
    image_scrubber,
    instant_toggle,
    refresh_step,
)
from pages._explore_common import (
    dataset,
    is_active,
    job_model,
    model_at,
    show_chosen_job,
    snapshot_shown,
)
from pages._shared import forget, index_within, keep, keep_fitting

P = "gan"  # widget key prefix of this page
SCRUBBER = f"{P}_scrubber"  # the browser component's key


@st.cache_data(max_entries=64, show_spinner=False)
def class_samples_cached(job_id: str, step: int, class_index: int, seed: int) -> np.ndarray:
    return latent.samples_of_class(model_at(job_id, step), class_index, 16, seed)


@st.cache_data(max_entries=32, show_spinner=False)
def noise_walk_cached(
    job_id: str, step: int, seed_from: int, seed_to: int, steps: int, class_index: int
) -> np.ndarray:
    return latent.interpolate_noise(model_at(job_id, step), seed_from, seed_to, steps, class_index)


@st.cache_resource(max_entries=16, show_spinner="Preparing the samples for your browser ...")
def scrubber_cached(
    job_id: str, refresh: int, dataset_name: str, seed: int, seed_from: int, seed_to: int
) -> tuple[bytes, str, int]:
    """Every class's samples and noise walk, packed once per job, snapshot and seeds."""
    model, step = browser_weights(job_id, refresh)
    names = list(dataset(dataset_name).info.class_names or [])
    header, arrays = latent.gan_payload(model, names, seed, seed_from, seed_to, job_id, step)
    return pack(header, arrays), header["name"], step


def latest_weights(step: int) -> str:
    """Title suffix for views computed from the model as it is now, not at the slider's step."""
    return f"latest weights, step {step}"


def label_columns(fig, labels: np.ndarray, columns: int, image_width: int, class_names) -> bool:
    """Name each grid column's class when every column holds one class (the cGAN's fixed labels
    are 0, 1, ..., 9, 0, 1, ...); returns whether it could."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) < columns or not np.array_equal(
        labels, labels[np.arange(len(labels)) % columns]
    ):
        return False
    names = list(class_names) or [str(i) for i in range(int(labels.max()) + 1)]
    pitch = image_width + 1  # figs.tile_images puts 1 pixel of padding between images
    fig.update_xaxes(
        visible=True,
        tickvals=[column * pitch + (image_width - 1) / 2 for column in range(columns)],
        ticktext=[names[int(label)] for label in labels[:columns]],
        title="class the generator was asked for",
        showgrid=False,
        zeroline=False,
        ticks="",
    )
    return True


def samples_through_training(snap: dict, model, class_names) -> None:
    waiting = "The first sample grid appears after the first snapshot of training."
    shown = snapshot_shown(snap, "grid", waiting, f"{P}_time")
    if shown is None:
        return
    chosen = int(shown["step"])
    verdicts = []
    for term, name in (("d_x", "D(x)"), ("d_g_z", "D(G(z))")):
        value = explore.mean_before(*explore.loss_curve(snap, term), chosen)
        if value is not None:
            verdicts.append(f"{name} = {value:.2f}")
    title = f"fixed noise at step {chosen}"
    if verdicts:
        title += f": {', '.join(verdicts)} (training batches, last 20 steps)"
    grid = np.asarray(shown["grid"])  # (16, C, H, W)
    conditional = getattr(model, "conditional", False) and "labels" in shown
    # A cGAN's fixed labels cycle through the classes: one column per class.
    columns = len(class_names) if conditional and class_names else 10  # 20 samples: 2 rows
    fig = figs.image_grid_figure(grid, columns, title, 300 if conditional else 260)
    if conditional:
        label_columns(fig, shown["labels"], columns, grid.shape[-1], class_names)
    st.plotly_chart(fig, key=f"{P}_grid")


def training_curves(snap: dict) -> None:
    loss_col, d_col = st.columns(2)
    losses = {"d_loss": "discriminator loss", "g_loss": "generator loss"}
    curves, x_values = explore.smoothed_curves(snap, losses)
    with loss_col:
        st.plotly_chart(
            figs.curves_figure(
                curves, "step", "loss (moving average)", "losses", x_values=x_values
            ),
            key=f"{P}_losses",
        )
    verdicts = {"d_x": "D(x), real images", "d_g_z": "D(G(z)), fakes"}
    curves, x_values = explore.smoothed_curves(snap, verdicts)
    with d_col:
        st.plotly_chart(
            figs.curves_figure(
                curves,
                "step",
                "mean sigmoid output",
                "the discriminator's verdicts",
                x_values=x_values,
                hline=0.5,
            ),
            key=f"{P}_verdicts",
        )
    st.caption(
        "At the equilibrium both verdicts sit at 0.5: the discriminator cannot tell real from "
        "fake. In practice they swing around it; the game often does not converge (Goodfellow "
        '2016, "NIPS 2016 Tutorial: Generative Adversarial Networks").'
    )


def class_picker(job, step: int, class_names) -> int:
    st.subheader("Samples of one class")
    class_col, seed_col = st.columns(2)
    names = list(class_names) or [str(i) for i in range(10)]
    browser_class = int((chosen(SCRUBBER) or {}).get("set", 0))  # where its class buttons left it
    class_index = class_col.selectbox(
        "class",
        range(len(names)),
        format_func=lambda i: names[i],
        key=keep_fitting(f"{P}_class", index_within(len(names)), browser_class),
    )
    seed = seed_col.number_input("noise seed", 0, 10_000, key=keep(f"{P}_seed", 0))
    images = class_samples_cached(job.id, step, int(class_index), int(seed))
    title = f"16 samples of class {names[class_index]} ({latest_weights(step)})"
    st.plotly_chart(figs.image_grid_figure(images, 8, title, 240), key=f"{P}_class_samples")
    return int(class_index)


def walk_inputs() -> tuple[int, int, int]:
    a_col, b_col, n_col = st.columns(3)
    seed_from = a_col.number_input("from seed", 0, 10_000, key=keep(f"{P}_walk_from", 1))
    seed_to = b_col.number_input("to seed", 0, 10_000, key=keep(f"{P}_walk_to", 2))
    steps = n_col.slider("steps", 3, 20, key=keep(f"{P}_walk_steps", 10))
    return int(seed_from), int(seed_to), int(steps)


def noise_walk(job, step: int, class_index: int) -> None:
    st.subheader("Walk between two noise vectors")
    seed_from, seed_to, steps = walk_inputs()
    walked = float((chosen(SCRUBBER) or {}).get("lambda", 0.5))  # keep the browser's lambda
    choose(SCRUBBER, {"lambda": walked, "set": class_index}, from_server=True)
    strip = noise_walk_cached(job.id, step, seed_from, seed_to, steps, class_index)
    title = f"G((1 - lambda) z_a + lambda z_b) ({latest_weights(step)})"
    st.plotly_chart(figs.image_grid_figure(strip, steps, title, 160), key=f"{P}_walk")


def browser_views(job, model, dataset_name: str) -> None:
    """The class samples and the noise walk, every class at once, answered in the browser."""
    conditional = bool(getattr(model, "conditional", False))
    st.subheader(
        "Samples of one class, and a walk between two noise vectors"
        if conditional
        else "Walk between two noise vectors"
    )
    seed = 0
    if conditional:
        seed_col, note_col = st.columns([1, 2], vertical_alignment="bottom")
        seed = int(seed_col.number_input("noise seed", 0, 10_000, key=keep(f"{P}_seed", 0)))
        note_col.caption("Point at a class to see its samples and its walk; click to keep it.")
    seed_from, seed_to, steps = walk_inputs()
    refresh = refresh_step(job, is_active(job))
    shared, name, step = scrubber_cached(job.id, refresh, dataset_name, seed, seed_from, seed_to)
    image_scrubber(shared, name, job.id, SCRUBBER, steps, memory="gan")
    forget(f"{P}_class")  # the server-drawn fallback starts from the class chosen here
    st.caption(
        f"These use the weights of step {step:,}, refreshed at each snapshot while the job "
        "trains; point along the strip to walk between the two noise vectors."
    )


def gan_view(job) -> None:
    snap = job.snapshot()
    model, step = job_model(job)
    class_names = list(dataset(snap["dataset"]).info.class_names or [])
    samples_through_training(snap, model, class_names)
    training_curves(snap)
    instant = instant_toggle(f"{P}_instant", "the class samples and the walk")
    if instant:
        browser_views(job, model, snap["dataset"])
        return
    st.caption(
        f"The views below use the latest weights (step {step:d}): only the fixed-noise grid "
        "above keeps earlier steps, so the time slider does not move them."
    )
    class_index = 0
    if getattr(model, "conditional", False):
        class_index = class_picker(job, step, class_names)
    noise_walk(job, step, class_index)


st.title("GAN studio")
st.write(
    "A generator learns to turn noise into images while a discriminator learns to tell them from "
    "real ones. Watch the same noise vectors become digits, and the two players' scores."
)
show_chosen_job("gan", P, gan_view)
