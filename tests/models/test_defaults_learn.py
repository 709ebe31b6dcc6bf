"""Every architecture's one-click defaults learn what the architecture is for, within a budget.

Each registered architecture trains its one-click config (the registry's defaults, its
train_defaults and its default dataset: what one click on Train starts), cut to a step budget
where TEST_STEPS names one, and is then measured here from the trained weights, against a
baseline computed here: classifiers beat guessing the most common class by a margin,
reconstructions beat drawing the mean training image (a VAE: the best linear code of its latent
size, PCA), and a digit classifier trained on the real digits recognises a GAN's samples (as the
asked-for class, for a conditional GAN). The sequence tasks: a forecaster beats repeating the
last value, a language model and word2vec beat predicting from unigram frequencies, an
encoder-decoder beats guessing symbols and gets whole strings right.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from deeparch.bench.defaults import (
    BITS_PER_NAT,
    digit_judge,
    forecast_mse,
    greedy_accuracy,
    judge_gan_samples,
    last_value_mse,
    next_token_nats,
    one_click_config,
    pca_mse,
    unigram_cross_entropy,
    word2vec_nats,
    word2vec_targets,
)
from deeparch.data import load_dataset
from deeparch.engine.manager import JobManager
from deeparch.explore.views import starter_config
from deeparch.models import get_arch, list_archs

# Step budgets below the one-click run, each where its metric already shows (None: the whole
# one-click run). Budgets keep the file's training to a few minutes on two cores.
# The others train their whole one-click run (every figure of the README's table is one).
TEST_STEPS: dict[str, int] = {
    "mlp": 186,  # 3 of its 10 epochs: past 90% already
    "mlp_conv1d": 186,  # the same model as the mlp, as 1x1 convolutions
    "cnn": 62,  # 1 of 5 epochs
    "alexnet": 124,  # 2 of 3 epochs
}

ACCURACY_MARGIN = 0.25  # accuracy at least chance + this (chance: the most common class's share)
# The plainnet is there to fall behind the resnet of the same depth (the test of the gap below):
# it has to learn something, not as much (measured: 36% at its one click, the resnet 86%).
ACCURACY_MARGINS = {"plainnet": 0.1}
RESIDUAL_GAP = 0.25  # the one-click resnet's accuracy at least this above the plainnet's
MSE_RATIO = 0.7  # reconstruction error at most this share of the mean image's
# A VAE's against the best linear code of its latent size (PCA): a fair bar for conv_vae's two
# numbers, which PCA itself turns into 0.83 of the mean image's error (measured: conv_vae 0.87 of
# PCA's, the vae with 20 numbers 0.83).
VAE_PCA_RATIO = 0.93
GAN_RECOGNISED = 0.15  # share of samples the judge reads with confidence (real: 0.83, untrained: 0)
GAN_CLASSES = 8  # distinct digits among them (a collapsed generator draws one or two)
CGAN_AGREEMENT = 0.5  # share of a conditional GAN's samples read as the class asked for
FORECAST_RATIO = 0.5  # next-value error at most this share of repeating the last value's (0.42)
LM_BITS_MARGIN = 1.0  # bits per character at least this far below the unigram entropy
SEQ2SEQ_MARGIN = 0.25  # per-symbol accuracy at least chance (1 / vocabulary) + this
SEQ2SEQ_WHOLE = 0.1  # share of whole output strings right
WORD2VEC_NATS_MARGIN = 0.2  # nats per word below unigram frequencies (skipgram: 0.41, cbow: 1.3)
SLOW = {
    "alexnet", "dcgan", "mlp_gan", "cgan", "qrnn", "resnet", "plainnet", "squeezenet1_1",
    "mobilenet_v3_small",
}  # fmt: skip


@functools.cache
def trained(arch: str, **arch_config) -> tuple[torch.nn.Module, str]:
    """The weights and the dataset of an architecture's one-click run."""
    config = one_click_config(arch, max_steps=TEST_STEPS.get(arch, 0), arch_config=arch_config)
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    job.wait()
    assert job.state == "finished", job.snapshot()["reason"]
    return job.model_copy(), job.dataset


def archs():
    params = []
    for arch in list_archs():
        marks = [pytest.mark.slow] if arch in SLOW else []
        params.append(pytest.param(arch, marks=marks))
    return params


def test_the_digit_judge_reads_real_digits():
    _, accuracy = digit_judge()
    assert accuracy > 0.9


@pytest.mark.parametrize("arch", archs())
def test_one_click_defaults_learn_what_the_architecture_is_for(arch):
    model, dataset = trained(arch)
    task = get_arch(arch).task
    data = load_dataset(dataset)
    if task in ("classify", "sequence"):
        accuracy, chance = accuracy_and_chance(model, data)
        assert accuracy >= chance + ACCURACY_MARGINS.get(arch, ACCURACY_MARGIN), (accuracy, chance)
    elif task == "gan":
        check_gan(model)
    elif task in SEQUENCE_CHECKS:
        SEQUENCE_CHECKS[task](model, data)
    else:
        check_reconstruction(model, task, data)


@pytest.mark.slow
def test_the_plain_rnn_with_relu_learns_too():
    model, dataset = trained("rnn", nonlinearity="relu")
    accuracy, chance = accuracy_and_chance(model, load_dataset(dataset))
    assert accuracy >= chance + ACCURACY_MARGIN, (accuracy, chance)


@pytest.mark.slow
def test_the_one_click_resnet_beats_the_plain_net_of_the_same_depth():
    """Residual learning at one click: the same depth, widths, data, budget and seed; only the
    skips differ (He et al. 2016: the deeper plain net trains worse, the residual one does not)."""
    resnet, plainnet = one_click_config("resnet"), one_click_config("plainnet")
    assert dataclasses.replace(resnet, arch="plainnet") == plainnet
    convs = [m for m in trained("resnet")[0].modules() if isinstance(m, torch.nn.Conv2d)]
    depth = sum(conv.kernel_size == (3, 3) for conv in convs)
    assert depth == 37, depth  # deep enough to degrade: the stem, 3 stages of 6 blocks of two
    data = load_dataset(get_arch("resnet").default_dataset)
    residual, _ = accuracy_and_chance(trained("resnet")[0], data)
    plain, _ = accuracy_and_chance(trained("plainnet")[0], data)
    assert residual >= plain + RESIDUAL_GAP, (residual, plain)


def test_the_sequences_starter_is_the_lstms_one_click():
    """The Sequences page starts the lstm's one-click run, which the test above checks learns."""
    starter = starter_config("sequences")
    one_click = one_click_config("lstm", snapshot_every=starter.snapshot_every)
    assert starter.arch == "lstm" and starter.dataset == get_arch("lstm").default_dataset
    assert dataclasses.replace(starter, dataset=None) == one_click


def accuracy_and_chance(model, data) -> tuple[float, float]:
    """Validation accuracy, and that of always guessing the most common class."""
    with torch.no_grad():
        logits = model(data.x_val)
    predicted = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
    accuracy = float((predicted == data.y_val).float().mean())
    return accuracy, np.bincount(data.y_val.numpy()).max() / len(data.y_val)


def check_reconstruction(model, task, data) -> None:
    x_train, x_val = data.x_train.numpy(), data.x_val.numpy()
    mean_image_mse = np.mean((x_val - x_train.mean(axis=0)) ** 2)
    with torch.no_grad():
        if task == "denoise":
            # A denoiser is shown noisy inputs: it must beat the noise it was given, too.
            generator = torch.Generator().manual_seed(1)
            noise = torch.randn(data.x_val.shape, generator=generator) * model.noise_std
            noisy = data.x_val + noise
            if data.info.kind == "image":
                noisy = noisy.clamp(0, 1)
            output = model(noisy).numpy()
            noisy_mse = np.mean((noisy.numpy() - x_val) ** 2)
            assert np.mean((output - x_val) ** 2) < noisy_mse
        else:
            output = model(data.x_val)
            output = (output[0] if task == "vae" else output).numpy()
    mse = np.mean((output - x_val) ** 2)
    if task == "vae":
        linear = pca_mse(data.x_train, data.x_val, model.latent_dim)
        assert linear < mean_image_mse, (linear, mean_image_mse)
        assert mse <= VAE_PCA_RATIO * linear, (mse, linear)
    else:
        assert mse <= MSE_RATIO * mean_image_mse, (mse, mean_image_mse)


def check_gan(model) -> None:
    judged = judge_gan_samples(model)
    assert judged["recognised"] >= GAN_RECOGNISED, judged
    assert judged["classes"] >= GAN_CLASSES, judged
    if model.conditional:
        assert judged["agreement"] >= CGAN_AGREEMENT, judged


def check_forecast(model, data) -> None:
    """The next value after every step, against repeating the value just seen."""
    assert data.x_val.shape == data.y_val.shape and data.x_val.shape[2] == 1
    torch.testing.assert_close(data.y_val[:, :-1], data.x_val[:, 1:])  # y[t] = x[t + 1]
    mse, naive = forecast_mse(model, data.x_val, data.y_val), last_value_mse(data.x_val, data.y_val)
    assert mse <= FORECAST_RATIO * naive, (mse, naive)


def check_language_model(model, data) -> None:
    """Bits per character on validation text, against the unigram entropy of the characters
    (what a model that knows only how common each character is pays)."""
    vocab = data.info.num_classes
    bits = next_token_nats(model, data.x_val, data.y_val) * BITS_PER_NAT
    unigram = unigram_cross_entropy(data.y_train, data.y_val, vocab) * BITS_PER_NAT
    counts = np.bincount(data.y_val.numpy().ravel(), minlength=vocab)
    share = counts[counts > 0] / counts.sum()
    entropy = -(share * np.log2(share)).sum()  # the validation text's own entropy: a floor
    assert entropy - 0.1 <= unigram <= entropy + 0.1, (unigram, entropy)
    assert bits <= unigram - LM_BITS_MARGIN, (bits, unigram)


def check_seq2seq(model, data) -> None:
    """Greedy decoding's symbols right against guessing one of the vocabulary's at random, and
    some whole output strings right."""
    accuracy, whole = greedy_accuracy(model, data.x_val, data.y_val)
    chance = 1 / data.info.num_classes
    assert accuracy >= chance + SEQ2SEQ_MARGIN, (accuracy, chance)
    assert whole >= SEQ2SEQ_WHOLE, whole  # guessing gets 1e-8 of 8-symbol strings


def check_word2vec(model, data) -> None:
    """Nats per predicted word on validation windows, against predicting every word from the
    training split's word frequencies (which already beat a uniform guess over the vocabulary)."""
    vocab = data.info.num_classes
    nats = word2vec_nats(model, data.x_val)
    train, val = (word2vec_targets(model, x) for x in (data.x_train, data.x_val))
    unigram = unigram_cross_entropy(train, val, vocab)
    assert unigram < np.log(vocab), (unigram, np.log(vocab))  # frequencies beat a uniform guess
    assert nats <= unigram - WORD2VEC_NATS_MARGIN, (nats, unigram)


SEQUENCE_CHECKS = {
    "forecast": check_forecast,
    "language_model": check_language_model,
    "seq2seq": check_seq2seq,
    "word2vec": check_word2vec,
}
