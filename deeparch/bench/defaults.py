"""One click per architecture: train its defaults as the Train page does, and measure its point.

Each task has its own measure of "it learned what it is for", against a baseline that knows
nothing: classifiers against guessing the most common class, reconstructions against drawing the
mean training image every time, GANs by how many of their samples a digit classifier trained on
real digits recognises (and, for a conditional GAN, as the class asked for). The sequence tasks:
a forecaster against repeating the last value, a language model (bits per character) and word2vec
(nats per predicted word) against the training split's unigram frequencies, an encoder-decoder
against guessing a symbol at random (1 / vocabulary per position).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig, train_defaults
from deeparch.engine.manager import JobManager
from deeparch.models import create_model, get_arch

GAN_SAMPLES = 500  # generated digits judged per GAN
CONFIDENT = 0.9  # the judge's probability for its class that counts a sample as recognised
JUDGE_EPOCHS = 3  # the judge reaches about 97% on the bundled mnist's validation split


def one_click_config(arch: str, **overrides: Any) -> TrainConfig:
    """What one click on Train starts: TrainConfig's defaults with the architecture's on top, its
    config's defaults and its default dataset."""
    return TrainConfig.from_dict({**train_defaults(arch), "arch": arch, **overrides})


@dataclass(frozen=True)
class OneClick:
    """A one-click run and its measure: `value` against `baseline` (what knowing nothing gets)."""

    arch: str
    dataset: str
    metric: str  # what value and baseline are: "accuracy", "mse", "recognised", "bits per char"
    # or "nats per word" (the last three: lower is better)
    value: float
    baseline: float
    seconds: float  # wall clock, from submit to the end of training
    cpu_seconds: float  # this process's CPU time meanwhile: the wall time on an idle core
    steps: int
    state: str
    extra: dict[str, float]

    @property
    def learned(self) -> bool:
        """Above the baseline for accuracies and recognised digits, below it for errors."""
        if self.metric in ("mse", "bits per char", "nats per word"):
            return self.value < self.baseline
        return self.value > self.baseline


def majority_share(labels: torch.Tensor) -> float:
    """Accuracy of always guessing the most common class."""
    return float(torch.bincount(labels).max()) / len(labels)


def mean_image_mse(x_train: torch.Tensor, x_val: torch.Tensor) -> float:
    """Mean squared error of predicting the mean training image for every validation image."""
    return float(((x_val - x_train.mean(dim=0, keepdim=True)) ** 2).mean())


class DigitJudge(nn.Module):
    """A small convnet (two 3x3 convolutions and a linear layer) that reads 28x28 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 7 x 7
        )  # fmt: skip
        self.classifier = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@functools.cache
def digit_judge(seed: int = 0) -> tuple[DigitJudge, float]:
    """A DigitJudge trained on the bundled mnist's training split, and its validation accuracy."""
    data = load_dataset("mnist")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        judge = DigitJudge()
    optimizer = torch.optim.Adam(judge.parameters(), lr=2e-3)
    for _ in range(JUDGE_EPOCHS):
        order = torch.randperm(len(data.x_train), generator=generator)
        for start in range(0, len(order) - 63, 64):
            index = order[start : start + 64]
            loss = F.cross_entropy(judge(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    judge.eval()
    with torch.no_grad():
        accuracy = float((judge(data.x_val).argmax(1) == data.y_val).float().mean())
    return judge, accuracy


def judge_digits(images: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    """What the digit judge makes of images (N, 1, 28, 28) in [0, 1]: the share it recognises
    with confidence and how many classes those cover; and the class it reads each one as."""
    judge, _ = digit_judge()
    with torch.no_grad():
        probabilities = F.softmax(judge(images), dim=1)
    confidence, read_as = probabilities.max(dim=1)
    recognised = confidence > CONFIDENT
    judged = {
        "recognised": float(recognised.float().mean()),
        "classes": float(len(read_as[recognised].unique())),
    }
    return judged, read_as


def judge_gan_samples(
    model: nn.Module, count: int = GAN_SAMPLES, seed: int = 0
) -> dict[str, float]:
    """What the digit judge makes of a GAN's samples: the share it recognises with confidence,
    how many classes those cover, and for a conditional GAN the share read as the class asked."""
    generator = torch.Generator().manual_seed(seed)
    z = model.sample_noise(count, generator=generator)
    labels = torch.arange(count) % 10
    with torch.no_grad():
        fake = model.generator(z, labels) if model.conditional else model.generator(z)
    judged, read_as = judge_digits((fake + 1) / 2)  # [-1, 1] -> [0, 1]
    if model.conditional:
        judged["agreement"] = float((read_as == labels).float().mean())
    return judged


def judge_vae_samples(
    model: nn.Module, count: int = GAN_SAMPLES, seed: int = 0
) -> dict[str, float]:
    """What the digit judge makes of a VAE's new images, decoded from z ~ N(0, I)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        images = model.sample(count, generator=generator)
    return judge_digits(images)[0]


def last_value_mse(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of the naive forecast: each next value is the one just seen."""
    return float(((x - y) ** 2).mean())


def forecast_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of a forecaster's next value after every step."""
    with torch.no_grad():
        return float(((model(x) - y) ** 2).mean())


def unigram_cross_entropy(train: torch.Tensor, val: torch.Tensor, vocab: int) -> float:
    """Nats per token of predicting every validation token from the training split's token
    frequencies alone (add-one smoothed so that no validation token has probability zero)."""
    counts = torch.bincount(train.reshape(-1), minlength=vocab).double() + 1
    log_p = torch.log(counts / counts.sum())
    return float(-log_p[val.reshape(-1)].mean())


def next_token_nats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """A language model's validation cross-entropy in nats per token, every step of every chunk."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(x[start : start + batch])
            targets = y[start : start + batch]
            total += float(
                F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), reduction="sum")
            )
    return total / y.numel()


def word2vec_targets(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """The words a word2vec model predicts in each window (N, k): the 2w context words around
    the centre for skip-gram, the centre word for CBOW."""
    if model.objective == "cbow":
        return windows[:, model.centre : model.centre + 1]
    return model.context(windows)


def word2vec_nats(model: nn.Module, windows: torch.Tensor, batch: int = 1024) -> float:
    """word2vec's cross-entropy in nats per predicted word over these windows."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            chunk = windows[start : start + batch]
            log_p = F.log_softmax(model(chunk), dim=1)  # (N, V)
            targets = word2vec_targets(model, chunk)  # (N, k)
            total -= float(log_p.gather(1, targets).sum())
            count += targets.numel()
    return total / count


def greedy_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """An encoder-decoder's greedy decoding: the share of output symbols right, and of whole
    output sequences right."""
    with torch.no_grad():
        correct = model(x).argmax(dim=2) == y
    return float(correct.float().mean()), float(correct.all(dim=1).float().mean())


BITS_PER_NAT = 1 / math.log(2)
SEQUENCE_TASKS = ("forecast", "language_model", "seq2seq", "word2vec")


def sequence_measure(model: nn.Module, task: str, data: Any) -> tuple[str, float, float, dict]:
    """(metric, value, baseline, extra) of a sequence task beyond many-to-one."""
    if task == "forecast":
        value = forecast_mse(model, data.x_val, data.y_val)
        return "mse", value, last_value_mse(data.x_val, data.y_val), {}
    vocab = int(data.info.num_classes)
    if task == "language_model":
        value = next_token_nats(model, data.x_val, data.y_val) * BITS_PER_NAT
        baseline = unigram_cross_entropy(data.y_train, data.y_val, vocab) * BITS_PER_NAT
        return "bits per char", value, baseline, {}
    if task == "seq2seq":
        accuracy, whole = greedy_accuracy(model, data.x_val, data.y_val)
        return "accuracy", accuracy, 1 / vocab, {"sequence_accuracy": whole}
    value = word2vec_nats(model, data.x_val)  # word2vec
    train, val = (word2vec_targets(model, x) for x in (data.x_train, data.x_val))
    return "nats per word", value, unigram_cross_entropy(train, val, vocab), {}


def pca_mse(x_train: torch.Tensor, x_val: torch.Tensor, components: int) -> float:
    """Mean squared error of the best linear code of this size: validation images projected on
    the training split's first `components` principal directions and back."""
    train, val = x_train.flatten(1).double(), x_val.flatten(1).double()
    mean = train.mean(dim=0)
    _u, _s, directions = torch.linalg.svd(train - mean, full_matrices=False)
    basis = directions[:components].T  # (D, k)
    reconstruction = (val - mean) @ basis @ basis.T + mean
    return float(((reconstruction - val) ** 2).mean())


def reconstruction_mse(model: nn.Module, task: str, x: torch.Tensor) -> float:
    """Mean squared error of an autoencoder's or VAE's reconstruction of clean inputs."""
    with torch.no_grad():
        output = model(x)
    reconstruction = output[0] if task == "vae" else output
    return float(((reconstruction - x) ** 2).mean())


def measure(job: Any, arch: str, seconds: float, cpu_seconds: float) -> OneClick:
    """The task's measure of a finished job against its baseline."""
    snap = job.snapshot()
    spec = get_arch(arch)
    data = load_dataset(snap["dataset"])
    final = snap["final_metrics"]
    extra: dict[str, float] = {}
    if spec.task in ("classify", "sequence"):
        metric, value, baseline = "accuracy", final["val_accuracy"], majority_share(data.y_val)
    elif spec.task in SEQUENCE_TASKS:
        metric, value, baseline, extra = sequence_measure(job.model_copy(), spec.task, data)
    elif spec.task == "gan":
        extra = judge_gan_samples(job.model_copy())
        metric, value = "recognised", extra.pop("recognised")
        untrained, _ = create_model(arch, snap["config"]["arch_config"], data.info)
        baseline = judge_gan_samples(untrained.eval())["recognised"]
    elif spec.task == "vae":  # against the best linear code of the same size, not the mean image
        model = job.model_copy()
        metric, value = "mse", reconstruction_mse(model, spec.task, data.x_val)
        baseline = pca_mse(data.x_train, data.x_val, int(model.latent_dim))
    else:
        metric, baseline = "mse", mean_image_mse(data.x_train, data.x_val)
        if spec.task == "denoise":
            value = final["val_mse"]
        else:
            value = reconstruction_mse(job.model_copy(), spec.task, data.x_val)
    return OneClick(
        arch=arch,
        dataset=snap["dataset"],
        metric=metric,
        value=float(value),
        baseline=float(baseline),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        steps=int(snap["step"]),
        state=snap["state"],
        extra=extra,
    )


def run_one_click(arch: str, threads: int | None = None, **overrides: Any) -> OneClick:
    """Train an architecture's one-click config to the end and measure it."""
    config = one_click_config(arch, **overrides)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)  # the job's thread takes this count when it starts
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    load_dataset(config.dataset or get_arch(arch).default_dataset)  # parsed before the clock
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        job = manager.submit(config)
        job.wait()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        return measure(job, arch, seconds, cpu_seconds)
    finally:
        torch.set_num_threads(previous)
