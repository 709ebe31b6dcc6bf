"""What the Train page adds for the course: the parts to freeze, and what training shows (the
decision regions of a 2-D classifier, weight and gradient histograms over time, per-layer
gradient norms). The numbers come from the job's snapshots; deeparch.figures draws them."""

import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from deeparch.data import dataset_info
from deeparch.engine.config import train_defaults, unused_fields
from deeparch.engine.state import JobState
from deeparch.errors import DeeparchError
from deeparch.figures import training_views as views
from deeparch.models import create_model, get_arch
from deeparch.models.parts import top_level_parts
from deeparch.tasks.reconstruct import RECONSTRUCTION_TASKS
from pages._shared import keep, keep_fitting

# Start waits this long for a new job's first loss point, so that the page it reruns into draws
# the point at once instead of a live-panel refresh later (a warm server's first step ends within
# 0.1 s of the submit; a first run on a server may take longer, and the panel looks on its own).
FIRST_POINT_WAIT_S = 0.5
FIRST_POINT_POLL_S = 0.02


def wait_for_first_point(job: Any, seconds: float = FIRST_POINT_WAIT_S) -> bool:
    """Whether the job has a loss point within `seconds`; never waits for a job that is not
    training (queued behind another, paused, ended)."""
    deadline = time.monotonic() + seconds
    while True:
        if any(job.snapshot().get("losses", {}).values()):
            return True
        if job.state is not JobState.RUNNING or time.monotonic() >= deadline:
            return False
        time.sleep(FIRST_POINT_POLL_S)


def hidden_train_fields(arch: str, chosen: Mapping[str, Any]) -> list[str]:
    """Training fields the generic form leaves out: freeze (a multiselect of its own), the
    reconstruction loss for models that reconstruct nothing, and the fields the `chosen`
    settings do not use (momentum beside adam, lr_gamma without the step schedule)."""
    hidden = ["freeze"]
    if get_arch(arch).task not in RECONSTRUCTION_TASKS:
        hidden.append("reconstruction_loss")
    return hidden + unused_fields({**train_defaults(arch), **chosen})


@st.cache_data(max_entries=128, show_spinner=False)
def part_sizes(arch: str, arch_items: tuple, dataset: str) -> list[tuple[str, int]]:
    """(part, parameters) of the model these settings build: once per setting for the class."""
    model, _ = create_model(arch, dict(arch_items), dataset_info(dataset))
    children = dict(model.named_children())
    return [
        (name, sum(p.numel() for p in children[name].parameters()))
        for name in top_level_parts(model)
    ]


def freeze_picker(
    arch: str, arch_values: dict[str, Any], dataset: str, key_prefix: str = "train"
) -> str:
    """A multiselect of the model's top-level parts; returns them comma-separated (freeze).
    Train passes them to the run; Inspect counts them in the layer table's trainable column."""
    try:
        sizes = dict(part_sizes(arch, tuple(sorted(arch_values.items())), dataset))
    except (DeeparchError, RuntimeError, ValueError):
        return ""  # the settings' own error shows under their widgets
    if len(sizes) < 2:
        return ""
    chosen = st.multiselect(
        "freeze (parts not to train)",
        list(sizes),
        key=keep_fitting(f"{key_prefix}_freeze_{arch}", lambda parts: set(parts) <= set(sizes)),
        format_func=lambda name: f"{name} ({sizes[name]:,} parameters)",
        help="Frozen parts keep their weights and get no optimizer state: transfer learning's "
        "fixed feature extractor. The layer table on Inspect counts them as not trainable.",
    )
    total = sum(sizes.values())
    trained = total - sum(sizes[name] for name in chosen)
    if chosen:
        st.caption(f"Training {trained:,} of {total:,} parameters.")
    return ",".join(chosen)


def training_views(snap: dict[str, Any]) -> None:
    """The decision regions (2-D points) and, on request, per-layer statistics over time."""
    snapshots = snap.get("snapshots") or []
    if not snapshots:
        return
    latest = snapshots[-1]
    if "boundary" in latest:
        names = dataset_info(snap["dataset"]).class_names
        title = f"Decision regions at step {latest.get('step', 0)}"
        st.plotly_chart(
            views.decision_boundary_figure(latest["boundary"], names, title),
            key="train_boundary_chart",
        )
    layers = views.layer_names(latest)
    if not layers or not st.toggle(
        "Show weight and gradient histograms", key=keep("train_layer_stats", False)
    ):
        return
    pick, kind_col = st.columns([3, 2])
    layer = pick.selectbox(
        "layer", layers, key=keep_fitting("train_hist_layer", lambda name: name in layers)
    )
    kind = kind_col.radio(
        "histogram of", ("weight", "grad"), horizontal=True, key=keep("train_hist_kind"),
        format_func={"weight": "weights", "grad": "gradients"}.get,
    )  # fmt: skip
    charts = st.columns(2)
    charts[0].plotly_chart(
        views.histogram_over_time_figure(snapshots, layer, kind), key="train_hist_chart"
    )
    charts[1].plotly_chart(views.gradient_norms_figure(snapshots), key="train_gradnorm_chart")
