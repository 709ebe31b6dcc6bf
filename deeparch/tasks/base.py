"""The base of every task: optimisation, L1, evaluation, the dry run: what a trainer asks of it.

The trainer knows tasks, never model families (minGPT's trainer.py). A task builds its
optimizers' parameter groups, runs `train_step(batch) -> {term: float}` with every loss term
reported separately, `evaluate(x, y)` under torch.no_grad() with the model's mode restored, and
`snapshot(x, y)` that returns the payload pages draw (numpy arrays, detached, on the CPU).
What a task needs besides the model comes from the architecture's config through the task's
`Settings` dataclass (a field of the same name in the architecture's config sets it).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from deeparch.data.info import DataInfo

# Evaluation runs without gradients, so it takes larger batches; past about 256 a convolution's
# activations no longer fit the CPU caches and samples/s falls (the cnn: 14k at 256, 8k at 512).
EVAL_BATCH_SIZE = 256
SHOW_EXAMPLES = 8  # how many examples a snapshot shows (misclassified digits, reconstructions)


def l1_penalty(parameters: list[nn.Parameter]) -> torch.Tensor:
    """Sum of absolute weights (Tibshirani 1996, the lasso), which pushes weights to exactly 0."""
    return torch.stack([p.abs().sum() for p in parameters]).sum()


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """no_grad and eval mode for the block, and the model's previous mode restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class Task(abc.ABC):
    """One kind of training objective; subclasses fill in the loss terms and the snapshot."""

    name = ""
    # The validation metrics a run's summary shows, headline first, and the one (with "max" or
    # "min") that picks its best epoch; None where no metric ranks the epochs.
    summary_metrics: tuple[str, ...] = ("val_loss",)
    best_by: tuple[str, str] | None = ("val_loss", "min")

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """What the task takes from the architecture's config (nothing, for most tasks)."""

    def __init__(
        self,
        model: nn.Module,
        info: DataInfo,
        config: Any,
        device: torch.device,
        settings: Any = None,
        noise: torch.Generator | None = None,
    ) -> None:
        self.model = model
        self.info = info
        self.config = config
        self.device = device
        self.settings = settings if settings is not None else self.Settings()
        self.l1 = float(config.l1)
        self.grad_clip = float(config.grad_clip)
        # Weights only (no biases or norm scales) for the L1 penalty, as in the lasso.
        self.l1_parameters = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        # Noise of this job's own (inputs corrupted, GAN latents): the job's generator on the
        # training device, reseeded every step by the trainer, never the process-wide one.
        self.noise = noise if noise is not None else torch.Generator(device=device)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- optimisation -----------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[dict[str, Any]]]:
        """Parameter groups per optimizer name; one optimizer over all weights by default."""
        return {"model": [{"params": [p for p in self.model.parameters() if p.requires_grad]}]}

    def set_optimizers(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def regularized(
        self,
        loss: torch.Tensor,
        terms: dict[str, torch.Tensor],
        parameters: list[nn.Parameter] | None = None,
    ) -> torch.Tensor:
        """Add the L1 penalty (reported as its own term `l1`) when it is switched on."""
        if parameters is None:
            weights = self.l1_parameters
        else:
            weights = [p for p in parameters if p.dim() > 1]
        if self.l1 > 0 and weights:
            penalty = self.l1 * l1_penalty(weights)
            terms["l1"] = terms.get("l1", 0.0) + penalty.detach()
            return loss + penalty
        return loss

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Backward pass, optional gradient-norm clipping (Pascanu et al. 2013), one step."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        optimizer.step()

    # -- the three things a trainer asks of a task -------------------------------------------------

    @abc.abstractmethod
    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every loss term of one batch as scalar tensors, `loss` being the total to minimise."""

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        terms = self.loss_terms(x, y)
        terms["loss"] = self.regularized(terms["loss"], terms)
        self.update(self.optimizers["model"], terms["loss"])
        return {name: float(value.detach()) for name, value in terms.items()}

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Validation metrics: each term (and accuracy) averaged over samples, as val_<term>."""
        self.noise.manual_seed(int(self.config.seed))  # the same corruption at every evaluation
        sums: dict[str, float] = {}
        with evaluation_mode(self.model):
            for start in range(0, len(x), EVAL_BATCH_SIZE):
                xb, yb = x[start : start + EVAL_BATCH_SIZE], y[start : start + EVAL_BATCH_SIZE]
                for name, value in self.eval_terms(xb, yb).items():
                    sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
        return {f"val_{name}": total / max(1, len(x)) for name, total in sums.items()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch means for evaluation; subclasses add metrics such as accuracy."""
        return self.loss_terms(x, y)

    @abc.abstractmethod
    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """What the pages draw for this task, from validation data, as numpy arrays."""

    def dry_run(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """One forward pass in training mode without changing weights or buffers (shape check)."""
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        try:
            with torch.no_grad():
                self.loss_terms(*batch)
        finally:
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A detached CPU copy as numpy (snapshot payloads must not share memory with the model)."""
    return tensor.detach().to("cpu").numpy().copy()


def settings_from(settings_cls: type, arch_config: Any) -> Any:
    """A task's Settings from the architecture's config: each field the config also has."""
    values = {}
    if arch_config is not None and dataclasses.is_dataclass(arch_config):
        config_fields = {f.name for f in dataclasses.fields(arch_config)}
        for field in dataclasses.fields(settings_cls):
            if field.name in config_fields:
                values[field.name] = getattr(arch_config, field.name)
    return settings_cls(**values)
