"""Which job each exploration view shows, and the model it starts when there is none.

The views (feature maps, VAE latent space, GAN studio, sequence models, autoencoders) live in
explore_images, explore_latent, explore_sequences and explore_autoencoders; this module only picks
jobs and starter configs, so pages stay thin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import get_arch
from deeparch.randomness import JobGenerators, use_generators


@dataclass(frozen=True)
class ViewSpec:
    """What a view can show and the model it trains when the session has nothing suitable."""

    title: str
    tasks: tuple[str, ...]  # the engine tasks the view understands
    starter: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of the starter
    hint: str = ""  # what to do when there is nothing to show
    families: tuple[str, ...] | None = None  # restrict to these model families (None: any)
    data_kinds: tuple[str, ...] | None = None  # restrict to architectures of these data kinds
    datasets: tuple[str, ...] | None = None  # restrict to jobs trained on these datasets


VIEWS: dict[str, ViewSpec] = {
    "features": ViewSpec(
        "Feature maps",
        ("classify",),
        # 5 epochs, as on Train: after 2 a reviewer's clean drawn 7 was still read as a 2.
        dict(arch="cnn", dataset="mnist", epochs=5, batch_size=64, lr=1e-3, snapshot_every=50),
        "Train a convolutional network (cnn, alexnet, inception, resnet) on an image dataset.",
        families=("cnn", "inception", "resnet"),
    ),
    "latent": ViewSpec(
        "VAE latent space",
        ("vae",),
        dict(
            arch="vae",
            dataset="mnist",
            arch_config={"latent_dim": 2},
            epochs=20,
            batch_size=64,
            lr=1e-3,
            snapshot_every=50,
        ),
        "Train a variational autoencoder; a 2-D latent gives the grid and the scatter.",
    ),
    "gan": ViewSpec(
        "GAN studio",
        ("gan",),
        # An MLP GAN needs a few thousand steps before digits appear: 30 epochs of bundled
        # mnist are 1,860 steps, a few minutes here, watched live in the studio.
        dict(arch="cgan", dataset="mnist", epochs=30, batch_size=64, lr=2e-4, snapshot_every=25),
        "Train a GAN (a conditional GAN lets you pick the class of the samples); digits take "
        "a few minutes to appear.",
    ),
    "sequences": ViewSpec(
        "Sequence models",
        ("sequence",),
        # The lstm's one click on Train (20 epochs at 3e-3, about 70% on mnist1d); 5 epochs
        # stopped at 42%, where the hidden states and gradients show little of what it learned.
        dict(arch="lstm", dataset="mnist1d", **get_arch("lstm").train_defaults, snapshot_every=50),
        "Train a sequence model (rnn, lstm, gru, qrnn, tcn) on mnist1d or mnist_rows.",
    ),
    "autoencoders": ViewSpec(
        "Autoencoders",
        # U-Nets denoise images too; their snapshots hold the same noisy/output/clean triplets.
        ("reconstruct", "denoise"),
        dict(
            arch="denoising_autoencoder",
            dataset="mnist",
            epochs=5,
            batch_size=64,
            lr=1e-3,
            snapshot_every=50,
        ),
        "Train an autoencoder (the denoising one shows noisy input, output and clean target), "
        "or a 2-D U-Net denoiser.",
        data_kinds=("image",),
    ),
    "forecast": ViewSpec(
        "Forecasting",
        ("forecast",),
        dict(arch="forecaster", dataset="sines", epochs=10, batch_size=64, lr=3e-3,
             snapshot_every=20),
        "Train the forecaster (any cell: rnn, lstm, gru, qrnn, tcn) on the sines.",
    ),
    "language": ViewSpec(
        "Language model",
        ("language_model",),
        dict(arch="char_lm", dataset="topics_chars", epochs=5, batch_size=64, lr=3e-3,
             snapshot_every=25),
        "Train the character language model on Python's help() text; samples appear as it "
        "trains.",
    ),
    "seq2seq": ViewSpec(
        "Encoder-decoder",
        ("seq2seq",),
        dict(arch="seq2seq", dataset="reverse_digits", epochs=15, batch_size=64, lr=3e-3,
             snapshot_every=25),
        "Train the encoder-decoder on reversing (or sorting) digit strings.",
    ),
    "names": ViewSpec(
        "Surnames",
        ("sequence",),
        dict(arch="lstm", dataset="surnames", epochs=8, batch_size=64, lr=3e-3,
             snapshot_every=50),
        "Train a sequence classifier (rnn, lstm, gru, qrnn, tcn) on the surnames dataset.",
        datasets=("surnames",),
    ),
    "words": ViewSpec(
        "Word embeddings",
        ("word2vec",),
        dict(arch="skipgram", dataset="topics_words", epochs=15, batch_size=256, lr=1e-2,
             snapshot_every=40),
        "Train word2vec (skipgram or cbow) on the words of Python's help() text.",
    ),
}  # fmt: skip


def view_spec(view: str) -> ViewSpec:
    if view not in VIEWS:
        raise ConfigError("view", view, "one of " + ", ".join(VIEWS))
    return VIEWS[view]


def starter_config(view: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of the model a view starts when the session has no suitable job."""
    return TrainConfig(**{**view_spec(view).starter, **overrides})


def job_fits(view: str, arch: str, task: str) -> bool:
    """Whether a job of this architecture and task can be shown by a view."""
    spec = view_spec(view)
    if task not in spec.tasks:
        return False
    if spec.families is None and spec.data_kinds is None:
        return True
    try:
        arch_spec = get_arch(arch)
    except DeeparchError:  # an architecture no longer registered (an old checkpoint)
        return False
    if spec.families is not None and arch_spec.family not in spec.families:
        return False
    return spec.data_kinds is None or bool(set(arch_spec.data_kinds) & set(spec.data_kinds))


def suitable_jobs(view: str, jobs: list[JobHandle]) -> list[JobHandle]:
    """The jobs a view can show, in the order given (pages pass the session's, newest first)."""
    datasets = view_spec(view).datasets
    return [
        job
        for job in jobs
        if job_fits(view, job.arch, job.task_name) and (datasets is None or job.dataset in datasets)
    ]


def job_label(job: JobHandle) -> str:
    """A short line naming a job in a picker: id, architecture, dataset, state and step."""
    snap = job.snapshot()
    return (
        f"{snap['id']}: {snap['arch']} on {snap['dataset']} ({snap['state']}, step {snap['step']})"
    )


def snapshot_steps(snapshots: list[dict[str, Any]]) -> list[int]:
    """The training step of each snapshot, for a slider that scrolls back in time."""
    return [int(s["step"]) for s in snapshots]


def loss_curve(snap: dict[str, Any], term: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one loss term of a job snapshot; empty arrays when it has none."""
    points = snap.get("losses", {}).get(term, [])
    if not points:
        return np.zeros(0), np.zeros(0)
    array = np.asarray(points, dtype=np.float64)  # (n, 2): step, value
    return array[:, 0], array[:, 1]


def smooth(values: np.ndarray, window: int = 20) -> np.ndarray:
    """Moving average over up to `window` past values (GAN losses are noisy step to step)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or window <= 1:
        return values
    cumulative = np.concatenate([[0.0], np.cumsum(values)])  # cumulative[i] = sum of first i
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def smoothed_curves(
    snap: dict[str, Any], names: dict[str, str]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Moving averages of a job's loss terms for one chart: {name: values} for each term in
    `names` (term -> the name the chart gives it) the job has logged, and the steps they were
    logged at (the terms of one chart are logged together); None with none logged."""
    curves, x_values = {}, None
    for term, name in names.items():
        steps, values = loss_curve(snap, term)
        if len(values):
            curves[name], x_values = smooth(values), steps
    return curves, x_values


def mean_before(steps: np.ndarray, values: np.ndarray, step: int, window: int = 20) -> float | None:
    """Mean of the values logged at steps in (step - window, step]; None when there are none.

    The GAN studio labels a snapshot with D(x) and D(G(z)) from the training batches around its
    step, the numbers the curves show (a snapshot's own verdicts are taken in eval mode, where
    BatchNorm's running statistics can differ from the batch statistics early in training).
    """
    steps = np.asarray(steps, dtype=np.float64)
    chosen = (steps > step - window) & (steps <= step)
    if not chosen.any():
        return None
    return float(np.asarray(values, dtype=np.float64)[chosen].mean())


def fit_on_random_batches(
    model: Any,
    inputs: Any,
    targets: Any,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    steps: int,
    batch_size: int,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """A plain loop on random batches, for what is not a job (a view's quick comparison, a
    lesson's experiment the engine does not offer).

    `loss_fn(model(inputs[i]), targets[i])`; returns the loss per step, model left in eval mode.
    Batches, dropout and noise come from generators of its own: a page thread never touches the
    process-wide generator that jobs and other sessions share.
    """
    generators = JobGenerators(seed, inputs.device)
    model.train()
    losses = []
    with use_generators(generators):
        for step in range(steps):
            index = torch.randint(0, len(inputs), (batch_size,), generator=generators.cpu)
            loss = loss_fn(model(inputs[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
    model.eval()
    return losses


def train_on_random_batches(
    model: Any,
    inputs: Any,
    targets: Any,
    loss_fn: Any,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """fit_on_random_batches with Adam at `lr` (a view's quick comparison, not a job)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return fit_on_random_batches(
        model, inputs, targets, loss_fn, optimizer, steps, batch_size, seed
    )
