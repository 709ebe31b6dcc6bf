"""The sequence-task datasets: offline sources, deterministic by seed, split as documented."""

from __future__ import annotations

import collections
import importlib

import numpy as np
import pytest
import torch

from deeparch.data import language, synthetic
from deeparch.data.catalogue import clear_cache, dataset_info, load_dataset
from deeparch.data.sources import stratified_split

NEW_SETS = ["surnames", "sines", "topics_chars", "topics_words", "reverse_digits", "sort_digits"]


@pytest.fixture(autouse=True)
def _private_cache_dir(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("name", NEW_SETS)
def test_shapes_dtypes_and_labels_match_the_static_info(name):
    data, info = load_dataset(name), dataset_info(name)
    assert tuple(data.x_train.shape[1:]) == info.input_shape == tuple(data.x_val.shape[1:])
    assert tuple(data.y_train.shape[1:]) == info.target_shape
    assert data.num_train > 3 * data.num_val > 0
    if info.kind == "series":
        assert data.x_train.dtype == data.y_train.dtype == torch.float32
    else:
        assert data.x_train.dtype == torch.int64
        assert 0 <= int(data.x_train.min()) and int(data.x_train.max()) < info.vocab_size
        assert int(data.y_train.max()) < info.num_classes


@pytest.mark.parametrize("name", NEW_SETS)
def test_the_same_seed_gives_the_same_sets_and_another_seed_another_split(name):
    clear_cache()
    first = load_dataset(name, seed=3)
    clear_cache()
    again = load_dataset(name, seed=3)
    other = load_dataset(name, seed=4)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_val, again.y_val)
    assert not torch.equal(first.x_val, other.x_val)


@pytest.mark.parametrize("name", ["sines", "topics_chars"])
def test_the_target_is_the_next_step(name):
    data = load_dataset(name)
    assert torch.equal(data.y_train[:, :-1], data.x_train[:, 1:])


def test_the_sines_are_sums_of_sines_with_trend_and_the_given_noise():
    clean = synthetic.sines_with_trend(200, 64, 0.0, seed=0)
    noisy = synthetic.sines_with_trend(200, 64, 0.3, seed=0)
    assert np.abs(clean).max() <= 3.0 + 1.0  # three sines of amplitude <= 1, trend <= 1
    assert np.std(noisy - clean) == pytest.approx(0.3, rel=0.05)  # the same sines, plus noise


def test_digit_strings_are_reversed_or_sorted():
    reverse, sort = load_dataset("reverse_digits"), load_dataset("sort_digits")
    assert torch.equal(reverse.y_train, reverse.x_train.flip(1))
    assert torch.equal(sort.y_train, sort.x_train.sort(dim=1).values)
    assert torch.equal(reverse.x_train, sort.x_train)  # the same strings, two tasks


def test_the_text_comes_from_pydoc_data_in_ascii():
    from pydoc_data.topics import topics

    text = language.topics_text()
    assert 400_000 < len(text) < 600_000
    assert set(text) <= set(language.CHARACTERS)
    assert topics["assert"].replace("\u2019", "'")[:200] in text
    ids = language.encode_characters("print(x)\n")
    assert language.decode_characters(ids) == "print(x)\n"
    data = load_dataset("topics_chars")
    assert language.decode_characters(data.x_train[0]) in text


def test_the_word_vocabulary_is_the_most_frequent_words():
    words = language.topics_words()
    assert 60_000 < len(words) < 70_000
    counts = collections.Counter(words)
    vocabulary = language.word_vocabulary()
    assert len(vocabulary) == 1000 and vocabulary[0] == "the"
    assert min(counts[w] for w in vocabulary) >= max(
        counts[w] for w in counts if w not in vocabulary
    )  # nothing left out is more frequent than something kept
    data = load_dataset("topics_words")
    assert torch.equal(data.x_train[:, language.WORD_WINDOW], data.y_train)


def test_skipgram_and_cbow_pairs_as_the_course_tabulates_them():
    sentence = "the quick brown fox jumps".split()
    assert language.skipgram_pairs(sentence, 1)[:4] == [
        ("the", "quick"), ("quick", "the"), ("quick", "brown"), ("brown", "quick"),
    ]  # fmt: skip
    assert len(language.skipgram_pairs(sentence, 2)) == 2 + 3 + 4 + 3 + 2
    assert language.cbow_pairs(sentence, 2)[2] == (("the", "quick", "fox", "jumps"), "brown")
    assert language.cbow_pairs(sentence, 2)[0] == (("quick", "brown"), "the")
    windows = language.context_windows(np.arange(7), 2)
    assert windows.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]]


def test_surnames_come_from_faker_deduplicated_with_unambiguous_labels():
    names, labels = language.surnames()
    assert len(language.SURNAME_LANGUAGES) >= 8
    assert len(set(names)) == len(names) == len(labels)
    assert np.bincount(labels).min() >= 150  # every language well represented
    per_language = {
        label: {n.strip().lower() for n in importlib.import_module(
            f"faker.providers.person.{locale}").Provider.last_names}
        for label, locale in enumerate(language.SURNAME_LOCALES.values())
    }  # fmt: skip
    for name, label in zip(names[::97], labels[::97], strict=True):
        assert name in per_language[label]
        assert all(name not in per_language[other] for other in per_language if other != label)
    assert all(set(name) <= set(language.SURNAME_ALPHABET) for name in names)


def test_surnames_are_left_padded_and_split_stratified():
    assert language.encode_surname("Abe").tolist()[-4:] == [
        language.PAD, language.SURNAME_INDEX["a"], language.SURNAME_INDEX["b"],
        language.SURNAME_INDEX["e"],
    ]  # fmt: skip
    assert language.encode_surname("øy")[-2] == language.UNKNOWN
    data = load_dataset("surnames")
    train_share = np.bincount(data.y_train.numpy()) / data.num_train
    val_share = np.bincount(data.y_val.numpy()) / data.num_val
    np.testing.assert_allclose(train_share, val_share, atol=0.005)
    _names, labels = language.surnames()
    train, val = stratified_split(labels, 0.2, 0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
