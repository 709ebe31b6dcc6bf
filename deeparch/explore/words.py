"""word2vec as a student explores it: the training pairs of a sentence, a word's neighbours."""

from __future__ import annotations

import re

import torch
from torch import nn

from deeparch.data.language import WORD_PATTERN, cbow_pairs, skipgram_pairs
from deeparch.errors import ConfigError
from deeparch.models.word2vec import nearest_words

MAX_WORD_LENGTH = 30
MAX_SENTENCE_WORDS = 20
EXAMPLE_SENTENCE = "the list is a mutable sequence of objects"


def check_word(text: str, vocabulary: tuple[str, ...]) -> int:
    """The vocabulary id of a typed word; ConfigError naming the field otherwise."""
    word = str(text).strip().lower()
    if not re.fullmatch(f"[a-z]{{1,{MAX_WORD_LENGTH}}}", word):
        raise ConfigError("word", text, f"one word of 1 to {MAX_WORD_LENGTH} letters a-z")
    if word not in vocabulary:
        raise ConfigError(
            "word", text, f"one of the {len(vocabulary):,} most frequent words of the text",
            f"for example {', '.join(vocabulary[40:46])}",
        )  # fmt: skip
    return vocabulary.index(word)


def check_sentence(text: str) -> list[str]:
    """The words (a-z, lowercase) of a typed sentence, at least 2 and at most 20."""
    words = WORD_PATTERN.findall(str(text).lower()[: MAX_SENTENCE_WORDS * (MAX_WORD_LENGTH + 1)])
    if not 2 <= len(words) <= MAX_SENTENCE_WORDS:
        raise ConfigError(
            "sentence", text, f"2 to {MAX_SENTENCE_WORDS} words of letters a-z",
            f"it has {len(words)}",
        )  # fmt: skip
    return words


def pair_rows(words: list[str], window: int) -> tuple[list[dict], list[dict]]:
    """The course's two tables: skip-gram's (input, context) pairs and CBOW's (context, target)."""
    skipgram = [{"input": a, "context": b} for a, b in skipgram_pairs(words, window)]
    cbow = [{"context": " ".join(c), "target": t} for c, t in cbow_pairs(words, window)]
    return skipgram, cbow


def neighbours(model: nn.Module, vocabulary: tuple[str, ...], word_id: int, k: int = 8):
    """[(word, cosine similarity)] of the k nearest words to one word, nearest first."""
    ids, similarity = nearest_words(model.vectors().cpu(), torch.tensor([word_id]), k)
    return [(vocabulary[i], float(s)) for i, s in zip(ids[0].tolist(), similarity[0].tolist())]
