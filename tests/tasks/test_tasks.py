"""Every registered architecture through its task: loss goes down on a fixed batch, snapshots hold
the documented keys and shapes, and the losses are what independent formulas give."""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix

from deeparch.engine.config import TrainConfig
from deeparch.engine.prepare import prepare
from deeparch.models import get_arch, list_archs
from deeparch.tasks import task_classes
from deeparch.tasks.base import evaluation_mode, l1_penalty
from deeparch.tasks.classify import classification_loss, predictions
from deeparch.tasks.gan import discriminator_loss, generator_loss

SAMPLES = 32
STEPS = 5


@functools.cache
def _untrained(arch: str):
    """One prepared job per architecture, shared by the tests that only read it."""
    return _prepared(arch)


def _prepared(arch: str, **overrides):
    config = TrainConfig(arch=arch, batch_size=SAMPLES, lr=1e-3, **overrides)
    prepared = prepare(config)
    batch = (prepared.x_train[:SAMPLES], prepared.y_train[:SAMPLES])
    val = (prepared.x_val[:SAMPLES], prepared.y_val[:SAMPLES])
    return prepared, batch, val


def _train_mode_losses(task, batch):
    """Loss terms in training mode (BatchNorm on batch statistics: its running averages are not
    settled after a few steps), with the same dropout masks and noise before and after."""
    torch.manual_seed(123)
    task.noise.manual_seed(0)
    with torch.no_grad():
        return {k: float(v) for k, v in task.loss_terms(*batch).items()}


@pytest.mark.parametrize("arch", list_archs())
def test_a_few_steps_on_one_batch_lower_the_loss(arch):
    prepared, batch, _ = _prepared(arch)
    task = prepared.task
    term = "d_loss" if prepared.task_name == "gan" else "loss"  # D learns first on a fixed batch
    before = _train_mode_losses(task, batch)[term]
    for step in range(STEPS):
        torch.manual_seed(step)
        task.noise.manual_seed(step)
        losses = task.train_step(batch)
        assert all(math.isfinite(v) for v in losses.values()), losses
    after = _train_mode_losses(task, batch)[term]
    assert after < before, (before, after)
    assert all(torch.isfinite(p).all() for p in task.model.parameters())


@pytest.mark.parametrize("arch", list_archs())
def test_outputs_have_the_documented_shapes(arch):
    prepared, (x, y), _ = _untrained(arch)
    model, task_name, info = prepared.model, prepared.task_name, prepared.info
    with evaluation_mode(model):
        if task_name in ("classify", "sequence"):
            logits = model(x)
            assert logits.shape in ((SAMPLES, info.num_classes), (SAMPLES, 1))
        elif task_name in ("reconstruct", "denoise"):
            assert model(x).shape == x.shape
        elif task_name == "forecast":
            assert model(x).shape == y.shape == x.shape
        elif task_name in ("language_model", "seq2seq"):
            assert model(x).shape == (*y.shape, info.num_classes)
        elif task_name == "word2vec":
            assert model(x).shape == (SAMPLES, info.vocab_size)
        elif task_name == "vae":
            recon, mu, logvar = model(x)
            assert recon.shape == x.shape
            assert mu.shape == logvar.shape == (SAMPLES, model.latent_dim)
        else:
            z = model.sample_noise(SAMPLES)
            fake = model.generator(z, y) if model.conditional else model.generator(z)
            assert fake.shape == x.shape
            assert fake.min() >= -1 and fake.max() <= 1


def check_forecast_snapshot(task, snap, x, y):
    horizon = task.settings.horizon
    assert horizon == task.model.horizon  # the task's setting comes from the arch config
    np.testing.assert_array_equal(snap["series"], x[:8, :, 0].numpy())
    assert snap["forecast"].shape == (8, horizon)
    with evaluation_mode(task.model):
        rolled = task.model.rollout(x[:8, :-horizon], horizon)[:, :, 0].numpy()
        one_step = task.model(x[:8])[:, :, 0].numpy()
    np.testing.assert_allclose(snap["forecast"], rolled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(snap["one_step"], one_step, rtol=1e-5, atol=1e-6)
    naive = ((x[:, -horizon - 1 : -horizon] - x[:, -horizon:]) ** 2).mean(dim=(0, 2)).numpy()
    np.testing.assert_allclose(snap["naive_horizon_mse"], naive, rtol=1e-5)


def check_language_snapshot(task, snap, x, y):
    from deeparch.tasks.language import PROMPT_LENGTH, SAMPLE_LENGTH, SAMPLE_PROMPTS

    np.testing.assert_array_equal(snap["prompts"], x[:SAMPLE_PROMPTS, :PROMPT_LENGTH].numpy())
    assert snap["samples"].shape == (SAMPLE_PROMPTS, SAMPLE_LENGTH)
    assert 0 <= snap["samples"].min() and snap["samples"].max() < task.info.num_classes
    # the same draws for the same weights: a second snapshot writes the same text
    np.testing.assert_array_equal(task.snapshot(x, y)["samples"], snap["samples"])


def check_seq2seq_snapshot(task, snap, x, y):
    with evaluation_mode(task.model):
        decoded = task.model(x).argmax(dim=2)
    correct = (decoded == y).float()
    np.testing.assert_allclose(snap["position_accuracy"], correct.mean(0).numpy())
    assert snap["sequence_accuracy"] == pytest.approx(float(correct.all(1).float().mean()))
    np.testing.assert_array_equal(snap["outputs"], decoded[:8].numpy())
    np.testing.assert_array_equal(snap["targets"], y[:8].numpy())


def check_word2vec_snapshot(task, snap, x, y):
    vectors = task.model.vectors()
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    for probe, neighbours in zip(snap["probe_ids"], snap["neighbour_ids"], strict=True):
        similarity = (unit @ unit[probe]).numpy()
        similarity[probe] = -np.inf
        np.testing.assert_array_equal(neighbours, np.argsort(-similarity, kind="stable")[:5])
    assert snap["map_xy"].shape == (200, 2)
    # PCA's first axis carries at least as much variance as the second
    assert snap["map_xy"][:, 0].var() >= snap["map_xy"][:, 1].var()


SEQUENCE_OUTPUT_TASKS = {
    "forecast": check_forecast_snapshot,
    "language_model": check_language_snapshot,
    "seq2seq": check_seq2seq_snapshot,
    "word2vec": check_word2vec_snapshot,
}


@pytest.mark.parametrize("arch", list_archs())
def test_snapshots_hold_the_documented_keys_and_shapes(arch):
    prepared, _, (x, y) = _untrained(arch)
    task, info = prepared.task, prepared.info
    model_was_training = task.model.training
    snap = task.snapshot(x, y)
    assert task.model.training == model_was_training  # the mode is restored
    n_shown = 8
    sample_shape = tuple(x.shape[1:])
    name = prepared.task_name
    if name in ("classify", "sequence"):
        k = info.num_classes
        assert snap["confusion"].shape == (k, k) and snap["confusion"].sum() == SAMPLES
        with evaluation_mode(task.model):
            pred = predictions(task.model(x)).numpy()
        np.testing.assert_array_equal(
            snap["confusion"], confusion_matrix(y.numpy(), pred, labels=list(range(k)))
        )
        assert snap["val_accuracy"] == pytest.approx(np.trace(snap["confusion"]) / SAMPLES)
        wrong = snap["misclassified"]
        m = min(n_shown, int((pred != y.numpy()).sum()))
        assert wrong["inputs"].shape == (m, *sample_shape)
        assert wrong["true"].shape == wrong["pred"].shape == (m,)
        assert (wrong["true"] != wrong["pred"]).all()
        cells = snap["cell_examples"]  # (K, K, 8): the first examples of each cell, -1 after
        assert cells.shape == (k, k, 8)
        np.testing.assert_array_equal((cells >= 0).sum(axis=2), np.minimum(snap["confusion"], 8))
        for true_class, predicted in zip(*np.nonzero(snap["confusion"])):
            expected = np.nonzero((y.numpy() == true_class) & (pred == predicted))[0][:8]
            shown = cells[true_class, predicted]
            np.testing.assert_array_equal(shown[shown >= 0], expected)
    if name == "sequence":
        steps = x.shape[1]
        assert snap["grad_norm_per_step"].shape == (steps,)
        assert (snap["grad_norm_per_step"] >= 0).all()
        assert snap["hidden_trace"].ndim == 2 and snap["hidden_trace"].shape[0] == steps
    if name in ("reconstruct", "denoise"):
        for key in ("originals", "inputs", "reconstructions"):
            assert snap[key].shape == (n_shown, *sample_shape), key
        np.testing.assert_array_equal(snap["originals"], x[:n_shown].numpy())
        if float(getattr(task.model, "noise_std", 0.0)) == 0:
            np.testing.assert_array_equal(snap["inputs"], snap["originals"])
        else:
            assert not np.array_equal(snap["inputs"], snap["originals"])
    if name == "vae":
        assert snap["latent_means"].shape == (SAMPLES, task.model.latent_dim)
        np.testing.assert_array_equal(snap["labels"], y.numpy())
        assert snap["samples"].shape == (16, *sample_shape)
        assert snap["samples"].min() >= 0 and snap["samples"].max() <= 1
    if name == "gan":
        assert snap["grid"].shape == (20, *sample_shape)  # two rows of ten
        assert snap["grid"].min() >= 0 and snap["grid"].max() <= 1
        assert 0 <= snap["d_real"] <= 1 and 0 <= snap["d_fake"] <= 1
        # the grid comes from fixed noise: a second snapshot of the same weights is identical
        np.testing.assert_array_equal(task.snapshot(x, y)["grid"], snap["grid"])
    if name in SEQUENCE_OUTPUT_TASKS:
        SEQUENCE_OUTPUT_TASKS[name](task, snap, x, y)
    for value in snap.values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all()


def test_evaluate_restores_the_mode_and_averages_over_samples():
    prepared, _, _ = _prepared("mlp", arch_config={"hidden_sizes": (16,), "dropout": 0.5})
    task, x, y = prepared.task, prepared.x_val, prepared.y_val
    task.model.train()
    metrics = task.evaluate(x, y)
    assert task.model.training
    with torch.no_grad():
        task.model.eval()
        logits = task.model(x)
    assert metrics["val_loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert metrics["val_accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_losses_match_their_formulas():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 0])
    expected = -(math.log(math.e**2 / (math.e**2 + 1)) + math.log(1 / (1 + math.e))) / 2
    assert float(classification_loss(logits, targets)) == pytest.approx(expected)
    single = torch.tensor([[0.0], [2.0]])  # one logit: binary logistic regression
    expected_bce = -(math.log(0.5) + math.log(1 / (1 + math.e**-2))) / 2
    assert float(classification_loss(single, torch.tensor([1, 1]))) == pytest.approx(expected_bce)
    assert predictions(single).tolist() == [0, 1]
    d = discriminator_loss(torch.tensor([0.0]), torch.tensor([0.0]))
    assert float(d) == pytest.approx(2 * math.log(2))  # D(x) = D(G(z)) = 1/2
    assert float(generator_loss(torch.tensor([0.0]))) == pytest.approx(math.log(2))
    weights = [
        torch.nn.Parameter(torch.tensor([[1.0, -2.0]])),
        torch.nn.Parameter(torch.ones(2, 2)),
    ]
    assert float(l1_penalty(weights).detach()) == 7.0


def test_l1_is_reported_as_its_own_term():
    prepared, batch, _ = _prepared("mlp", arch_config={"hidden_sizes": (16,)}, l1=1e-3)
    weights = [p for p in prepared.model.parameters() if p.dim() > 1]  # no biases
    expected = 1e-3 * sum(float(p.detach().abs().sum()) for p in weights)
    losses = prepared.task.train_step(batch)  # reports the penalty before its update
    assert set(losses) == {"loss", "cross_entropy", "l1"}
    assert losses["l1"] == pytest.approx(expected, rel=1e-5)
    assert losses["loss"] == pytest.approx(losses["cross_entropy"] + losses["l1"], rel=1e-5)


def test_every_registered_task_is_known():
    assert {get_arch(a).task for a in list_archs()} <= set(task_classes())
