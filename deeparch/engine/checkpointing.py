"""A job's checkpoint: what a trainer saves (weights, optimizer state, counters, history) and how
a trainer continues from one. The file format itself is deeparch.checkpoint's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.loop import Trainer
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError

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
        opt_tensors, opt_described = checkpoint.optimizer_state(trainer.task.optimizers)
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

    `meta` comes from checkpoint.read_checkpoint, which has checked the type of every field
    read here; weights and optimizer state are checked against the model's shapes.
    """
    config = trainer.config
    model_state, optimizer_tensors = checkpoint.split_tensors(tensors)
    checkpoint.load_model_state(trainer.model, model_state, config.arch)
    saved_optimizer = meta["train_config"].get("optimizer")
    if saved_optimizer == config.optimizer and meta.get("optimizer"):
        checkpoint.restore_optimizers(
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
