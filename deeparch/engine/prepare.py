"""Preparing a job before its training thread starts (the manager runs this in a short-lived
thread and raises its errors in the caller): data, model from the seed, task, optimizers, and one
dry-run batch, so a mistake is a ConfigError message rather than a traceback inside a thread."""

from __future__ import annotations

import copy
import gc
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deeparch.data import DataInfo, load_dataset
from deeparch.data.sources import stratified_subset
from deeparch.data.subsets import parse_classes, select_classes
from deeparch.engine.augment import ImageAugmenter, augments, policy_for
from deeparch.engine.limits import check_job_limits
from deeparch.engine.optim import choose_device, make_optimizer
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import create_model, get_arch
from deeparch.models.parts import freeze_parts
from deeparch.randomness import (
    JobGenerators,
    borrowed_global_generator,
    use_generators,
    use_job_dropout,
)
from deeparch.tasks import Task, make_task


@dataclass
class Prepared:
    """Everything a job needs, built and checked before its training thread starts."""

    config: Any  # TrainConfig
    dataset_name: str
    info: DataInfo
    arch_config: Any
    task_name: str
    device: torch.device
    model: nn.Module
    template: nn.Module  # an untouched CPU copy of the model, the mould for model_copy()
    task: Task
    generators: JobGenerators  # the job's own randomness (dropout, noise, sampling)
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    augmenter: ImageAugmenter | None = None  # moves each training batch (augment on)


def prepare(config: Any, dry_run: bool = True) -> Prepared:
    """Load the data, build model, task and optimizers, and check one batch runs."""
    config.validate()
    spec = get_arch(config.arch)
    dataset_name = config.dataset or spec.default_dataset
    device = choose_device(config.device)
    data = load_dataset(dataset_name)
    data = select_classes(data, parse_classes(config.classes, data.info))
    x_train, y_train = training_subset(config, dataset_name, data.x_train, data.y_train)
    model, arch_config = initial_model(config, data.info)
    check_job_limits(config, arch_config, model, len(x_train))  # the class's caps
    check_batch_norm_batch(model, int(config.batch_size))
    template = copy.deepcopy(model).eval()
    model = model.to(device)
    if prefers_channels_last(model, spec.task, device):
        model = model.to(memory_format=torch.channels_last)
    generators = JobGenerators(int(config.seed), device)
    task = make_task(
        spec.task, model, data.info, config, device, arch_config, noise=generators.on_device
    )
    optimizers = {
        name: make_optimizer(
            config.optimizer,
            groups,
            float(config.lr),
            float(config.weight_decay),
            float(config.momentum),
        )
        for name, groups in trainable_groups(task.param_groups(), config).items()
    }
    task.set_optimizers(optimizers)
    augmenter = None
    if config.augment and augments(data.info):
        augmenter = ImageAugmenter(policy_for(data.info), int(config.seed), device)
    x_val, y_val = data.x_val.to(device), data.y_val.to(device)
    prepared = Prepared(
        config=config,
        dataset_name=dataset_name,
        info=data.info,
        arch_config=arch_config,
        task_name=spec.task,
        device=device,
        model=model,
        template=template,
        task=task,
        generators=generators,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        augmenter=augmenter,
    )
    if dry_run:
        check_one_batch(prepared)
    return prepared


def initial_model(config: Any, info: DataInfo) -> tuple[nn.Module, Any]:
    """(model, arch config) as the config's seed builds it, its frozen parts marked: the same
    weights every time it is built, whenever and in whichever thread."""
    # Module constructors draw from the default generator, which is lent seeded and under a lock
    # (deeparch.randomness explains).
    with borrowed_global_generator(int(config.seed)):
        model, arch_config = create_model(config.arch, config.arch_config, info)
    freeze_parts(model, config.freeze)
    use_job_dropout(model)  # dropout masks from the job's generator, not the process's
    return model, arch_config


def training_subset(
    config: Any, dataset_name: str, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training samples a run uses: all, or train_subset of them, stratified by class and
    the same for the same seed (the validation set stays whole, so overfitting shows)."""
    count = int(config.train_subset)
    if count == 0:
        return x, y
    if count > len(y):
        raise ConfigError(
            "train_subset",
            count,
            f"0 (all) or at most {len(y):,}, the training samples of {dataset_name}",
        )
    index = torch.from_numpy(stratified_subset(y.numpy(), count, int(config.seed)))
    return x.index_select(0, index), y.index_select(0, index)


def trainable_groups(
    groups_by_optimizer: dict[str, list[dict[str, Any]]], config: Any
) -> dict[str, list[dict[str, Any]]]:
    """Each optimizer's parameter groups without frozen parameters, so those get no state (and
    no weight decay: a frozen weight must keep its value). An optimizer left with nothing to
    train is a ConfigError naming freeze."""
    kept: dict[str, list[dict[str, Any]]] = {}
    for name, groups in groups_by_optimizer.items():
        trainable = [
            {**group, "params": [p for p in group["params"] if p.requires_grad]} for group in groups
        ]
        trainable = [group for group in trainable if group["params"]]
        if not trainable:
            raise ConfigError(
                "freeze",
                config.freeze,
                f"parts that leave the {name} something to train",
                f"every parameter the {name} optimizer updates would be frozen",
            )
        kept[name] = trainable
    return kept


def check_batch_norm_batch(model: torch.nn.Module, batch_size: int) -> None:
    """Batch normalisation divides by the batch's spread, which one sample does not have."""
    has_batch_norm = any(
        isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()
    )
    if has_batch_norm and batch_size < 2:
        raise ConfigError(
            "batch_size",
            batch_size,
            "at least 2 for a model with batch normalisation",
            "a batch of one sample has no spread to normalise by; raise batch_size or switch "
            "batch_norm off",
        )


def prefers_channels_last(model: torch.nn.Module, task_name: str, device: torch.device) -> bool:
    """Whether to store a classifier's convolution weights channels-last (N, H, W, C in memory).

    On the CPU oneDNN convolves channels-last tensors without reordering them first: the default
    cnn trains about 1.3x faster. Values and results are unchanged (only strides differ); limited
    to classifiers, whose snapshots never reinterpret a feature map's memory.
    """
    has_conv = any(isinstance(module, torch.nn.Conv2d) for module in model.modules())
    return device.type == "cpu" and task_name == "classify" and has_conv


def check_one_batch(prepared: Prepared) -> None:
    """Run one batch forward so a shape mismatch is a ConfigError before the thread starts."""
    size = min(int(prepared.config.batch_size), len(prepared.x_train))
    batch = (
        prepared.x_train[:size].to(prepared.device),
        prepared.y_train[:size].to(prepared.device),
    )
    # Throwaway generators: the dry run must not move the job's own (nor the default) ones.
    seed = int(prepared.config.seed)
    out_of_memory = ""
    try:
        with use_generators(JobGenerators(seed, prepared.device)), borrowed_global_generator(seed):
            prepared.task.dry_run(batch)
    except DeeparchError:
        raise
    except torch.cuda.OutOfMemoryError as error:
        out_of_memory = str(error).splitlines()[0] if str(error) else "out of memory"
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            "arch_config",
            prepared.config.arch_config,
            f"settings whose shapes fit dataset {prepared.dataset_name} "
            f"(input {tuple(prepared.info.input_shape)})",
            f"one batch failed: {first_line}",
        ) from error
    if out_of_memory:
        # Out of the except block, whose traceback held the batch's activations: now they go.
        del batch
        release_cuda_cache()
        raise ConfigError(
            "batch_size",
            prepared.config.batch_size,
            f"a batch that fits in the memory of {prepared.device}",
            f"one batch ran out of memory ({out_of_memory}); try a smaller batch_size or model",
        )


def release_cuda_cache() -> None:
    """Return freed blocks to the device, so nvidia-smi and other jobs see the memory again."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
