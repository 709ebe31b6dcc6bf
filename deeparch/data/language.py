"""Language that ships offline: Python's own documentation text and Faker's surname lists.

- `pydoc_data.topics` (part of CPython, under the PSF licence) holds the help() topics: about
  465,000 characters and 64,000 words of English. It feeds the character-level language model
  (topics_chars) and word2vec (topics_words).
- Faker (MIT licence) ships surname lists per locale (`faker.providers.person.<locale>`); ten of
  them in Latin script make the surnames-by-language set, the course's character-RNN example.
"""

from __future__ import annotations

import collections
import functools
import importlib
import re
import string

import numpy as np

from deeparch.data.sources import Splits, seeded_split, split_arrays

# ---------------------------------------------------------------------------------------------
# The documentation text

# Typographic characters the text uses, written in ASCII so the alphabet stays printable ASCII.
ASCII_FOR = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
             "\u2014": "-", "\u2013": "-", "\u00df": "ss", "\u00b0": " degrees"}  # fmt: skip
# The character language model's alphabet: newline, then printable ASCII from space to "~".
CHARACTERS = ("\n", *(chr(code) for code in range(32, 127)))
CHAR_INDEX = {char: index for index, char in enumerate(CHARACTERS)}
TEXT_STEPS = 64  # characters a training sequence reads (and predicts, one step later)
WORD_PATTERN = re.compile(r"[a-z]+")
WORD_VOCABULARY = 1000  # the most frequent words kept; rarer ones are dropped from the stream
WORD_WINDOW = 5  # the widest context window on each side (Mikolov et al. 2013 use 5-10)


@functools.cache
def topics_text() -> str:
    """The help() topics joined in name order, tabs as spaces, other characters in ASCII."""
    from pydoc_data.topics import topics  # CPython's own; importing it reads a 0.5 MB dict

    text = "\n\n".join(topics[name] for name in sorted(topics)).replace("\t", "    ")
    for typographic, ascii_text in ASCII_FOR.items():
        text = text.replace(typographic, ascii_text)
    return "".join(char for char in text if char in CHAR_INDEX)


def encode_characters(text: str) -> np.ndarray:
    """Character ids (int64) of a text; characters outside the alphabet are dropped."""
    return np.array([CHAR_INDEX[char] for char in text if char in CHAR_INDEX], dtype=np.int64)


def decode_characters(ids: np.ndarray) -> str:
    return "".join(CHARACTERS[int(index)] for index in np.asarray(ids).reshape(-1))


def load_topics_chars(seed: int, val_fraction: float) -> Splits:
    """Non-overlapping chunks of TEXT_STEPS + 1 characters: x the first 64 ids, y the next 64
    (y[t] = x[t + 1]: every step predicts the character after it). int64 (N, 64) both."""
    ids = encode_characters(topics_text())
    chunk = TEXT_STEPS + 1
    count = (len(ids) - 1) // TEXT_STEPS
    starts = np.arange(count) * TEXT_STEPS  # consecutive chunks share their boundary character
    windows = ids[starts[:, None] + np.arange(chunk)]  # (N, 65)
    train, val = seeded_split(count, val_fraction, seed)
    x, y = windows[:, :-1], windows[:, 1:]
    return Splits(x[train], y[train], x[val], y[val])


@functools.cache
def topics_words() -> tuple[str, ...]:
    """The text's words, lowercase, in order."""
    return tuple(WORD_PATTERN.findall(topics_text().lower()))


@functools.cache
def word_vocabulary() -> tuple[str, ...]:
    """The WORD_VOCABULARY most frequent words, most frequent first (ties alphabetically)."""
    counts = collections.Counter(topics_words())
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return tuple(ranked[:WORD_VOCABULARY])


def context_windows(ids: np.ndarray, window: int) -> np.ndarray:
    """Every full window of 2 * window + 1 ids around each position: (N, 2w + 1), centre at w."""
    width = 2 * window + 1
    count = len(ids) - width + 1
    return ids[np.arange(count)[:, None] + np.arange(width)]


def skipgram_pairs(words: list[str], window: int) -> list[tuple[str, str]]:
    """(input, context) pairs of skip-gram: each word predicts each neighbour within `window`
    (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space")."""
    pairs = []
    for index, word in enumerate(words):
        for other in range(max(0, index - window), min(len(words), index + window + 1)):
            if other != index:
                pairs.append((word, words[other]))
    return pairs


def cbow_pairs(words: list[str], window: int) -> list[tuple[tuple[str, ...], str]]:
    """(context, target) pairs of CBOW: the neighbours within `window` together predict the word."""
    pairs = []
    for index, word in enumerate(words):
        left = words[max(0, index - window) : index]
        right = words[index + 1 : index + window + 1]
        pairs.append((tuple(left + right), word))
    return pairs


def load_topics_words(seed: int, val_fraction: float) -> Splits:
    """Windows of 2 * WORD_WINDOW + 1 word ids over the text with rare words dropped (int64
    (N, 11), the centre word in the middle) and the centre word as y (N,), split by a seeded
    shuffle (a word is its own class here: thousands of them, most too rare to stratify)."""
    index = {word: position for position, word in enumerate(word_vocabulary())}
    ids = np.array([index[word] for word in topics_words() if word in index], dtype=np.int64)
    windows = context_windows(ids, WORD_WINDOW)
    centres = windows[:, WORD_WINDOW].copy()
    train, val = seeded_split(len(windows), val_fraction, seed)
    return Splits(windows[train], centres[train], windows[val], centres[val])


# ---------------------------------------------------------------------------------------------
# Surnames by language (Faker's locale lists)

SURNAME_LOCALES = {
    "Czech": "cs_CZ", "Dutch": "nl_NL", "English": "en_US", "Finnish": "fi_FI",
    "French": "fr_FR", "German": "de_DE", "Irish": "ga_IE", "Italian": "it_IT",
    "Spanish": "es_ES", "Swedish": "sv_SE",
}  # fmt: skip
SURNAME_LANGUAGES = tuple(SURNAME_LOCALES)
# Every character of the ten lists, lowercase; a typed letter outside it reads as UNKNOWN.
SURNAME_ALPHABET = " ',-" + string.ascii_lowercase + "ßàáäåçèéêëìíîñòóöùúüýčěňřšťůž"
PAD, UNKNOWN = 0, 1  # token ids before the alphabet's
SURNAME_INDEX = {char: index + 2 for index, char in enumerate(SURNAME_ALPHABET)}
SURNAME_VOCAB = len(SURNAME_ALPHABET) + 2
SURNAME_STEPS = 20  # longer names (about 20 of 8,000) are left out


def locale_surnames(locale: str) -> list[str]:
    """One Faker locale's surnames, lowercase and stripped (some lists are weighted dicts)."""
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    return [str(name).strip().lower() for name in provider.last_names]


@functools.cache
def surnames() -> tuple[tuple[str, ...], np.ndarray]:
    """(names, language ids): each name once, sorted; a name that more than one language lists
    is left out (its label would be a coin toss), as are names over SURNAME_STEPS letters."""
    languages_of: dict[str, set[int]] = collections.defaultdict(set)
    for label, locale in enumerate(SURNAME_LOCALES.values()):
        for name in locale_surnames(locale):
            if 0 < len(name) <= SURNAME_STEPS:
                languages_of[name].add(label)
    names = sorted(name for name, labels in languages_of.items() if len(labels) == 1)
    labels = np.array([next(iter(languages_of[name])) for name in names], dtype=np.int64)
    return tuple(names), labels


def encode_surname(name: str) -> np.ndarray:
    """Token ids (SURNAME_STEPS,) of a name, padded on the left with PAD so that the last step
    always holds the last letter (a model's final state has just read it)."""
    letters = [SURNAME_INDEX.get(char, UNKNOWN) for char in name.lower()[:SURNAME_STEPS]]
    return np.array([PAD] * (SURNAME_STEPS - len(letters)) + letters, dtype=np.int64)


def load_surnames(seed: int, val_fraction: float) -> Splits:
    """Surnames as left-padded token ids int64 (N, 20) and language ids, split stratified."""
    names, labels = surnames()
    tokens = np.stack([encode_surname(name) for name in names])
    return split_arrays(tokens, labels, val_fraction, seed)
