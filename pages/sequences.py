"""Sequence models: hidden states over time, gradient per time step by cell type, training speed."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deeparch.explore import sequences as seq
from deeparch.figures import explore as figs
from deeparch.figures.text import escape_markdown
from pages._explore_common import (
    dataset,
    job_model,
    model_at,
    show_chosen_job,
)
from pages._shared import index_within, keep, keep_fitting

P = "seq"  # widget key prefix of this page
MIN_MEASURE_SECONDS = 1.0  # per cell type: long enough that scheduling noise averages out


@st.cache_data(max_entries=64, show_spinner=False)
def hidden_cached(job_id: str, step: int, dataset_name: str, index: int) -> np.ndarray:
    return seq.hidden_trace(model_at(job_id, step), dataset(dataset_name).x_val[index])


@st.cache_data(max_entries=64, show_spinner=False)
def job_gradients_cached(job_id: str, step: int, dataset_name: str, index: int) -> np.ndarray:
    data = dataset(dataset_name)
    return seq.gradient_norm_per_step(
        model_at(job_id, step), data.x_val[index : index + 1], data.y_val[index : index + 1]
    )


@st.cache_data(max_entries=16, show_spinner="Computing the gradients of every cell type ...")
def comparison_cached(
    dataset_name: str, labels: tuple[str, ...], train_steps: int
) -> seq.GradientComparison:
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
    index = st.number_input(
        "validation example #", 0, len(data.x_val) - 1,
        key=keep_fitting(f"{P}_index", index_within(len(data.x_val)), 0),
    )  # fmt: skip
    example = data.x_val[index]
    norms = job_gradients_cached(job.id, step, snap["dataset"], int(index))
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
                f"gradient reaching each step, example #{index}",
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


DATASET_NAMES = {
    seq.REMEMBER_FIRST: "remember the first value",
    "mnist1d": "mnist1d",
    "mnist_rows": "mnist_rows",
}
DEFAULT_CELLS = [label for label in seq.GRADIENT_VARIANTS if label != "qrnn"]  # qrnn: slowest


def comparison_section() -> None:
    st.subheader("Vanishing gradients, cell by cell")
    st.write(
        "How much of the loss's gradient reaches the input at each time step (Pascanu, Mikolov "
        "& Bengio 2013). In a plain RNN each step back through time multiplies it by the "
        "recurrent weights and the activation's slope (relu's is 0 for every unit below zero); "
        "at PyTorch's default initialisation that factor is below 1, so the gradient shrinks "
        "geometrically towards the first steps (with large weights relu can explode instead). "
        "Along an LSTM's cell state c_t = f_t * c_(t-1) + i_t * g_t the gradient is multiplied "
        "only by the forget gate f_t per step back. PyTorch starts its bias near 0, so f_t is "
        "about 0.5 and a fresh LSTM halves the gradient per step much like a plain RNN (a GRU's "
        "update gate too); 'lstm (forget bias 1)' starts with f_t about 0.73 (Jozefowicz et al. "
        "2015), and training can open the gate further. A TCN reaches every step through a few "
        "convolutions."
    )
    st.write(
        "In 'remember the first value' (synthetic) the class is the sign of x_0, followed by "
        "39 noise values: a cell can learn it only if the gradient reaches t = 0. Compare at 0 "
        "and at 300 training steps, curves and accuracies together: only the forget-bias-1 "
        "LSTM's gradient reaches t = 0, and whether it has learned the task after 300 steps "
        "depends on the seed (69%, 55% and 52% for three seeds measured here). On mnist1d the "
        "class depends on the whole sequence, so training grows the weights until the gradient "
        "reaches early steps in most cells. Everything below is measured when you press the "
        "button."
    )
    data_col, labels_col, train_col = st.columns([1.3, 2, 1])
    dataset_name = data_col.selectbox(
        "dataset", seq.GRADIENT_DATASETS, format_func=DATASET_NAMES.get, key=keep(f"{P}_dataset")
    )
    labels = labels_col.multiselect(
        "cell types",
        list(seq.GRADIENT_VARIANTS),
        key=keep(f"{P}_cells", list(DEFAULT_CELLS)),
        help="qrnn is left out at first: it trains slowest on a CPU",
    )
    train_steps = train_col.select_slider(
        "training steps first",
        [0, 25, 100, 300],
        key=keep(f"{P}_train_steps", 0),
        help="0: at initialisation; more: after a brief training run of each cell",
    )
    if labels and st.button("Compare gradients", key=f"{P}_compare"):
        st.session_state[f"{P}_compared"] = (dataset_name, tuple(labels), train_steps)
    request = st.session_state.get(f"{P}_compared")
    if request:
        comparison = comparison_cached(*request)
        length = max(len(values) for values in comparison.norms.values())
        st.plotly_chart(
            figs.curves_figure(
                comparison.norms,
                "time step t",
                "|| d loss / d x_t || (log scale)",
                f"{DATASET_NAMES[request[0]]}, after {request[2]} training steps",
                log_y=True,
                x_values=np.arange(length),
            ),
            key=f"{P}_grads",
        )
        st.caption(escape_markdown(accuracy_caption(comparison, request[2])))


def accuracy_caption(comparison: seq.GradientComparison, train_steps: int) -> str:
    accuracies = ", ".join(
        f"{label} {value:.0%}" for label, value in comparison.val_accuracy.items()
    )
    return (
        f"Validation accuracy after {train_steps} training steps (guessing the most common "
        f"class: {comparison.chance:.0%}): {accuracies}. Each curve is the mean over "
        "64 validation examples."
    )


def speed_section() -> None:
    st.subheader("Training speed on this machine")
    st.write(
        "Bradbury et al. (2016) report QRNNs up to 16 times faster than LSTMs (on a GPU). Here "
        "is what this machine measures: samples per second, training each cell type for at least "
        f"{MIN_MEASURE_SECONDS:g} s."
    )
    data_col, steps_col, batch_col = st.columns(3)
    dataset_name = data_col.selectbox("dataset", seq.SEQUENCE_DATASETS, key=keep(f"{P}_speed_data"))
    steps = steps_col.slider(
        "steps per chunk",
        5,
        100,
        key=keep(f"{P}_speed_steps", 20),
        help="measured in chunks of this many steps until the minimum time has passed",
    )
    batch_size = batch_col.select_slider(
        "batch size", [16, 32, 64, 128], key=keep(f"{P}_batch", 64)
    )
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
            f"Measured on this machine's CPU with "
            f"{escape_markdown(', '.join(map(str, sorted(threads))))} torch "
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
show_chosen_job("sequences", P, job_section)
comparison_section()
speed_section()
