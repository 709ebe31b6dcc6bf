"""word2vec: the training pairs of a sentence, nearest neighbours and a map, live."""

from __future__ import annotations

import streamlit as st

from deeparch.data import dataset_info
from deeparch.errors import DeeparchError
from deeparch.explore import words
from deeparch.figures import sequence_tasks as seq_figs
from deeparch.figures.text import escape_markdown
from pages._explore_common import job_model, show_chosen_job, snapshot_shown
from pages._shared import keep

P = "w2v"  # widget key prefix of this page


def pairs_section() -> None:
    st.subheader("The training pairs of a sentence")
    sentence_col, window_col = st.columns([4, 1])
    sentence = sentence_col.text_input(
        "sentence", max_chars=300, key=keep(f"{P}_sentence", words.EXAMPLE_SENTENCE)
    )
    window = window_col.slider("window", 1, 5, key=keep(f"{P}_window", 2))
    try:
        tokens = words.check_sentence(sentence)
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    skipgram, cbow = words.pair_rows(tokens, window)
    left, right = st.columns(2)
    left.markdown(f"**skip-gram**: {len(skipgram)} (input, context) pairs")
    left.dataframe(skipgram, hide_index=True, height=300, key=f"{P}_skipgram")
    right.markdown(f"**CBOW**: {len(cbow)} (context, target) pairs")
    right.dataframe(cbow, hide_index=True, height=300, key=f"{P}_cbow")


def job_section(job) -> None:
    snap = job.snapshot()
    waiting = "Neighbours and the map appear after the first snapshot of training."
    shown = snapshot_shown(snap, "map_xy", waiting)
    if shown is None:
        return
    vocabulary = dataset_info(snap["dataset"]).class_names
    st.caption(escape_markdown(f"{snap['arch']} at step {shown['step']}"))
    rows = [
        {"word": vocabulary[p], "nearest": ", ".join(vocabulary[i] for i in row)}
        for p, row in zip(shown["probe_ids"], shown["neighbour_ids"], strict=True)
    ]
    st.dataframe(rows, hide_index=True, key=f"{P}_probes")
    highlighted = st.session_state.get(f"{P}_highlight", [])
    st.plotly_chart(
        seq_figs.word_map_figure(
            shown["map_xy"], vocabulary[: len(shown["map_xy"])], highlighted,
            "the 200 most frequent words on the first two principal components",
        ),
        key=f"{P}_map",
    )  # fmt: skip


def neighbours_section(job) -> None:
    vocabulary = dataset_info(job.snapshot()["dataset"]).class_names
    typed = st.text_input("a word", max_chars=30, key=keep(f"{P}_word", "list"))
    try:
        word_id = words.check_word(typed, vocabulary)
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    model, step = job_model(job)
    nearest = words.neighbours(model, vocabulary, word_id)
    st.session_state[f"{P}_highlight"] = [vocabulary[word_id]] + [w for w, _ in nearest]
    st.dataframe(
        [{"neighbour": w, "cosine similarity": round(s, 3)} for w, s in nearest],
        hide_index=True,
        key=f"{P}_neighbours",
    )
    st.caption(f"nearest by cosine similarity of the input vectors, model at step {step:d}")


def live_section(job) -> None:
    neighbours_section(job)
    job_section(job)


st.title("Word embeddings")
st.write(
    "word2vec (Mikolov et al. 2013): skip-gram trains each word's vector to predict the words "
    "around it, CBOW the average of the context to predict the word in the middle. Words that "
    "keep the same company get similar vectors. The text is Python's own help() pages, so the "
    "company is Python's: after the starter's 15 epochs 'true' has 'false' among its nearest, "
    "'string' has 'byte' and 'substring', 'error' has 'exception'; early on they are noise."
)
pairs_section()
show_chosen_job("words", P, live_section)
