"""Surnames by language: the character-RNN classifier, letter by letter, on a typed name."""

from __future__ import annotations

import streamlit as st

from deeparch.data import dataset_info
from deeparch.errors import DeeparchError
from deeparch.explore import names
from deeparch.figures import sequence_tasks as seq_figs
from deeparch.figures.text import code_span, escape_markdown
from pages._explore_common import dataset, job_model, show_chosen_job, snapshot_shown
from pages._shared import keep

P = "nm"  # widget key prefix of this page


def accuracy_section(job) -> None:
    snap = job.snapshot()
    shown = snapshot_shown(
        snap, "confusion", "The accuracy appears after the first snapshot of training."
    )
    if shown is None:
        return
    data = dataset("surnames")
    majority = float(data.y_val.bincount().max()) / len(data.y_val)
    token_input = snap["config"]["arch_config"].get("token_input", "embedding")
    st.caption(
        escape_markdown(
            f"{snap['arch']} reading {token_input} characters: validation accuracy "
            f"{shown['val_accuracy']:.0%} at step {shown['step']}; always guessing the largest "
            f"language scores {majority:.0%}."
        )
    )


def name_section(job) -> None:
    typed = st.text_input(
        "your surname", max_chars=40, key=keep(f"{P}_name", "Baker"),
        help="letters, with spaces, ' or - between them; at most 20",
    )  # fmt: skip
    try:
        name = names.check_name(typed)
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    model, step = job_model(job)
    prefixes, probabilities = names.prefix_predictions(model, name)
    languages = dataset_info("surnames").class_names
    best = int(probabilities[-1].argmax())
    st.markdown(
        f"After all of {code_span(name)}: **{escape_markdown(languages[best])}** "
        f"({probabilities[-1, best]:.0%}), model at step {step:d}."
    )
    unknown = names.unknown_letters(name)
    if unknown:
        st.caption(
            f"Never seen in training, read as one unknown character: {code_span(' '.join(unknown))}"
        )
    st.plotly_chart(
        seq_figs.prefix_figure(
            prefixes, probabilities, languages, "the prediction letter by letter"
        ),
        key=f"{P}_prefixes",
    )


st.title("Surnames")
st.write(
    "The course's character-level RNN: read a surname one letter at a time and guess its "
    "language from the final state (as in PyTorch's tutorial \"Classifying Names with a "
    "Character-Level RNN\"). About 8,000 surnames of ten languages from Faker's locale lists, "
    "each listed by one language only. Letters reach the cell as one-hot vectors or through a "
    "learned Embedding: set token_input on the Train page and compare."
)
job = show_chosen_job("names", P, accuracy_section)
if job is not None:
    name_section(job)
