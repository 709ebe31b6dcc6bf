"""Forecasting (many-to-many): predictions at every step, and a horizon rolled out from them."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch.figures import explore as figs
from deeparch.figures import sequence_tasks as seq_figs
from deeparch.figures.text import escape_markdown
from pages._explore_common import show_chosen_job, snapshot_shown
from pages._shared import index_within, keep_fitting

P = "fc"  # widget key prefix of this page


def job_section(job) -> None:
    snap = job.snapshot()
    cell = snap["config"]["arch_config"].get("cell", "lstm")
    st.caption(escape_markdown(f"{snap['arch']} with the {cell} cell on {snap['dataset']}"))
    waiting = "Forecasts appear after the first snapshot of training."
    shown = snapshot_shown(snap, "forecast", waiting, f"{P}_time")
    if shown is None:
        return
    count = len(shown["series"])
    index = st.slider(
        "validation window", 0, count - 1, key=keep_fitting(f"{P}_index", index_within(count), 0)
    )
    horizon = len(shown["forecast"][index])
    st.plotly_chart(
        seq_figs.forecast_figure(
            shown["series"][index],
            shown["one_step"][index],
            shown["forecast"][index],
            f"step {shown['step']}: the last {horizon} values forecast from the {64 - horizon} "
            "before them",
        ),
        key=f"{P}_forecast",
    )
    st.plotly_chart(
        figs.curves_figure(
            {"model": shown["horizon_mse"], "repeat the last value": shown["naive_horizon_mse"]},
            "steps ahead",
            "mean squared error",
            "error by how far ahead, over the validation windows",
            x_values=np.arange(1, horizon + 1),
        ),
        key=f"{P}_horizon",
    )


st.title("Forecasting")
st.write(
    "Many-to-many: the model outputs a value at every step, trained to predict the next one. "
    "To forecast further it feeds its own prediction back in as the next input, so errors "
    "compound with every step ahead (Graves 2013, section 2). The dotted line predicts each "
    "value from the true ones before it; the thick one from its own predictions only. The "
    "windows are generated: sums of two or three sines with a trend and noise."
)
show_chosen_job("forecast", P, job_section)
