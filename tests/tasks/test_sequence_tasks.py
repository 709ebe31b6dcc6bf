"""The tasks beyond many-to-one, each architecture of them through a checkpoint and back; the
surname classifier against the majority class; skip-gram's neighbours for a fixed seed."""

import pytest
import torch

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.engine.prepare import prepare
from deeparch.models import get_arch, list_archs
from deeparch.models.word2vec import nearest_words
from deeparch.tasks.base import evaluation_mode

NEW_TASKS = ("forecast", "language_model", "seq2seq", "word2vec")
NEW_ARCHS = [name for name in list_archs() if get_arch(name).task in NEW_TASKS]
WAIT_S = 300
SMALL = {"hidden_size": 8}  # the word2vec models have no hidden_size


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models


def small_config(arch: str, arch_config: dict | None = None, **overrides) -> TrainConfig:
    fields = {f.name for f in get_arch(arch).fields()}
    small = {k: v for k, v in SMALL.items() if k in fields}
    return TrainConfig(arch=arch, arch_config={**small, **(arch_config or {})}, batch_size=16,
                       **overrides)  # fmt: skip


def test_every_new_task_has_an_architecture():
    assert {get_arch(name).task for name in NEW_ARCHS} == set(NEW_TASKS)


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_a_checkpoint_gives_back_the_same_model_and_metrics(arch, tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(small_config(arch, max_steps=3, snapshot_every=2))
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    path = job.save_checkpoint(tmp_path)
    loaded = manager.load_checkpoint(path)
    x = load_dataset(get_arch(arch).default_dataset).x_val[:4]
    with torch.no_grad():
        torch.testing.assert_close(loaded.model_copy()(x), job.model_copy()(x))
    assert loaded.snapshot()["final_metrics"] == job.snapshot()["final_metrics"]
    assert loaded.latest_snapshot().keys() >= job.latest_snapshot().keys() - {"step"}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "qrnn", "tcn"])
@pytest.mark.parametrize("arch", ["forecaster", "char_lm", "seq2seq"])
def test_every_cell_plugs_into_every_sequence_task(arch, cell):
    prepared = prepare(small_config(arch, arch_config={"cell": cell}))
    model = prepared.model
    cells = [m for m in model.modules() if type(m).__name__ == "CellStack"]
    assert cells and all(stack.cell == cell for stack in cells)
    x, y = prepared.x_train[:8], prepared.y_train[:8]
    before = float(prepared.task.loss_terms(x, y)["loss"].detach())
    for _ in range(5):
        prepared.task.train_step((x, y))
    assert float(prepared.task.loss_terms(x, y)["loss"].detach()) < before


@pytest.mark.parametrize("arch", ["forecaster", "char_lm"])
def test_outputs_at_a_step_depend_on_earlier_steps_only(arch):
    # Causal: changing the input after step t leaves the outputs up to t alone.
    prepared = prepare(small_config(arch))
    x = prepared.x_val[:2].clone()
    with evaluation_mode(prepared.model):
        before = prepared.model(x)
        x[:, 40:] = x[:, 40:].flip(0) if x.dtype == torch.long else x[:, 40:] + 1.0
        after = prepared.model(x)
    torch.testing.assert_close(after[:, :40], before[:, :40])
    assert not torch.allclose(after[:, 41:], before[:, 41:])


def test_the_summary_vector_is_all_the_decoder_knows_of_the_input():
    prepared = prepare(small_config("seq2seq"))
    model, x, y = prepared.model, prepared.x_val[:4], prepared.y_val[:4]
    with evaluation_mode(model):
        summary = model.summary(x)
        assert summary.shape == (4, 8)
        previous = torch.cat([model.start(4, x.device), y[:, :-1]], dim=1)
        torch.testing.assert_close(model.decode(summary, previous), model.teacher_forced(x, y))


def test_temperature_zero_generates_the_most_likely_character_each_time():
    prepared = prepare(small_config("char_lm"))
    model, prompt = prepared.model, prepared.x_val[:2, :10]
    generator = torch.Generator().manual_seed(0)
    with evaluation_mode(model):
        text = model.generate(prompt, 5, 0.0, generator)
        sequence = prompt
        for index in range(5):
            chosen = model(sequence)[:, -1].argmax(dim=1)
            assert torch.equal(text[:, index], chosen)
            sequence = torch.cat([sequence, chosen[:, None]], dim=1)


def majority_share(labels: torch.Tensor) -> float:
    return float(torch.bincount(labels).max()) / len(labels)


def test_the_surname_classifier_at_its_defaults_beats_the_majority_class():
    # The lstm's defaults with its recommended lr, a step budget of a few epochs' worth.
    spec = get_arch("lstm")
    config = TrainConfig(arch="lstm", dataset="surnames", max_steps=400, **spec.train_defaults)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    data = load_dataset("surnames")
    with torch.no_grad():
        predicted = job.model_copy()(data.x_val).argmax(dim=1)
    accuracy = float((predicted == data.y_val).float().mean())
    majority = majority_share(data.y_val)
    assert 0.25 < majority < 0.35  # Irish is the largest list
    assert accuracy > majority + 0.2, (accuracy, majority)


@pytest.mark.parametrize("token_input", ["embedding", "one_hot"])
def test_surnames_read_as_one_hot_vectors_or_through_an_embedding(token_input):
    prepared = prepare(
        TrainConfig(arch="gru", dataset="surnames", arch_config={"token_input": token_input})
    )
    model, x = prepared.model, prepared.x_val[:3]
    embedded = model.embed(x)
    if token_input == "one_hot":
        assert model.embedding is None and embedded.shape == (3, 20, prepared.info.vocab_size)
        assert torch.equal(embedded.argmax(dim=2), x) and torch.equal(
            embedded.sum(2), torch.ones(3, 20)
        )
    else:
        assert embedded.shape == (3, 20, model.embedding.embedding_dim)
        torch.testing.assert_close(embedded, model.embedding.weight[x])


PROBES = ("list", "function", "string", "class")


def skipgram_neighbours(seed: int) -> list[list[str]]:
    config = TrainConfig(arch="skipgram", seed=seed, max_steps=150, batch_size=256, lr=1e-2)
    prepared = prepare(config)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    vocabulary = prepared.info.class_names
    ids = torch.tensor([vocabulary.index(word) for word in PROBES])
    neighbours, _ = nearest_words(job.model_copy().vectors(), ids, 5)
    return [[vocabulary[i] for i in row] for row in neighbours.tolist()]


def test_skipgram_neighbours_are_the_same_for_the_same_seed_and_differ_for_another():
    first, again, other = skipgram_neighbours(0), skipgram_neighbours(0), skipgram_neighbours(1)
    assert first == again
    assert first != other
    assert all(len(set(row)) == 5 and probe not in row for probe, row in zip(PROBES, first))
