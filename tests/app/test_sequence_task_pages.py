"""The sequence-task pages under AppTest (forecasting, language model, encoder-decoder,
surnames, word embeddings), each on a short real training run of its kind."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from deeparch.data import dataset_info
from tests.app.test_explore_pages import chart, new_owner, open_page, trained_job


def values(field) -> np.ndarray:
    """A plotly array field: a list, or numpy's bytes in base64 (plotly 6 encodes arrays)."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
    return np.asarray(field)


PAGES = [
    ("pages/forecast.py", "forecaster", "sines"),
    ("pages/language.py", "char_lm", "topics_chars"),
    ("pages/transduction.py", "seq2seq", "reverse_digits"),
    ("pages/names.py", "lstm", "surnames"),
    ("pages/words.py", "skipgram", "topics_words"),
]


@pytest.mark.parametrize("page,arch,dataset", PAGES)
def test_an_empty_session_offers_the_starter_model(page, arch, dataset):
    at = open_page(page, new_owner())
    start = next(b for b in at.button if b.key.endswith("_start"))
    assert arch in start.label and dataset in start.label


def test_forecast_page_draws_truth_and_forecast_over_the_horizon():
    owner = new_owner()
    job = trained_job(owner, arch="forecaster", dataset="sines", max_steps=4, snapshot_every=2,
                      arch_config={"hidden_size": 8, "horizon": 10})  # fmt: skip
    at = open_page("pages/forecast.py", owner)
    figure = chart(at, "fc_forecast")
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["truth", "one step ahead", "forecast (10 steps)"]
    shown = job.latest_snapshot()
    np.testing.assert_allclose(values(figure["data"][2]["y"]), shown["forecast"][0], rtol=1e-5)
    assert chart(at, "fc_horizon")["data"][0]["name"] == "model"
    at.slider(key="fc_index").set_value(3).run()
    assert not at.exception


def test_language_page_prints_samples_and_writes_at_a_temperature():
    owner = new_owner()
    trained_job(owner, arch="char_lm", dataset="topics_chars", max_steps=3, snapshot_every=2,
                arch_config={"hidden_size": 16})  # fmt: skip
    at = open_page("pages/language.py", owner)
    assert len(at.code) >= 2  # a sample per snapshot shown, and the written text
    written = at.code[-1].value
    assert written.startswith("The list ") and len(written) == len("The list ") + 200
    at.slider(key="lm_temperature").set_value(0.0).run()
    greedy = at.code[-1].value
    at.number_input(key="lm_seed").set_value(5).run()
    assert at.code[-1].value == greedy  # temperature 0: no randomness
    at.text_input(key="lm_prompt").set_value("caf\u00e9").run()
    assert any("prompt" in e.value and "alphabet" in e.value for e in at.error)


def test_transduction_page_shows_accuracy_per_position_and_a_typed_string():
    owner = new_owner()
    trained_job(owner, arch="seq2seq", dataset="reverse_digits", max_steps=3, snapshot_every=2,
                arch_config={"hidden_size": 8})  # fmt: skip
    at = open_page("pages/transduction.py", owner)
    bars = chart(at, "s2s_positions")["data"][0]
    assert bars["x"] == [str(i) for i in range(1, 9)]
    at.text_input(key="s2s_digits").set_value("12ab").run()
    assert any("digits" in e.value and "exactly 8 digits" in e.value for e in at.error)


def test_names_page_reads_a_typed_name_letter_by_letter():
    owner = new_owner()
    trained_job(owner, arch="gru", dataset="surnames", max_steps=3, snapshot_every=2,
                arch_config={"hidden_size": 8, "token_input": "one_hot"})  # fmt: skip
    at = open_page("pages/names.py", owner)
    heatmap = chart(at, "nm_prefixes")["data"][0]
    assert heatmap["y"] == list(dataset_info("surnames").class_names)
    assert len(heatmap["x"]) == len("baker")
    at.text_input(key="nm_name").set_value("O'Brien-Smith").run()
    assert len(chart(at, "nm_prefixes")["data"][0]["x"]) == len("o'brien-smith")
    at.text_input(key="nm_name").set_value("<b>x</b>").run()
    assert any("name" in e.value and "not a letter" in e.value for e in at.error)


def test_words_page_tabulates_pairs_and_finds_neighbours():
    owner = new_owner()
    trained_job(owner, arch="skipgram", dataset="topics_words", max_steps=3, snapshot_every=2)
    at = open_page("pages/words.py", owner)
    at.text_input(key="w2v_sentence").set_value("a b c d").run()
    at.slider(key="w2v_window").set_value(1).run()
    # in page order: skip-gram pairs, CBOW pairs, the typed word's neighbours, the probes
    skipgram, cbow = at.dataframe[0].value, at.dataframe[1].value
    assert list(zip(skipgram["input"], skipgram["context"])) == [
        ("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("c", "d"), ("d", "c")
    ]  # fmt: skip
    assert list(cbow["target"]) == ["a", "b", "c", "d"] and cbow["context"][1] == "a c"
    neighbours = at.dataframe[2].value
    assert len(neighbours) == 8 and "list" not in list(neighbours["neighbour"])
    assert len(chart(at, "w2v_map")["data"][0]["text"]) == 200
    at.text_input(key="w2v_word").set_value("zzzzq").run()
    assert any("word" in e.value and "most frequent words" in e.value for e in at.error)
