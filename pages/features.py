"""Feature maps: every conv layer's activations, the first layer's filters, class probabilities."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from deeparch import explore_figures as figs
from deeparch.errors import DeeparchError
from deeparch.explore_images import (
    MAX_UPLOAD_BYTES,
    decode_upload,
    inspect_image,
    preprocess_image,
)
from pages._explore_common import choose_job, dataset, job_model, show_live

P = "feat"  # widget key prefix of this page
SOURCES = ("validation image", "draw a digit", "upload a picture")


@st.cache_data(max_entries=32, show_spinner=False)
def inspect_cached(job_id: str, step: int, image: np.ndarray):
    """Feature maps of one image (C, H, W) for a job at a step; recomputed when either changes."""
    from pages._explore_common import model_at

    return inspect_image(model_at(job_id, step), torch.from_numpy(image))


def input_image(info, data) -> np.ndarray | None:
    """The image to look at, (C, H, W) in [0, 1], from the chosen source."""
    source = st.radio("Input", SOURCES, horizontal=True, key=f"{P}_source")
    if source == SOURCES[0]:
        index = st.number_input("validation image #", 0, len(data.x_val) - 1, 0, key=f"{P}_index")
        label = int(data.y_val[index])
        st.caption(f"true class: {info.class_names[label] if info.class_names else label}")
        return data.x_val[index].numpy()
    if source == SOURCES[1]:
        from streamlit_drawable_canvas import st_canvas

        result = st_canvas(
            stroke_width=18,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=224,
            width=224,
            drawing_mode="freedraw",
            return_image_data=True,
            key=f"{P}_canvas",
        )
        st.caption("Draw one digit; it is cropped and centred like MNIST before the model sees it.")
        drawing = result.image_data if result is not None else None
        if drawing is None or float(np.asarray(drawing)[..., :3].max()) == 0:
            st.info("Draw a digit on the canvas to see what the network makes of it.")
            return None
        return preprocess_image(np.asarray(drawing), info.input_shape, invert="no").numpy()
    # The widget's own limit is higher than ours so that a too-large file reaches decode_upload,
    # which says what is wrong; the widget would only mark it with a small red icon.
    upload = st.file_uploader(
        f"PNG or JPEG, at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
        type=["png", "jpg", "jpeg"],
        key=f"{P}_upload",
        max_upload_size=20,  # the server's maxUploadSize (.streamlit/config.toml)
    )
    if upload is None:
        return None
    invert = st.radio(
        "invert colours",
        ("auto", "yes", "no"),
        horizontal=True,
        key=f"{P}_invert",
        help="MNIST digits are light on black; auto inverts a picture that is mostly light",
    )
    try:
        picture = decode_upload(upload.getvalue(), upload.name)
        return preprocess_image(picture, info.input_shape, invert=invert).numpy()
    except DeeparchError as error:
        st.error(str(error))
        return None


def show_inspection(result, class_names) -> None:
    left, right = st.columns([1, 2])
    with left:
        st.plotly_chart(figs.image_figure(result.input_image, "model input", 240), key=f"{P}_in")
    with right:
        st.plotly_chart(
            figs.probabilities_figure(result.probabilities, class_names), key=f"{P}_probs"
        )
    if result.first_filters is not None:
        with st.expander("Filters of the first conv layer", expanded=False):
            st.plotly_chart(
                figs.filters_figure(result.first_filters, "red: positive weights, blue: negative"),
                key=f"{P}_filters",
            )
    st.subheader("Activation maps of every conv layer")
    tabs = st.tabs(result.layer_names)
    for tab, name in zip(tabs, result.layer_names):
        maps = result.feature_maps[name]
        with tab:
            st.plotly_chart(
                figs.feature_map_figure(
                    maps, f"{name}: {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}"
                ),
                key=f"{P}_maps_{name}",
            )
    st.subheader("Enlarge one map")
    pick_layer, pick_channel = st.columns(2)
    layer = pick_layer.selectbox("layer", result.layer_names, key=f"{P}_layer")
    maps = result.feature_maps[layer]
    channel = pick_channel.slider("channel", 0, maps.shape[0] - 1, 0, key=f"{P}_channel")
    st.plotly_chart(
        figs.image_figure(
            maps[channel],
            f"{layer}, channel {channel}",
            420,
            zmin=float(maps[channel].min()),
            zmax=float(maps[channel].max()) or 1.0,
        ),
        key=f"{P}_enlarged",
    )


st.title("Feature maps")
st.write(
    "What each convolution layer of an image classifier responds to: pick an input and see the "
    "activation map of every channel of every conv layer, the first layer's filters and the "
    "predicted class probabilities."
)
job = choose_job("features", P)
if job is not None:

    def feature_view(job) -> None:
        snap = job.snapshot()
        data = dataset(snap["dataset"])
        image = input_image(data.info, data)
        if image is None:
            return
        _model, step = job_model(job)
        try:
            result = inspect_cached(job.id, step, image)
        except DeeparchError as error:
            st.error(str(error))
            return
        show_inspection(result, data.info.class_names)

    show_live(job, feature_view)
