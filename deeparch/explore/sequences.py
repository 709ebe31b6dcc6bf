"""Sequence models side by side: hidden states over time, gradient per time step, training speed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deeparch.data import DataInfo, dataset_info, load_dataset
from deeparch.engine.manager import get_manager
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError
from deeparch.explore.views import train_on_random_batches
from deeparch.models import create_model
from deeparch.randomness import borrowed_global_generator, use_job_dropout
from deeparch.tasks import evaluation_mode

logger = logging.getLogger(__name__)

# The cell types compared: vanishing gradients (Bengio, Simard & Frasconi 1994; Pascanu et al.
# 2013), tanh vs relu, gating; speed (Bradbury et al. 2016 report QRNNs up to 16x faster on a GPU).
CELL_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn (tanh)": ("rnn", {"nonlinearity": "tanh"}),
    "rnn (relu)": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
    "qrnn": ("qrnn", {}),
    "tcn": ("tcn", {}),
}
SEQUENCE_DATASETS = ("mnist1d", "mnist_rows")

# Same cell, other initialisation: compared in the gradient plot only (its speed is the lstm's).
# PyTorch starts every gate bias near 0, so the forget gate f_t = sigmoid(...) is about 0.5 and
# the cell state c_t = f_t * c_(t-1) + ... halves per step back; Jozefowicz et al. 2015 ("An
# Empirical Exploration of Recurrent Network Architectures") initialise the forget bias to 1.
FORGET_BIAS = {"lstm (forget bias 1)": 1.0}
GRADIENT_VARIANTS = ("rnn (tanh)", "rnn (relu)", "lstm", *FORGET_BIAS, "gru", "qrnn", "tcn")

# A synthetic task whose label depends only on the first step: the sign of x_0, followed by 39
# noise values. A cell learns it only if the loss's gradient reaches t = 0.
REMEMBER_FIRST = "remember_first"
REMEMBER_FIRST_INFO = DataInfo(
    REMEMBER_FIRST,
    "sequence",
    (40, 1),
    2,
    ("x_0 < 0", "x_0 > 0"),
    description="40 values drawn from N(0, 1); the class is the sign of the first one",
)
REMEMBER_FIRST_SIZES = (4000, 512)  # training and validation sequences
GRADIENT_DATASETS = (REMEMBER_FIRST, *SEQUENCE_DATASETS)


@dataclass
class SpeedResult:
    """Training throughput of one cell type measured on this machine."""

    label: str
    parameters: int
    steps: int
    batch_size: int
    seconds: float
    samples_per_s: float
    torch_threads: int  # the CPU threads torch used: the app leaves one core to the browser
    concurrent_jobs: int = 0  # training jobs running meanwhile (they share the CPU)


def hidden_trace(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Hidden states of one sequence over time: x (T, F) or tokens (T,) -> (T, H)."""
    with evaluation_mode(model):
        _logits, hidden = model.classify_embedded(model.embed(x.unsqueeze(0)), return_hidden=True)
    return hidden[0].cpu().float().numpy()  # (1, T, H) -> (T, H)


def gradient_norm_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Mean over the batch of || d loss / d e[:, t] || for each time step t: (T,).

    e = model.embed(x) is the input the recurrence sees at step t; a plain RNN's norms shrink
    towards the first steps (vanishing gradient) while gated cells keep them up.
    """
    was_training = model.training
    model.eval()  # no dropout: the same example gives the same gradient
    try:
        embedded = model.embed(x).detach().requires_grad_(True)  # (N, T, E)
        logits = model.classify_embedded(embedded)
        # Summed (not averaged) over the batch so each example's gradient keeps its own scale.
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, embedded)
    finally:
        model.train(was_training)
    return grad.norm(dim=2).mean(dim=0).cpu().numpy()  # (N, T, E) -> (N, T) -> (T,)


def remember_first_data(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` sequences (size, 40, 1) of N(0, 1) noise and their labels: 1 where x_0 > 0."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, *REMEMBER_FIRST_INFO.input_shape, generator=generator)
    return x, (x[:, 0, 0] > 0).long()


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Make every forget gate's bias `value` (PyTorch adds bias_ih and bias_hh: ih gets it all).

    PyTorch stacks the gates' rows as input, forget, cell, output: forget is rows H to 2H.
    """
    size = lstm.hidden_size
    with torch.no_grad():
        for name, parameter in lstm.named_parameters():
            if name.startswith("bias_ih"):
                parameter[size : 2 * size] = value
            elif name.startswith("bias_hh"):
                parameter[size : 2 * size] = 0.0


def build_sequence_model(label: str, dataset: str | DataInfo, seed: int = 0) -> nn.Module:
    """A fresh model of one cell variant for a dataset (a name or its DataInfo), default sizes."""
    if label not in CELL_VARIANTS and label not in FORGET_BIAS:
        raise ConfigError("cell", label, "one of " + ", ".join(GRADIENT_VARIANTS))
    arch, overrides = CELL_VARIANTS.get(label, ("lstm", {}))
    info = dataset if isinstance(dataset, DataInfo) else dataset_info(dataset)
    with borrowed_global_generator(seed):  # initial weights from the seed alone
        model, _config = create_model(arch, overrides, info)
    use_job_dropout(model)
    if label in FORGET_BIAS:
        set_forget_bias(model.rnn, FORGET_BIAS[label])
    return model


def train_steps(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """A short plain training loop (Adam, cross-entropy) on random batches; returns the losses."""
    return train_on_random_batches(
        model, x, y, nn.functional.cross_entropy, steps, batch_size, lr, seed
    )


@dataclass
class GradientComparison:
    """Per cell variant: gradient norm per time step (T,) and validation accuracy."""

    norms: dict[str, np.ndarray]
    val_accuracy: dict[str, float]  # on up to ACCURACY_EXAMPLES validation examples
    chance: float  # the accuracy of guessing the most common class


ACCURACY_EXAMPLES = 512


def gradient_task(
    dataset: str,
) -> tuple[DataInfo, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(info, x_train, y_train, x_val, y_val) of a dataset of GRADIENT_DATASETS."""
    if dataset not in GRADIENT_DATASETS:
        raise ConfigError("dataset", dataset, "one of " + ", ".join(GRADIENT_DATASETS))
    if dataset == REMEMBER_FIRST:
        train_size, val_size = REMEMBER_FIRST_SIZES
        return (
            REMEMBER_FIRST_INFO,
            *remember_first_data(train_size, seed=1),
            *remember_first_data(val_size, seed=2),
        )
    data = load_dataset(dataset)
    return data.info, data.x_train, data.y_train, data.x_val, data.y_val


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x the model classifies as y, in eval mode without gradients."""
    with evaluation_mode(model):
        return float((model(x).argmax(dim=1) == y).float().mean())


def compare_gradient_norms(
    dataset: str = REMEMBER_FIRST,
    labels: tuple[str, ...] = GRADIENT_VARIANTS,
    train_steps_first: int = 0,
    examples: int = 64,
    seed: int = 0,
) -> GradientComparison:
    """Gradient norm per time step (T,) per cell variant, at initialisation or after training.

    Every variant sees the same validation examples and the same random batches.
    """
    if not 0 <= train_steps_first <= 2000:
        raise ConfigError("train_steps", train_steps_first, "an integer from 0 to 2000")
    info, x_train, y_train, x_val, y_val = gradient_task(dataset)
    x_acc, y_acc = x_val[:ACCURACY_EXAMPLES], y_val[:ACCURACY_EXAMPLES]
    norms, val_accuracy = {}, {}
    for label in labels:
        model = build_sequence_model(label, info, seed)
        if train_steps_first:
            train_steps(model, x_train, y_train, train_steps_first, seed=seed)
        norms[label] = gradient_norm_per_step(model, x_val[:examples], y_val[:examples])
        val_accuracy[label] = accuracy(model, x_acc, y_acc)
    chance = float(torch.bincount(y_acc).max()) / len(y_acc)
    return GradientComparison(norms, val_accuracy, chance)


def running_jobs() -> int:
    """How many training jobs run in this process right now (they slow a speed measurement)."""
    return sum(job.state is JobState.RUNNING for job in get_manager().jobs())


def measure_training_speed(
    label: str,
    dataset: str = "mnist1d",
    steps: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    min_seconds: float = 0.0,
) -> SpeedResult:
    """Samples per second of training one cell variant, after 2 warm-up steps.

    Runs `steps` steps, then more in chunks of `steps` until `min_seconds` have passed: a
    tenth of a second is too short to measure honestly next to other work on the CPU.
    """
    if not 1 <= steps <= 500:
        raise ConfigError("steps", steps, "an integer from 1 to 500")
    if not 0.0 <= min_seconds <= 30.0:
        raise ConfigError("min_seconds", min_seconds, "a number of seconds from 0 to 30")
    data = load_dataset(dataset)
    model = build_sequence_model(label, dataset, seed)
    train_steps(model, data.x_train, data.y_train, 2, batch_size, seed=seed)  # warm-up
    concurrent = running_jobs()
    steps_done, seconds = 0, 0.0
    while steps_done == 0 or seconds < min_seconds:
        start = time.perf_counter()
        train_steps(model, data.x_train, data.y_train, steps, batch_size, seed=seed + steps_done)
        seconds += time.perf_counter() - start
        steps_done += steps
    samples_per_s = steps_done * batch_size / max(seconds, 1e-9)
    logger.info("%s on %s: %.0f samples/s", label, dataset, samples_per_s)
    return SpeedResult(
        label=label,
        parameters=sum(p.numel() for p in model.parameters()),
        steps=steps_done,
        batch_size=batch_size,
        seconds=seconds,
        samples_per_s=samples_per_s,
        torch_threads=torch.get_num_threads(),
        concurrent_jobs=max(concurrent, running_jobs()),
    )
