"""Training tasks by name: what one step, an evaluation and a snapshot mean per kind of model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deeparch.data.info import DataInfo
from deeparch.errors import UnknownNameError
from deeparch.tasks.base import Task, evaluation_mode, settings_from
from deeparch.tasks.classify import ClassifyTask, SequenceTask
from deeparch.tasks.forecast import ForecastTask
from deeparch.tasks.gan import GanTask
from deeparch.tasks.language import LanguageModelTask
from deeparch.tasks.reconstruct import DenoiseTask, ReconstructTask
from deeparch.tasks.seq2seq import Seq2SeqTask
from deeparch.tasks.vae import VaeTask
from deeparch.tasks.word2vec import Word2VecTask

__all__ = ["TASK_CLASSES", "Task", "evaluation_mode", "make_task", "task_classes"]

# Task name -> class: the names of deeparch.models.registry.TASKS.
TASK_CLASSES: dict[str, type[Task]] = {
    task.name: task
    for task in (
        ClassifyTask, SequenceTask, ReconstructTask, DenoiseTask, VaeTask, GanTask,
        ForecastTask, LanguageModelTask, Seq2SeqTask, Word2VecTask,
    )
}  # fmt: skip


def task_classes() -> dict[str, type[Task]]:
    """Task name -> class."""
    return dict(TASK_CLASSES)


def make_task(
    name: str,
    model: nn.Module,
    info: DataInfo,
    config: Any,
    device: torch.device,
    arch_config: Any = None,
    noise: torch.Generator | None = None,
) -> Task:
    """The task object for an architecture's task name; its settings come from `arch_config`."""
    if name not in TASK_CLASSES:
        raise UnknownNameError("task", name, list(TASK_CLASSES))
    task_cls = TASK_CLASSES[name]
    settings = settings_from(task_cls.Settings, arch_config)
    return task_cls(model, info, config, device, settings=settings, noise=noise)
