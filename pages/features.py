"""Feature maps: every conv layer's output, the first layer's filters, class probabilities."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from deeparch.errors import DeeparchError
from deeparch.explore import novelty
from deeparch.explore.images import (
    MAX_UPLOAD_BYTES,
    decode_data_url,
    decode_upload,
    inspect_image,
    preprocess_image,
)
from deeparch.explore.latent import explorer_step
from deeparch.figures import explore as figs
from deeparch.figures.text import escape_markdown
from pages._drawing import drawing_pad
from pages._explore_common import (
    dataset,
    is_active,
    job_model,
    show_chosen_job,
)
from pages._shared import index_within, keep, keep_fitting, manager

P = "feat"  # widget key prefix of this page
SOURCES = ("validation image", "draw a digit", "upload a picture")


@st.cache_data(max_entries=32, show_spinner=False)
def inspect_cached(job_id: str, step: int, image: np.ndarray):
    """Feature maps of one image (C, H, W) for a job at a step; recomputed when either changes."""
    from pages._explore_common import model_at

    return inspect_image(model_at(job_id, step), torch.from_numpy(image))


def input_image(info, data) -> np.ndarray | None:
    """The image to look at, (C, H, W) in [0, 1], from the chosen source."""
    source = st.radio("Input", SOURCES, horizontal=True, key=keep(f"{P}_source"))
    if source == SOURCES[0]:
        index = st.number_input(
            "validation image #", 0, len(data.x_val) - 1,
            key=keep_fitting(f"{P}_index", index_within(len(data.x_val)), 0),
        )  # fmt: skip
        label = int(data.y_val[index])
        name = info.class_names[label] if info.class_names else label
        st.caption(f"true class: {escape_markdown(name)}")
        return data.x_val[index].numpy()
    if source == SOURCES[1]:
        drawing = drawing_pad(f"{P}_canvas")
        st.caption("Draw one digit; it is cropped and centred like MNIST before the model sees it.")
        if drawing is None:
            st.info("Draw a digit on the canvas to see what the network makes of it.")
            return None
        try:
            picture = decode_data_url(drawing["png"], "the drawing")
            image = preprocess_image(picture, info.input_shape, invert="no", name="the drawing")
            return image.numpy()
        except DeeparchError as error:
            st.error(escape_markdown(str(error)))
            return None
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
        key=keep(f"{P}_invert"),
        help="MNIST digits are light on black; auto inverts a picture that is mostly light",
    )
    try:
        picture = decode_upload(upload.getvalue(), upload.name)
        return preprocess_image(picture, info.input_shape, invert=invert, name=upload.name).numpy()
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return None


MAPS_CAPTION = (
    "Each conv layer's own output, before the batch norm or activation function that follows "
    "it: red is positive, blue negative, white zero. A ReLU after the layer keeps the red and "
    "sets the blue to 0. Each map is scaled to its own largest absolute value."
)


def signed_maps_figure(maps: np.ndarray, title: str):
    """A layer's maps (channels, h, w), diverging colours, zero white, each map to its own max |v|.

    The grey scale of figs.feature_map_figure maps each map's minimum to black, so a negative
    value and a zero cannot be told apart; the sign is what a ReLU acts on.
    """
    bound = np.abs(maps).max(axis=(1, 2), keepdims=True)
    scaled = maps / np.where(bound > 0, bound, 1.0)  # each map in [-1, 1], 0 stays 0
    # NaN gaps between maps show the grey plot background: padding with 0 would be white, like 0.
    grid = figs.tile_images(scaled[:, None], 8, pad_value=np.nan)
    fig = figs.image_figure(grid, title, 400, zmin=-1.0, zmax=1.0, colorscale=figs.DIVERGING)
    fig.update_traces(
        showscale=True,
        colorbar=dict(
            tickvals=[-1, 0, 1], ticktext=["most negative", "0", "most positive"], len=0.8
        ),
    )
    fig.update_layout(plot_bgcolor="#888888")
    return fig


@st.cache_resource(max_entries=8, show_spinner="Comparing with the training images ...")
def reference_at(job_id: str, refresh: int, dataset_name: str) -> novelty.ModelReference:
    """The model's confidence on training images, shared by every session: once per snapshot
    while the job trains (`refresh` is explorer_step), not once a second."""
    return novelty.model_reference(manager().get(job_id).model_copy(), dataset_name)


def show_caution(found: novelty.Novelty) -> None:
    """Say why the prediction below should not be trusted, when an input is unusual."""
    if found.unlike_training:
        reasons = "; ".join(found.unlike_training)
        st.warning(
            "**This input is unlike the training data**, so the prediction below may mean "
            f"nothing: {escape_markdown(reasons)}."
        )
    if found.unsure:
        st.warning(f"**The model is unsure of this input**: {escape_markdown(found.unsure)}.")


def show_inspection(result, class_names, found: novelty.Novelty | None = None) -> None:
    if found is not None:
        show_caution(found)
    left, right = st.columns([1, 2])
    with left:
        st.plotly_chart(figs.image_figure(result.input_image, "model input", 240), key=f"{P}_in")
    with right:
        note = "unlike the training data" if found is not None and found.flagged else ""
        st.plotly_chart(
            figs.probabilities_figure(result.probabilities, class_names, note=note),
            key=f"{P}_probs",
        )
    if result.first_filters is not None:
        with st.expander("Filters of the first conv layer", expanded=False):
            st.plotly_chart(
                figs.filters_figure(result.first_filters, "red: positive weights, blue: negative"),
                key=f"{P}_filters",
            )
    st.subheader("Output of every conv layer, before its activation")
    st.caption(MAPS_CAPTION)
    tabs = st.tabs(result.layer_names)
    for tab, name in zip(tabs, result.layer_names):
        maps = result.feature_maps[name]
        with tab:
            st.plotly_chart(
                signed_maps_figure(
                    maps,
                    f"{name} before its activation: {maps.shape[0]} maps of "
                    f"{maps.shape[1]}x{maps.shape[2]}",
                ),
                key=f"{P}_maps_{name}",
            )
    st.subheader("Enlarge one map")
    pick_layer, pick_channel = st.columns(2)
    layers = list(result.layer_names)
    layer = pick_layer.selectbox(
        "layer", layers, key=keep_fitting(f"{P}_layer", lambda name: name in layers)
    )
    maps = result.feature_maps[layer]
    channel = pick_channel.slider(
        "channel", 0, maps.shape[0] - 1,
        key=keep_fitting(f"{P}_channel", index_within(maps.shape[0]), 0),
    )  # fmt: skip
    bound = float(np.abs(maps[channel]).max()) or 1.0
    enlarged = figs.image_figure(
        maps[channel],
        f"{layer}, channel {channel}",
        420,
        zmin=-bound,
        zmax=bound,
        colorscale=figs.DIVERGING,
    )
    enlarged.update_traces(showscale=True, colorbar=dict(title="before<br>activation", len=0.8))
    st.plotly_chart(enlarged, key=f"{P}_enlarged")


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
        st.error(escape_markdown(str(error)))
        return
    found = None
    if st.session_state.get(f"{P}_source") != SOURCES[0]:  # a drawing or an upload
        refresh = explorer_step(snap, is_active(job))
        reference = reference_at(job.id, refresh, snap["dataset"])
        found = novelty.novelty(reference, torch.from_numpy(image), result.probabilities)
    show_inspection(result, data.info.class_names, found)


st.title("Feature maps")
st.write(
    "What each convolution layer of an image classifier responds to: pick an input and see the "
    "output of every channel of every conv layer (before its activation function), the first "
    "layer's filters and the predicted class probabilities."
)
show_chosen_job("features", P, feature_view)
