"""The text lessons' own measures: the pair-count formula, loop detection, entropy, the surname
letters read back."""

import collections
import math

import numpy as np
import pytest
import torch

from deeparch.data.language import encode_surname, skipgram_pairs, word_vocabulary
from deeparch.lessons.measure import seeded_model
from deeparch.lessons.words import (
    context_counts,
    decode_surname,
    entropy_bits,
    kept_words,
    prefix_probabilities,
    shortest_period,
    skipgram_pair_count,
)


@pytest.mark.parametrize("words", [0, 1, 2, 4, 7, 11, 30])
@pytest.mark.parametrize("window", [1, 2, 4, 6])
def test_the_pair_formula_counts_what_skipgram_makes(words, window):
    sentence = [f"w{i}" for i in range(words)]
    # Independently: each word's neighbours to the left and to the right within the window.
    by_hand = sum(min(i, window) + min(words - 1 - i, window) for i in range(words))
    assert len(skipgram_pairs(sentence, window)) == skipgram_pair_count(words, window) == by_hand


def test_a_loop_has_its_period_and_a_varied_text_none():
    assert shortest_period([1, 2, 3, 4] * 40) == 4
    assert shortest_period([7] * 150) == 1
    assert shortest_period(list(range(150))) is None


def test_entropy_of_character_frequencies():
    assert entropy_bits([5] * 10) == 0.0
    assert entropy_bits([0, 1, 2, 3] * 8) == pytest.approx(2.0)
    assert entropy_bits([0, 0, 0, 1]) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    )


@pytest.mark.parametrize("name", ["o'brien", "müller", "van der berg", "a"])
def test_a_surname_reads_back_from_its_tokens(name):
    assert decode_surname(torch.from_numpy(encode_surname(name))) == name


def test_a_prefix_probability_per_letter_and_language():
    model = seeded_model("gru", None, "surnames", seed=0)
    probabilities = prefix_probabilities(model, "novak")
    assert probabilities.shape == (5, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The last prefix is the whole name: the same as classifying it directly.
    with torch.no_grad():
        whole = torch.softmax(model(torch.from_numpy(encode_surname("novak"))[None]), dim=1)
    assert np.allclose(probabilities[-1], whole[0].numpy(), atol=1e-6)


def test_context_counts_are_the_skipgram_pairs_of_the_text():
    pairs = collections.Counter(skipgram_pairs(kept_words(), 2))
    counts = context_counts(2)
    index = {word: position for position, word in enumerate(word_vocabulary())}
    assert counts.sum() == sum(pairs.values())
    assert torch.equal(counts, counts.T)  # u near v is v near u
    for (word, other), count in list(pairs.items())[:200]:
        assert counts[index[word], index[other]] == count
