"""What a queued job keeps until it trains: its settings, and the checkpoints it starts from.

A class's round submits thirty jobs at once; with one training slot, twenty-nine wait. Each job is
checked in full when it is submitted (deeparch.engine.prepare: data, model, optimizers, one dry-run
batch, the checkpoint it resumes restored), so a bad setting is refused at once with its field.
A job that then has to wait lets go of all that was built to check it (its model, the model's
initial copy, the task and its optimizers: 85 MB for resnet18) and keeps a JobRecipe; the job is
built again from the recipe when the manager admits it. The seed alone decides the initial
weights (deeparch.engine.prepare.initial_model), so a job built late trains as one built at once.

The checkpoints a waiting job starts from (resume, weights_from) are copied into a folder of the
job's own: the file it was checked against may be gone by the time it trains (a lesson's second
stage writes its first stage's weights to a temporary folder, which it removes once submitted).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.data import DataInfo
from deeparch.engine.checkpointing import WeightsFrom, load_weights_from, read_resume
from deeparch.engine.prepare import Prepared, initial_model, prepare

# (tensors, description) of a checkpoint to continue from, as deeparch.checkpoint reads them.
Resume = tuple[dict[str, torch.Tensor], dict[str, Any]]


@dataclass(frozen=True)
class JobRecipe:
    """How to build a job: its config, and the checkpoints it continues or takes parts from."""

    config: Any  # TrainConfig
    resume: str | Path | None = None  # a checkpoint to continue: weights, optimizer, counters
    weights_from: WeightsFrom | None = None  # parts of a checkpoint to start a new run from
    folder: Path | None = None  # the job's own copies of those checkpoints; release() removes it

    def build(self, dry_run: bool = True) -> tuple[Prepared, Resume | None]:
        """The prepared job (its weights_from parts loaded) and the checkpoint it resumes."""
        prepared = prepare(self.config, dry_run=dry_run)
        if self.weights_from is not None:
            load_weights_from(prepared.model, self.weights_from, self.config.arch)
        resume = read_resume(self.resume, self.config.arch) if self.resume is not None else None
        return prepared, resume

    def starting_model(self, info: DataInfo) -> nn.Module:
        """The weights the job will start from, in eval mode on the CPU, without building its
        task or optimizers (what a waiting job's views show)."""
        model, _ = initial_model(self.config, info)
        if self.weights_from is not None:
            load_weights_from(model, self.weights_from, self.config.arch)
        if self.resume is not None:
            tensors, _ = read_resume(self.resume, self.config.arch)
            state, _ = checkpoint.split_tensors(tensors)
            checkpoint.load_model_state(model, state, self.config.arch)
        return model.eval()

    def staged(self) -> JobRecipe:
        """This recipe with its checkpoints copied into a new folder of its own (itself when it
        has none)."""
        if self.resume is None and self.weights_from is None:
            return self
        folder = Path(tempfile.mkdtemp(prefix="deeparch-queued-"))
        try:
            resume = None
            if self.resume is not None:
                resume = checkpoint.copy_checkpoint(self.resume, folder / "resume")
            weights_from = None
            if self.weights_from is not None:
                copied = checkpoint.copy_checkpoint(self.weights_from.path, folder / "weights-from")
                weights_from = dataclasses.replace(self.weights_from, path=copied)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JobRecipe(self.config, resume, weights_from, folder)

    def release(self) -> None:
        """Remove the job's own copies (never a checkpoint the recipe was given)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
