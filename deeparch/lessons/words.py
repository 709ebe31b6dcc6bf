"""Lessons on text: sampling temperature in a character language model, one-hot against
Embedding inputs for surnames by language (and a prediction changing letter by letter), and the
count of word2vec's training pairs."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping

import numpy as np
import torch

from deeparch.data import load_dataset
from deeparch.data.language import (
    SURNAME_ALPHABET,
    SURNAME_LANGUAGES,
    cbow_pairs,
    decode_characters,
    encode_surname,
    skipgram_pairs,
    topics_words,
    word_vocabulary,
)
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.lessons.measure import accuracy, generator
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import engine_run, failed_outcome, unfinished
from deeparch.models.word2vec import nearest_words
from deeparch.tasks import evaluation_mode

# ---- 27: temperature ---------------------------------------------------------------------------

TEMPERATURES = (0.0, 0.5, 1.0, 1.5)
SAMPLES, PROMPT, SAMPLE_LENGTH = 8, 16, 200
# A greedy sample "repeats" when its last LOOP_TAIL characters have a period of at most
# LOOP_PERIOD (" the the the" has period 4).
LOOP_TAIL, LOOP_PERIOD = 100, 32
# ci: 100 steps of a 64-wide GRU (measured: 3, 22, 69 and 91 distinct characters at T = 0, 0.5,
# 1 and 1.5; every greedy sample loops; 8.5 s to train, load 19); full: the registry's model for
# its 5 epochs (about 500 steps).
LM_BUDGETS = {"ci": {"max_steps": 100, "epochs": 5}, "full": {"max_steps": 0, "epochs": 5}}
LM_WIDTH = {"ci": {"hidden_size": 64}, "full": {}}
RISES, SAME, FALLS = "rises", "stays about the same", "falls"


def lm_runs(budget: str) -> dict[str, TrainConfig]:
    return {"char_lm": engine_run("char_lm", "topics_chars", LM_BUDGETS[budget], LM_WIDTH[budget])}


def shortest_period(ids: list[int]) -> int | None:
    """The smallest p <= LOOP_PERIOD with ids[i] == ids[i + p] across the tail, else None."""
    tail = ids[-LOOP_TAIL:]
    for period in range(1, LOOP_PERIOD + 1):
        if all(tail[i] == tail[i + period] for i in range(len(tail) - period)):
            return period
    return None


def entropy_bits(ids: list[int]) -> float:
    """The entropy of the characters' frequencies in a text, in bits per character."""
    counts = collections.Counter(ids)
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def judge_temperature(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(TEMPERATURE_LESSON, problems)
    model = jobs["char_lm"].model_copy()
    prompts = load_dataset("topics_chars").x_val[:SAMPLES, :PROMPT]
    distinct, entropy, examples, periods = {}, {}, {}, []
    with evaluation_mode(model):
        for temperature in TEMPERATURES:
            # The same draws at every temperature: only softmax(logits / T) changes.
            samples = model.generate(prompts, SAMPLE_LENGTH, temperature, generator(0))
            ids = samples.flatten().tolist()
            label = f"T = {temperature:g}"
            distinct[label] = len(set(ids))
            entropy[label] = entropy_bits(ids)
            examples[label] = decode_characters(samples[0, :80].numpy())
            if temperature == 0.0:
                periods = [shortest_period(row) for row in samples.tolist()]
    counts = list(distinct.values())
    rising = all(a < b for a, b in zip(counts, counts[1:]))
    looping = sum(period is not None for period in periods) / len(periods)
    held = rising and looping >= 0.5
    steps = jobs["char_lm"].snapshot().get("step", 0)
    listed = ", ".join(f"{label}: {n}" for label, n in distinct.items())
    return Outcome(
        TEMPERATURE_LESSON.name,
        held=held,
        verdict=f"after {steps} steps, {SAMPLES} samples of {SAMPLE_LENGTH} characters use "
        f"{listed} distinct characters; at T = 0 (always the likeliest character) "
        f"{looping:.0%} of the samples end in a loop of at most {LOOP_PERIOD} characters",
        measured={
            "distinct_characters": distinct,
            "entropy_bits": entropy,
            "greedy_loop_fraction": looping,
            "greedy_periods": periods,
            "examples": examples,
            "steps": steps,
        },
        series={
            "distinct characters against temperature": {
                "temperature": list(TEMPERATURES),
                "samples": counts,
            }
        },
        series_x={"distinct characters against temperature": "temperature"},
        answer=RISES if rising else (FALLS if counts[-1] < counts[0] else SAME),
    )


TEMPERATURE_LESSON = register(
    Lesson(
        name="sampling_temperature",
        title="Sampling temperature",
        claim="A language model gives a probability for every next character; sampling from "
        "softmax(logits / T) writes text. A low temperature sharpens the distribution towards "
        "the likeliest character (at T = 0 it always takes it, and the text falls into a loop "
        "such as ' the the the'); a high one flattens it, so the samples use more and more "
        "distinct characters.",
        source="A. Karpathy, The unreasonable effectiveness of recurrent neural networks (blog, "
        "2015), section on temperature; A. Graves, Generating sequences with recurrent neural "
        "networks (arXiv:1308.0850, 2013); I. Goodfellow, Y. Bengio, A. Courville, Deep "
        "Learning (MIT Press 2016), sec. 17.2 (sampling)",
        prediction=Prediction(
            "choice",
            "As the temperature rises from 0 to 1.5, the number of distinct characters in the "
            "samples...",
            choices=(RISES, SAME, FALLS),
        ),
        judge=judge_temperature,
        runs=lm_runs,
        setup={"arch": "char_lm", "dataset": "topics_chars"},
        position=27,
    )
)


# ---- 28: surnames, one-hot against Embedding, and a prediction letter by letter ---------------

TOKEN_INPUTS = ("one_hot", "embedding")
# ci: 200 steps (measured: 67.3% one-hot, 68.6% Embedding, load 18); full: 10 epochs.
SURNAME_BUDGETS = {"ci": {"max_steps": 200, "epochs": 10}, "full": {"max_steps": 0, "epochs": 10}}
TIE = 0.03  # "as well": within three points of accuracy
LETTER_BY_LETTER = 3  # languages drawn in the prefix figure


def surname_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        token_input: engine_run(
            "gru", "surnames", SURNAME_BUDGETS[budget], {"token_input": token_input}
        )
        for token_input in TOKEN_INPUTS
    }


def decode_surname(tokens: torch.Tensor) -> str:
    """A left-padded row of surname token ids back to its letters (PAD and UNKNOWN dropped)."""
    return "".join(SURNAME_ALPHABET[i - 2] for i in tokens.tolist() if i >= 2)


def prefix_probabilities(model: torch.nn.Module, name: str) -> np.ndarray:
    """(len(name), languages): the model's probabilities after reading each prefix of name."""
    prefixes = torch.from_numpy(
        np.stack([encode_surname(name[:k]) for k in range(1, len(name) + 1)])
    )
    with evaluation_mode(model):
        return torch.softmax(model(prefixes), dim=1).numpy()


def judge_surnames(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(SURNAME_LESSON, problems)
    data = load_dataset("surnames")
    models = {label: job.model_copy() for label, job in jobs.items()}
    val_accuracy = {label: accuracy(m, data.x_val, data.y_val) for label, m in models.items()}
    parameters = {label: sum(p.numel() for p in m.parameters()) for label, m in models.items()}
    # The letter-by-letter view: the longest of the first validation names the Embedding model
    # gets right, its probabilities after each prefix.
    embedding = models["embedding"]
    with evaluation_mode(embedding):
        right = (embedding(data.x_val[:200]).argmax(dim=1) == data.y_val[:200]).nonzero()
    chosen = max(
        (int(i) for i in right.flatten()), key=lambda i: len(decode_surname(data.x_val[i]))
    )
    name, language = decode_surname(data.x_val[chosen]), int(data.y_val[chosen])
    probabilities = prefix_probabilities(embedding, name)
    drawn = np.argsort(-probabilities.max(axis=0))[:LETTER_BY_LETTER]
    winner = max(val_accuracy, key=val_accuracy.get)
    margin = val_accuracy["embedding"] - val_accuracy["one_hot"]
    held = parameters["embedding"] < parameters["one_hot"] and margin > -TIE
    steps = jobs["embedding"].snapshot().get("step", 0)
    return Outcome(
        SURNAME_LESSON.name,
        held=held,
        verdict=f"after {steps} steps each, the GRU reading one-hot letters reaches "
        f"{val_accuracy['one_hot']:.1%} on the validation names ({parameters['one_hot']:,} "
        f"parameters), the one reading a 16-number Embedding per letter "
        f"{val_accuracy['embedding']:.1%} ({parameters['embedding']:,}); reading '{name}' "
        f"letter by letter, its belief in {SURNAME_LANGUAGES[language]} goes from "
        f"{probabilities[0, language]:.0%} after one letter to {probabilities[-1, language]:.0%}",
        measured={
            "val_accuracy": val_accuracy,
            "parameters": parameters,
            "embedding_minus_one_hot": margin,
            "name": name,
            "language": SURNAME_LANGUAGES[language],
            "true_language_by_prefix": probabilities[:, language].tolist(),
            "steps": steps,
        },
        series={
            f"probability after each letter of '{name}'": {
                SURNAME_LANGUAGES[i]: probabilities[:, i].tolist() for i in drawn
            }
        },
        series_x={f"probability after each letter of '{name}'": "letters read"},
        answer=winner,
    )


SURNAME_LESSON = register(
    Lesson(
        name="surname_inputs",
        title="Surnames: one-hot letters or an Embedding",
        claim="A character RNN can tell a surname's language from its letters, and its guess "
        "changes as it reads them. Feeding each letter as a one-hot vector or through an "
        "Embedding computes the same kind of thing (an Embedding is a one-hot vector times a "
        "weight matrix), but the Embedding's small vectors need fewer weights, and at the same "
        "budget it classifies as well or better.",
        source="PyTorch tutorial, NLP from scratch: classifying names with a character-level "
        "RNN (S. Robertson); Y. Bengio et al., A neural probabilistic language model (JMLR "
        "2003), sec. 2 (the shared feature vectors of an embedding)",
        prediction=Prediction(
            "choice",
            "Same GRU, same steps: which input reaches the higher validation accuracy?",
            choices=TOKEN_INPUTS,
        ),
        judge=judge_surnames,
        runs=surname_runs,
        setup={"arch": "gru", "dataset": "surnames", "arch_config": {"token_input": "embedding"}},
        position=28,
    )
)


# ---- 29: word2vec's training pairs, counted ---------------------------------------------------

SENTENCE_WORDS, PAIR_WINDOW = 10, 2


def skipgram_pair_count(words: int, window: int) -> int:
    """Every word pairs with up to `window` neighbours on each side; the 2 * window words at the
    ends miss 1 + 2 + ... + window of them on each end: 2 * n * w - w * (w + 1) (for n > w)."""
    if words <= window:
        return words * (words - 1)  # every word pairs with every other
    return 2 * words * window - window * (window + 1)


def judge_pairs(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    text = list(topics_words())
    sentence = text[:SENTENCE_WORDS]
    checked = {}
    for words in (1, 2, 3, 5, 10, 50):
        for window in (1, 2, 3, 5):
            counted = len(skipgram_pairs(text[:words], window))
            checked[f"n={words}, w={window}"] = [counted, skipgram_pair_count(words, window)]
    formula_holds = all(counted == formula for counted, formula in checked.values())
    cbow = len(cbow_pairs(sentence, PAIR_WINDOW))
    pairs = skipgram_pairs(sentence, PAIR_WINDOW)
    held = formula_holds and cbow == SENTENCE_WORDS
    return Outcome(
        PAIRS_LESSON.name,
        held=held,
        verdict=f"the {SENTENCE_WORDS} words '{' '.join(sentence)}' with window {PAIR_WINDOW} "
        f"give {len(pairs)} skip-gram (input, context) pairs, 2 x {SENTENCE_WORDS} x "
        f"{PAIR_WINDOW} - {PAIR_WINDOW} x {PAIR_WINDOW + 1} = "
        f"{skipgram_pair_count(SENTENCE_WORDS, PAIR_WINDOW)}, and {cbow} CBOW pairs, one per "
        f"word; counted and formula agree at all {len(checked)} (length, window) pairs tried",
        measured={
            "sentence": sentence,
            "skipgram_pairs": len(pairs),
            "formula": skipgram_pair_count(SENTENCE_WORDS, PAIR_WINDOW),
            "cbow_pairs": cbow,
            "first_pairs": [list(pair) for pair in pairs[:6]],
            "counted_against_formula": checked,
        },
        answer=len(pairs),
    )


PAIRS_LESSON = register(
    Lesson(
        name="word2vec_pairs",
        title="word2vec's training pairs",
        claim="Skip-gram turns a sentence into (input, context) pairs: each word predicts each "
        "neighbour within the window. A sentence of n words with window w gives 2nw - w(w + 1) "
        "pairs (the words near the ends have fewer neighbours); CBOW gives one pair per word, "
        "its neighbours together predicting it.",
        source="T. Mikolov, K. Chen, G. Corrado, J. Dean, Efficient estimation of word "
        "representations in vector space (arXiv:1301.3781, 2013), sec. 3; D. Jurafsky and J. "
        "H. Martin, Speech and Language Processing (3rd ed. draft), ch. 6.8",
        prediction=Prediction(
            "number",
            f"A sentence of {SENTENCE_WORDS} words, window {PAIR_WINDOW} on each side: how many "
            "skip-gram (input, context) pairs?",
            answer=skipgram_pair_count(SENTENCE_WORDS, PAIR_WINDOW),
        ),
        judge=judge_pairs,
        exact=True,
        setup={"arch": "skipgram", "dataset": "topics_words"},
        position=29,
    )
)


# ---- 30: word2vec neighbours share contexts ---------------------------------------------------

OBJECTIVES = ("skipgram", "cbow")
CONTEXT_WINDOW = 2  # the models' window, and the one the context counts use
# The probes: the words ranked 10 to 209 by frequency (the ten commonest, "the", "a", "is", ...,
# sit in every context); their 5 nearest neighbours by the vectors' cosine.
PROBES, NEIGHBOUR_COUNT = range(10, 210), 5
# ci: 300 steps (measured after 200: skip-gram 0.42, CBOW 0.44 against 0.38 for any word; after
# 600: 0.48 and 0.51; load 17); full: the registry's 15 epochs.
W2V_BUDGETS = {
    "ci": {"max_steps": 300, "epochs": 15, "batch_size": 256},
    "full": {"max_steps": 0, "epochs": 15, "batch_size": 256},
}
SHARED_MARGIN = 0.03


def w2v_runs(budget: str) -> dict[str, TrainConfig]:
    window = {"window": CONTEXT_WINDOW}
    return {
        objective: engine_run(objective, "topics_words", W2V_BUDGETS[budget], window, lr=1e-2)
        for objective in OBJECTIVES
    }


def kept_words() -> list[str]:
    """The text's words with those outside the vocabulary dropped (the stream word2vec reads)."""
    kept = set(word_vocabulary())
    return [word for word in topics_words() if word in kept]


def context_counts(window: int) -> torch.Tensor:
    """(V, V): entry (v, u) counts the times u stands within `window` of v in the kept words."""
    index = {word: position for position, word in enumerate(word_vocabulary())}
    ids = torch.tensor([index[word] for word in kept_words()])
    counts = torch.zeros(len(index), len(index), dtype=torch.float64)
    ones = torch.ones(len(ids), dtype=torch.float64)
    for offset in range(1, window + 1):
        counts.index_put_((ids[:-offset], ids[offset:]), ones[offset:], accumulate=True)
        counts.index_put_((ids[offset:], ids[:-offset]), ones[offset:], accumulate=True)
    return counts


def judge_neighbours(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(NEIGHBOURS_LESSON, problems)
    # A dot product of two unit rows: the cosine similarity of the two words' contexts.
    profiles = torch.nn.functional.normalize(context_counts(CONTEXT_WINDOW), dim=1)
    probes = torch.tensor(list(PROBES))
    similarity = profiles[probes] @ profiles.T  # (P, V) context cosines
    others = torch.ones_like(similarity, dtype=torch.bool)
    others[torch.arange(len(probes)), probes] = False
    any_word = float(similarity[others].mean())
    vocabulary = word_vocabulary()
    shared, examples = {}, {}
    for objective, job in jobs.items():
        neighbours, _ = nearest_words(job.model_copy().vectors(), probes, NEIGHBOUR_COUNT)
        shared[objective] = float(similarity.gather(1, neighbours).mean())
        examples[objective] = {
            vocabulary[int(p)]: [vocabulary[int(q)] for q in row]
            for p, row in zip(probes[:5], neighbours[:5])
        }
    held = all(value > any_word + SHARED_MARGIN for value in shared.values())
    steps = jobs["skipgram"].snapshot().get("step", 0)
    return Outcome(
        NEIGHBOURS_LESSON.name,
        held=held,
        verdict=f"after {steps} steps each, the {NEIGHBOUR_COUNT} nearest neighbours of "
        f"{len(probes)} frequent words have contexts of cosine similarity "
        f"{shared['skipgram']:.3f} (skip-gram) and {shared['cbow']:.3f} (CBOW) with theirs, "
        f"against {any_word:.3f} for any other word: close vectors, shared contexts",
        measured={
            "context_similarity": {**shared, "any word": any_word},
            "neighbours": examples,
            "probes": len(probes),
            "steps": steps,
        },
        answer=max(shared, key=shared.get),
    )


NEIGHBOURS_LESSON = register(
    Lesson(
        name="word2vec_neighbours",
        title="word2vec: close vectors, shared contexts",
        claim="word2vec learns a vector per word from nothing but which words stand near it, so "
        "words whose vectors end up close are words used in similar contexts (the "
        "distributional hypothesis). Measured on the text itself: the contexts of a word's "
        "nearest neighbours overlap with its own more than the contexts of other words do, for "
        "skip-gram and for CBOW.",
        source="T. Mikolov, K. Chen, G. Corrado, J. Dean, Efficient estimation of word "
        "representations in vector space (arXiv:1301.3781, 2013); Z. Harris, Distributional "
        "structure (Word, 1954); D. Jurafsky and J. H. Martin, Speech and Language Processing "
        "(3rd ed. draft), ch. 6",
        prediction=Prediction(
            "choice",
            "Same text, window and steps: whose nearest neighbours share more of each word's "
            "contexts?",
            choices=OBJECTIVES,
        ),
        judge=judge_neighbours,
        runs=w2v_runs,
        setup={"arch": "skipgram", "dataset": "topics_words"},
        position=30,
    )
)
