"""A job's checkpoint: what a trainer saves (weights, optimizer state, counters, history) and how
a trainer continues from one. The file format itself is deeparch.checkpoint's."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.checkpoint.optimizer import (
    CheckpointMismatchError,
    optimizer_state,
    restore_optimizers,
)
from deeparch.config import check_value, coerce
from deeparch.engine.config import TrainConfig, train_field_specs
from deeparch.engine.loop import Trainer
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError
from deeparch.models import get_arch
from deeparch.models.parts import parse_part_names, top_level_parts

FORMAT = "deeparch-checkpoint-1"


def cpu_copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}


def checkpoint_contents(
    trainer: Trainer, log: MetricsLog, state: JobState, dataset: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, description) of a trainer now: weights, optimizer state and counters from one
    moment between two steps."""
    config = trainer.config
    progress = trainer.progress
    with trainer.step_lock:
        tensors = cpu_copy(trainer.model.state_dict())
        opt_tensors, opt_described = optimizer_state(trainer.task.optimizers)
        tensors.update(cpu_copy(opt_tensors))
        opt_described = copy.deepcopy(opt_described)
        saved_progress = {
            "step": progress.global_step,
            "epoch": progress.epoch,
            "epoch_step": progress.epoch_step,
            "epoch_loss_sum": progress.epoch_loss_sum,
            "elapsed_s": log.counter("elapsed_s", 0.0),
        }
    meta = {
        "format": FORMAT,
        "arch": config.arch,
        "arch_config": config.to_dict()["arch_config"],
        "dataset": dataset,
        "task": trainer.prepared.task_name,
        "train_config": config.to_dict(),
        "state": str(state),
        "progress": saved_progress,
        "final_metrics": progress.final_metrics,
        "history": log.history(),
        "optimizer": opt_described,
    }
    return tensors, meta


def restore_trainer(
    trainer: Trainer, log: MetricsLog, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Continue from a checkpoint: weights, optimizer state, counters and history.

    `meta` comes from checkpoint.read_checkpoint, which has checked the type of every field read
    here; weights and optimizer state are checked against the model, the counters against the
    data and the run's limits. The optimizers keep the trainer's hyperparameters, so a resumed run
    with another learning rate trains at that rate from the checkpoint's moments.
    """
    config = trainer.config
    saved_config = _saved_config(meta)
    _check_progress(trainer, meta, saved_config)
    model_state, optimizer_tensors = checkpoint.split_tensors(tensors)
    checkpoint.load_model_state(trainer.model, model_state, config.arch)
    if saved_config.optimizer == config.optimizer and meta.get("optimizer"):
        _check_hyperparameters(meta["optimizer"])
        restore_optimizers(
            trainer.task.optimizers, optimizer_tensors, meta["optimizer"], trainer.model
        )
        match_parameter_layouts(trainer.task.optimizers)
    saved = meta["progress"]
    progress = trainer.progress
    progress.global_step = int(saved["step"])
    progress.epoch = int(saved["epoch"])
    progress.epoch_step = int(saved["epoch_step"])
    progress.epoch_loss_sum = float(saved["epoch_loss_sum"])
    progress.elapsed_before = float(saved.get("elapsed_s") or 0.0)
    progress.final_metrics = dict(meta.get("final_metrics") or {})
    log.restore(meta["history"])
    _check_room_to_train(trainer)


def _saved_config(meta: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_saved(meta["train_config"])
    except (ConfigError, TypeError, ValueError) as error:
        raise CheckpointMismatchError(
            f"the checkpoint's train_config cannot be used: {error}"
        ) from None


def _inconsistent(problem: str) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"the checkpoint's {problem}; its description was edited or damaged"
    )


def _check_progress(trainer: Trainer, meta: dict[str, Any], saved_config: TrainConfig) -> None:
    """The saved counters against the checkpoint's own settings and, when it trained on the same
    data, against that data: a believed progress.step of 10**30 would report "reached max_steps"
    steps that never happened."""
    saved = meta["progress"]
    step, epoch, epoch_step = int(saved["step"]), int(saved["epoch"]), int(saved["epoch_step"])
    if epoch > int(saved_config.epochs):
        raise _inconsistent(
            f"progress.epoch is {epoch}, more than the {saved_config.epochs} epochs its "
            "train_config trains"
        )
    if epoch_step > step:
        raise _inconsistent(f"progress.epoch_step {epoch_step} is more than progress.step {step}")
    diverged = meta.get("state") in ("diverged", "failed")
    if not diverged and not math.isfinite(float(saved["epoch_loss_sum"])):
        raise _inconsistent(
            f"progress.epoch_loss_sum is {saved['epoch_loss_sum']}, but the run ended "
            f"{meta.get('state') or 'without a state'}, not diverged"
        )
    for term, points in meta["history"]["losses"].items():
        late = [point[0] for point in points if point[0] > step]
        if late:
            raise _inconsistent(
                f"history.losses.{term} has step {late[0]}, after progress.step {step}"
            )
    spec = get_arch(saved_config.arch)
    trained_on = saved_config.dataset or spec.default_dataset
    for field, expected in (("dataset", trained_on), ("task", spec.task)):
        if meta.get(field) is not None and meta[field] != expected:
            raise _inconsistent(
                f"{field} is {meta[field]!r}, but its train_config trains {saved_config.arch} "
                f"{'on' if field == 'dataset' else 'as'} {expected!r}"
            )
    if trained_on != trainer.prepared.dataset_name:
        return  # another dataset has other epochs: only the checks above apply
    n = len(trainer.prepared.x_train)
    per_epoch = max(1, n // min(int(saved_config.batch_size), n))
    total = int(saved_config.epochs) * per_epoch
    if int(saved_config.max_steps):
        total = min(total, int(saved_config.max_steps))
    if step > total:
        raise _inconsistent(
            f"progress.step is {step:,}, but its train_config trains at most {total:,} steps on "
            f"{trainer.prepared.dataset_name}"
        )
    if epoch_step > per_epoch or step != epoch * per_epoch + epoch_step:
        raise _inconsistent(
            f"progress (step {step:,}, epoch {epoch:,}, epoch_step {epoch_step:,}) does not fit "
            f"{per_epoch} steps per epoch (batch_size {saved_config.batch_size} on "
            f"{n:,} training samples): step should be epoch x {per_epoch} + epoch_step"
        )


def _check_hyperparameters(described: dict[str, Any]) -> None:
    """The saved learning rate and weight decay within TrainConfig's bounds: the restored optimizer
    uses the run's own, but a checkpoint whose optimizer ran at lr -1 or 1e30 is not believed
    (a learning-rate schedule never goes below lr's least setting, LR_FLOOR)."""
    specs = {spec.name: spec for spec in train_field_specs()}
    for name, entry in described.items():
        for index, group in enumerate(entry["param_groups"]):
            for field in ("lr", "weight_decay"):
                if field not in group:
                    continue
                value = group[field]
                try:
                    check_value(specs[field], coerce(specs[field], value))
                except ConfigError as error:
                    raise _inconsistent(
                        f"optimizer.{name}.param_groups[{index}].{field} is {value!r}, not "
                        f"{error.allowed}"
                    ) from None


def _check_room_to_train(trainer: Trainer) -> None:
    """A resumed run whose limits lie below the checkpoint's step would report "step 5/3".

    A checkpoint loaded to be shown has its own settings, which it always fits.
    """
    config, step = trainer.config, trainer.progress.global_step
    if step <= trainer.total_steps:
        return
    max_steps = int(config.max_steps)
    if max_steps and step > max_steps:
        raise ConfigError(
            "max_steps",
            max_steps,
            f"0 (all epochs) or at least {step:,}, the step the checkpoint reached",
            "a resumed run goes on from the checkpoint's step",
        )
    epochs_done = math.ceil(step / trainer.steps_per_epoch)
    raise ConfigError(
        "epochs",
        int(config.epochs),
        f"at least {epochs_done:,}, the epochs the checkpoint has trained",
        "a resumed run goes on from the checkpoint's step; raise epochs to train more",
    )


def match_parameter_layouts(optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Give restored optimizer state its parameter's memory layout (a checkpoint stores tensors
    contiguous; a channels-last weight's moments must be channels-last too, because fused
    optimizers update parameter and state element by element in memory order)."""
    for optimizer in optimizers.values():
        for param, entries in optimizer.state.items():
            for key, value in entries.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == param.shape
                    and value.stride() != param.stride()
                ):
                    entries[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def read_resume(path: str | Path, arch: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint to continue a job of `arch` from: (tensors, description), checked on reading;
    a checkpoint of another architecture is a ConfigError naming arch."""
    tensors, meta = checkpoint.read_checkpoint(path)
    if meta.get("arch") != arch:
        raise ConfigError("arch", arch, f"{meta.get('arch')!r}, the checkpoint's")
    return tensors, meta


@dataclass(frozen=True)
class WeightsFrom:
    """Start a new run from some of a checkpoint's weights: transfer learning (Yosinski et al.
    2014; PyTorch's "ConvNet as fixed feature extractor" loads a trained network, then replaces
    its last layer). The named parts' tensors come from the checkpoint, checked by name and
    shape; every other part keeps the run's own seeded initialisation (a new head), and the
    run's counters, optimizer state and history start afresh (unlike resume)."""

    path: str | Path
    parts: str  # comma-separated part names: a top-level child or a dotted sub-module name


def read_weights(source: WeightsFrom, arch: str) -> dict[str, torch.Tensor]:
    """The checkpoint's model weights (no optimizer state), checked on reading; a checkpoint of
    another architecture is a ConfigError naming arch. What a Ray worker is handed (it may not
    see the server's files)."""
    tensors, _meta = read_resume(source.path, arch)
    return checkpoint.split_tensors(tensors)[0]


def load_weights_from(
    model: torch.nn.Module,
    source: WeightsFrom,
    arch: str,
    saved: dict[str, torch.Tensor] | None = None,
) -> int:
    """Copy the named parts' weights from the checkpoint into `model`; returns how many tensor
    elements were copied. `saved` is the checkpoint's weights when already read (read_weights),
    else they are read from source.path. A checkpoint of another architecture is a ConfigError
    naming arch, an unknown part one naming weights_from, a shape that differs a
    CheckpointMismatchError."""
    saved = read_weights(source, arch) if saved is None else saved
    names = parse_part_names(source.parts)
    modules = dict(model.named_modules())
    if not names:
        raise ConfigError("weights_from", source.parts, "the parts to take, comma-separated")
    wanted: dict[str, torch.Tensor] = {}
    expected = model.state_dict()
    for part in names:
        if part not in modules:
            raise ConfigError(
                "weights_from",
                part,
                "a part of the model by name: " + ", ".join(top_level_parts(model)),
            )
        keys = [key for key in expected if key.startswith(part + ".")]
        for key in keys:
            if key not in saved or tuple(saved[key].shape) != tuple(expected[key].shape):
                found = tuple(saved[key].shape) if key in saved else "missing"
                raise CheckpointMismatchError(
                    f"tensor {key!r} is {found} in the checkpoint but "
                    f"{tuple(expected[key].shape)} in this run's {arch}: take only the parts "
                    "whose settings are the checkpoint's"
                )
            if saved[key].dtype != expected[key].dtype:
                raise CheckpointMismatchError(f"tensor {key!r} has another dtype in the checkpoint")
            wanted[key] = saved[key]
    model.load_state_dict(wanted, strict=False)
    return sum(tensor.numel() for tensor in wanted.values())
