"""Sequence models: hidden states over time, gradient per time step by cell type, training speed."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch import explore_figures as figs
from deeparch import explore_sequences as seq
from pages._explore_common import (
    choose_job,
    dataset,
    job_model,
    model_at,
    show_live,
)

P = "seq"  # widget key prefix of this page
MIN_MEASURE_SECONDS = 1.0  # per cell type: long enough that scheduling noise averages out


@st.cache_data(max_entries=64, show_spinner=False)
def hidden_cached(job_id: str, step: int, dataset_name: str, index: int) -> np.ndarray:
    return seq.hidden_trace(model_at(job_id, step), dataset(dataset_name).x_val[index])


@st.cache_data(max_entries=16, show_spinner=False)
def job_gradients_cached(job_id: str, step: int, dataset_name: str) -> np.ndarray:
    data = dataset(dataset_name)
    return seq.gradient_norm_per_step(model_at(job_id, step), data.x_val[:64], data.y_val[:64])


@st.cache_data(max_entries=16, show_spinner="Computing the gradients of every cell type ...")
def comparison_cached(
    dataset_name: str, labels: tuple[str, ...], train_steps: int
) -> dict[str, np.ndarray]:
    return seq.compare_gradient_norms(dataset_name, labels, train_steps)


@st.cache_data(max_entries=64, show_spinner=False)
def speed_cached(
    label: str, dataset_name: str, steps: int, batch_size: int, attempt: int
) -> seq.SpeedResult:
    """`attempt` counts button presses: pressing again measures again instead of re-using."""
    return seq.measure_training_speed(
        label, dataset_name, steps, batch_size, min_seconds=MIN_MEASURE_SECONDS
    )


def job_section(job) -> None:
    snap = job.snapshot()
    _model, step = job_model(job)
    data = dataset(snap["dataset"])
    index = st.number_input("validation example #", 0, len(data.x_val) - 1, 0, key=f"{P}_index")
    example = data.x_val[index]
    norms = job_gradients_cached(job.id, step, snap["dataset"])
    input_col, hidden_col = st.columns(2)
    with input_col:
        if example.dim() == 2:  # (T, F) float sequences; tokens have no picture of their own
            st.plotly_chart(
                figs.sequence_figure(example.numpy(), f"input, class {int(data.y_val[index])}"),
                key=f"{P}_input",
            )
        st.plotly_chart(
            figs.curves_figure(
                {snap["arch"]: norms},
                "time step t",
                "|| d loss / d x_t ||",
                "gradient reaching each step",
                log_y=True,
                x_values=np.arange(len(norms)),  # t from 0, like the input and the heatmap
            ),
            key=f"{P}_job_grads",
        )
    with hidden_col:
        st.plotly_chart(
            figs.hidden_heatmap_figure(
                hidden_cached(job.id, step, snap["dataset"], int(index)),
                f"{snap['arch']}: hidden state h_t over time",
            ),
            key=f"{P}_hidden",
        )


def comparison_section() -> None:
    st.subheader("Vanishing gradients, cell by cell")
    st.write(
        "How much of the loss's gradient reaches the input at each time step (seed 003). In a "
        "plain RNN it is multiplied by the recurrent weights and the activation's slope once per "
        "step back, so it shrinks geometrically towards the first steps (or, with large weights "
        "and relu, grows). Gates (LSTM, GRU) add paths where it passes almost unchanged; a TCN "
        "reaches every step through a few convolutions. Compare at initialisation and after "
        "some training: the curves below are measured, whatever they show."
    )
    data_col, labels_col, train_col = st.columns([1, 2, 1])
    dataset_name = data_col.selectbox("dataset", seq.SEQUENCE_DATASETS, key=f"{P}_dataset")
    labels = labels_col.multiselect(
        "cell types", list(seq.CELL_VARIANTS), list(seq.CELL_VARIANTS), key=f"{P}_cells"
    )
    train_steps = train_col.select_slider(
        "training steps first",
        [0, 25, 100, 300],
        0,
        key=f"{P}_train_steps",
        help="0: at initialisation; more: after a brief training run of each cell",
    )
    if labels and st.button("Compare gradients", key=f"{P}_compare"):
        st.session_state[f"{P}_compared"] = (dataset_name, tuple(labels), train_steps)
    request = st.session_state.get(f"{P}_compared")
    if request:
        norms = comparison_cached(*request)
        length = max(len(values) for values in norms.values())
        st.plotly_chart(
            figs.curves_figure(
                norms,
                "time step t",
                "|| d loss / d x_t || (log scale)",
                f"{request[0]}, after {request[2]} training steps",
                log_y=True,
                x_values=np.arange(length),
            ),
            key=f"{P}_grads",
        )


def speed_section() -> None:
    st.subheader("Training speed on this machine")
    st.write(
        "Seed 002 says a QRNN trains far faster than an LSTM (on a GPU). Here is what this "
        "machine measures: samples per second, training each cell type for at least "
        f"{MIN_MEASURE_SECONDS:g} s."
    )
    data_col, steps_col, batch_col = st.columns(3)
    dataset_name = data_col.selectbox("dataset", seq.SEQUENCE_DATASETS, key=f"{P}_speed_data")
    steps = steps_col.slider(
        "steps per chunk",
        5,
        100,
        20,
        key=f"{P}_speed_steps",
        help="measured in chunks of this many steps until the minimum time has passed",
    )
    batch_size = batch_col.select_slider("batch size", [16, 32, 64, 128], 64, key=f"{P}_batch")
    if st.button("Measure training speed", key=f"{P}_measure"):
        attempt = st.session_state.get(f"{P}_measured", (0,) * 4)[3] + 1
        st.session_state[f"{P}_measured"] = (dataset_name, steps, batch_size, attempt)
    request = st.session_state.get(f"{P}_measured")
    if request:
        with st.spinner("Training each cell type for a few steps ..."):
            results = [speed_cached(label, *request) for label in seq.CELL_VARIANTS]
        st.plotly_chart(
            figs.bar_figure(
                {r.label: r.samples_per_s for r in results},
                "samples / s",
                f"{request[0]}, batch {request[2]}",
            ),
            key=f"{P}_speed",
        )
        st.dataframe(
            [
                {
                    "cell": r.label,
                    "parameters": r.parameters,
                    "samples/s": round(r.samples_per_s),
                    "seconds": round(r.seconds, 2),
                }
                for r in results
            ],
            hide_index=True,
        )
        threads = {r.torch_threads for r in results}
        st.caption(
            f"Measured on this machine's CPU with {', '.join(map(str, sorted(threads)))} torch "
            "thread(s), forward and backward pass and an Adam step per batch, after 2 warm-up "
            "steps. On a GPU the ranking can differ: a QRNN's convolutions parallelise over "
            "time steps, an LSTM's recurrence cannot."
        )
        if any(r.concurrent_jobs for r in results):
            st.warning(
                "A training job was running during the measurement and shared the CPU: the "
                "numbers are lower than on an idle machine. Measure again when it has finished."
            )


st.title("Sequence models")
st.write("RNN, LSTM, GRU, QRNN and TCN read a sequence one step at a time (or convolve over it).")
job = choose_job("sequences", P)
if job is not None:
    show_live(job, job_section)
comparison_section()
speed_section()
