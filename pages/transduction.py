"""Encoder-decoder (sequence to vector to sequence): accuracy per output position, examples,
and a string the student types."""

from __future__ import annotations

import streamlit as st

from deeparch.data import dataset_info
from deeparch.errors import DeeparchError
from deeparch.explore import sequence_tasks as seq_tasks
from deeparch.figures import explore as figs
from deeparch.figures.text import code_span, escape_markdown
from pages._explore_common import job_model, show_chosen_job, snapshot_shown
from pages._shared import keep_fitting

P = "s2s"  # widget key prefix of this page


def job_section(job) -> None:
    snap = job.snapshot()
    waiting = "Accuracies appear after the first snapshot of training."
    shown = snapshot_shown(snap, "position_accuracy", waiting, f"{P}_time")
    if shown is None:
        return
    symbols = dataset_info(snap["dataset"]).class_names
    accuracy = shown["position_accuracy"]
    st.plotly_chart(
        figs.bar_figure(
            {f"{i + 1}": float(a) for i, a in enumerate(accuracy)},
            "share of correct tokens",
            f"step {shown['step']}: accuracy per output position (whole strings right: "
            f"{shown['sequence_accuracy']:.0%})",
        ),
        key=f"{P}_positions",
    )
    st.dataframe(seq_tasks.example_rows(shown, symbols), hide_index=True, key=f"{P}_examples")


def typed_section(job) -> None:
    snap = job.snapshot()
    length = int(dataset_info(snap["dataset"]).input_shape[0])
    typed = st.text_input(
        f"your own {length} digits",
        max_chars=length,
        key=keep_fitting(f"{P}_digits", lambda text: len(text) <= length, "31415926"[:length]),
    )
    try:
        ids = seq_tasks.check_digit_string(typed, length)
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    model, step = job_model(job)
    output = seq_tasks.transduce(model, ids)
    symbols = dataset_info(snap["dataset"]).class_names
    written = seq_tasks.decode_symbols(output, symbols)
    st.markdown(
        f"{code_span(typed)} → {code_span(written)} (model at step {step:d}): {len(output)} "
        "digits decoded one at a time, each reading the ones chosen before it."
    )


st.title("Encoder-decoder")
st.write(
    "Sequence to vector to sequence (Sutskever, Vinyals & Le 2014; Cho et al. 2014): an encoder "
    "cell reads the digits and its last state is a single vector; a decoder cell writes the "
    "answer from that vector, one digit at a time. It trains reading the true previous digits "
    "(teacher forcing) and is measured reading its own. Late positions depend on early "
    "choices: watch which positions are learned first."
)
job = show_chosen_job("seq2seq", P, job_section)
if job is not None:
    typed_section(job)
