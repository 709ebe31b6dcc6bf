"""Autoencoders: reconstructions through training, denoising, and PCA vs autoencoders."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch.data import dataset_info
from deeparch.errors import DeeparchError
from deeparch.explore import autoencoders as ae
from deeparch.figures import explore as figs
from deeparch.figures.text import escape_markdown
from pages._explore_common import dataset, job_model, show_chosen_job, snapshot_shown
from pages._shared import keep

P = "ae"  # widget key prefix of this page
COMPARE_DATASETS = ("mnist", "digits")
MAX_CODE_SIZE = 64
TRAIN_LIMIT = 4000  # training images for the comparison (all of bundled mnist's training split)


@st.cache_data(max_entries=32, show_spinner="Fitting PCA and training both autoencoders ...")
def comparison_cached(dataset_name: str, code_size: int, steps: int) -> ae.ReconstructionComparison:
    data = dataset(dataset_name)
    return ae.compare_reconstruction(
        data.x_train[:TRAIN_LIMIT], data.x_val, data.info, code_size, steps
    )


def job_section(job) -> None:
    snap = job.snapshot()
    if snap["task"] == "denoise":
        skips = snap["config"]["arch_config"].get("skip_connections", True)
        st.caption(
            f"{escape_markdown(snap['arch'])}: a U-Net has no small code; "
            + (
                "skip connections hand each encoder level's feature maps to the decoder, so fine "
                "strokes survive. Train it again with skip_connections off to see the bottleneck "
                "alone blur them."
                if skips
                else "its skip connections are off, so everything passes the bottleneck: compare "
                "with a run that has them on."
            )
        )
    else:
        model, _step = job_model(job)
        pixels = int(np.prod(dataset_info(snap["dataset"]).input_shape))
        st.caption(
            f"{escape_markdown(snap['arch'])} with a code of {model.code_size:d} numbers for "
            f"{pixels:d} pixels; set "
            "the code size on the Train page, or compare code sizes with PCA below."
        )
    waiting = "Reconstructions appear after the first snapshot of training."
    shown = snapshot_shown(snap, "reconstructions", waiting, f"{P}_time")
    if shown is None:
        return
    originals, inputs = shown["originals"], shown["inputs"]
    columns = len(originals)
    noisy = not np.array_equal(originals, inputs)
    rows = [("input with noise", inputs)] if noisy else []
    rows += [
        ("output", shown["reconstructions"]),
        ("clean target" if noisy else "original", originals),
    ]
    for title, images in rows:
        st.plotly_chart(
            figs.image_grid_figure(images, columns, f"{title} (step {shown['step']})", 150),
            key=f"{P}_row_{title}",
        )


def comparison_section() -> None:
    st.subheader("PCA vs a linear and a nonlinear autoencoder")
    st.write(
        "With the same code size, PCA finds the best linear subspace; a linear autoencoder "
        "trained with squared error can at best match it; a nonlinear one can follow a curved "
        'manifold and do better (Goodfellow, Bengio & Courville 2016, "Deep Learning", '
        "section 14.1)."
    )
    data_col, code_col, steps_col = st.columns(3)
    dataset_name = data_col.selectbox("dataset", COMPARE_DATASETS, key=keep(f"{P}_dataset"))
    # An undercomplete code is smaller than the input: at most 63 numbers for digits' 8x8.
    largest = min(MAX_CODE_SIZE, int(np.prod(dataset(dataset_name).info.input_shape)) - 1)
    code_key = keep(f"{P}_code_size", min(8, largest))
    if st.session_state[code_key] > largest:
        st.session_state[code_key] = largest
    code_size = code_col.slider("code size", 1, largest, key=code_key)
    steps = steps_col.select_slider(
        "training steps of each autoencoder", [100, 300, 1000, 3000], key=keep(f"{P}_steps", 300)
    )
    if st.button("Compare", key=f"{P}_compare"):
        st.session_state[f"{P}_compared"] = (dataset_name, code_size, steps)
    request = st.session_state.get(f"{P}_compared")
    if not request:
        return
    try:
        result = comparison_cached(*request)
    except DeeparchError as error:  # a combination no widget bound foresaw: say so, never crash
        st.error(escape_markdown(str(error)))
        return
    st.plotly_chart(
        figs.bar_figure(
            result.errors,
            "validation MSE per pixel",
            f"{request[0]}, code size {request[1]}, {request[2]} training steps",
        ),
        key=f"{P}_errors",
    )
    count = len(result.originals)
    st.plotly_chart(
        figs.image_grid_figure(result.originals, count, "originals", 130), key=f"{P}_orig"
    )
    for method, images in result.reconstructions.items():
        st.plotly_chart(
            figs.image_grid_figure(images, count, method, 130), key=f"{P}_recon_{method}"
        )


st.title("Autoencoders")
st.write(
    "An autoencoder squeezes each input through a small code and rebuilds it; a denoising one "
    "rebuilds the clean image from a noisy one (Vincent et al. 2008), and so does a U-Net "
    "(Ronneberger et al. 2015), whose skip connections bypass the bottleneck."
)
show_chosen_job("autoencoders", P, job_section)
comparison_section()
