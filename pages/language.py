"""A character language model (one-to-many): samples as it trains, and text at a temperature."""

from __future__ import annotations

import streamlit as st

from deeparch.data.language import decode_characters
from deeparch.errors import DeeparchError
from deeparch.explore import sequence_tasks as seq_tasks
from deeparch.figures.text import escape_markdown
from pages._explore_common import job_model, model_at, show_chosen_job, snapshots_holding
from pages._shared import keep

P = "lm"  # widget key prefix of this page
SAMPLES_SHOWN = 4  # the latest snapshots whose samples are listed


@st.cache_data(max_entries=64, show_spinner="Writing ...")
def generated_cached(
    job_id: str, step: int, prompt: str, length: int, temperature: float, seed: int
) -> str:
    return seq_tasks.generate_text(model_at(job_id, step), prompt, length, temperature, seed)


def samples_section(job) -> None:
    snap = job.snapshot()
    waiting = "Samples appear after the first snapshot of training."
    snapshots = snapshots_holding(snap, "samples", waiting)
    if not snapshots:
        return
    losses = snap.get("epoch_metrics") or []
    if losses:
        st.caption(escape_markdown(f"validation loss {losses[-1].get('val_loss', 0):.3f} nats"))
    st.caption(
        "Newest first. Each sample starts with 16 characters of a validation chunk (the "
        "prompt); the rest the model wrote, at every snapshot from the same random draws."
    )
    for shown in reversed(snapshots[-SAMPLES_SHOWN:]):
        st.markdown(f"**step {int(shown['step'])}** (temperature {shown['temperature']:g})")
        prompt = decode_characters(shown["prompts"][0])
        st.code(prompt + decode_characters(shown["samples"][0]), language=None, wrap_lines=True)


def writing_section(job) -> None:
    st.subheader("Write with the model")
    prompt_col, temp_col, length_col, seed_col = st.columns([3, 2, 2, 1])
    prompt = prompt_col.text_input("prompt", max_chars=64, key=keep(f"{P}_prompt", "The list "))
    temperature = temp_col.slider(
        "temperature", 0.0, 2.0, step=0.1, key=keep(f"{P}_temperature", 0.8),
        help="0 always takes the most likely character; 1 samples the model's probabilities; "
        "above 1 flattens them (bolder, more typos)",
    )  # fmt: skip
    length = length_col.slider("characters", 20, 400, step=20, key=keep(f"{P}_length", 200))
    seed = int(seed_col.number_input("seed", 0, 9999, key=keep(f"{P}_seed", 0)))
    _model, step = job_model(job)
    try:
        text = generated_cached(job.id, step, prompt, length, temperature, seed)
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    st.code(prompt + text, language=None, wrap_lines=True)


st.title("Language model")
st.write(
    "One-to-many: a sequence cell reads text one character at a time and predicts the next. "
    "To write, it samples a character from softmax(logits / temperature), reads it back and "
    "samples again (Karpathy 2015; Graves 2013). The text is Python's own help() pages."
)
job = show_chosen_job("language", P, samples_section)
if job is not None:
    writing_section(job)
