"""Validation metrics of a saved checkpoint, on its own dataset or another of the same shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.config import TrainConfig
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError, DeeparchError
from deeparch.randomness import JobGenerators, use_generators


def checkpoint_config(tensors_path: str | Path, meta: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with, or one message naming the file."""
    weights_path = checkpoint.checkpoint_paths(tensors_path)[0]
    try:
        return TrainConfig.from_saved(meta["train_config"])
    except (ConfigError, TypeError, ValueError) as error:
        raise DeeparchError(
            f"{weights_path} has a train_config deeparch cannot use: {error}"
        ) from None


def evaluate_checkpoint(path: str | Path, dataset: str | None = None) -> dict[str, Any]:
    """Validation metrics of a checkpoint, on its own dataset or on another of the same shape."""
    tensors, meta = checkpoint.read_checkpoint(path)
    weights_path = checkpoint.checkpoint_paths(path)[0]
    config = checkpoint_config(path, meta)
    if dataset:
        config = TrainConfig.from_dict({**config.to_dict(), "dataset": dataset})
    prepared = prepare(config)
    model_state, _ = checkpoint.split_tensors(tensors)
    checkpoint.load_model_state(prepared.model, model_state, prepared.config.arch)
    with use_generators(JobGenerators(int(config.seed), prepared.device)):
        metrics = prepared.task.evaluate(prepared.x_val, prepared.y_val)
    return {
        "checkpoint": str(weights_path),
        "arch": prepared.config.arch,
        "dataset": prepared.dataset_name,
        "val_samples": len(prepared.x_val),
        **metrics,
    }
