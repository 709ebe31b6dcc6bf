"""What lessons share to measure: models from the seed alone, accuracy, timing and the load
average beside a timing, and per-layer gradient norms."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deeparch.data import DataInfo, dataset_info
from deeparch.models import create_model
from deeparch.randomness import borrowed_global_generator
from deeparch.randomness import use_job_dropout as _use_job_dropout
from deeparch.tasks import evaluation_mode


def seeded_model(
    arch: str, overrides: dict[str, Any] | None = None, info: DataInfo | str | None = None,
    seed: int = 0,
) -> nn.Module:  # fmt: skip
    """A registry architecture whose initial weights come from the seed alone (the default
    generator is lent seeded and under a lock, so no other thread's draws move it)."""
    if isinstance(info, str):
        info = dataset_info(info)
    with borrowed_global_generator(seed):
        model, _config = create_model(arch, overrides, info)
    return _use_job_dropout(model)


def seeded_module(factory: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Any module built by `factory` with initial weights from the seed alone."""
    with borrowed_global_generator(seed):
        return _use_job_dropout(factory())


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x classified as y, in eval mode without gradients."""
    with evaluation_mode(model):
        return float((model(x).argmax(dim=1) == y).float().mean())


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> float:
    with evaluation_mode(model):
        return float(loss_fn(model(x), y))


def seconds_per_call(function: Callable[[], Any], min_seconds: float, repeats: int = 3) -> float:
    """The best of `repeats` timings of `function`, each repeated until `min_seconds` passed."""
    function()  # warm-up: the first call allocates
    best = float("inf")
    for _ in range(repeats):
        calls, started = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - started < min_seconds:
            function()
            calls += 1
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def load_average() -> float | None:
    """The 1-minute load average, written beside every timing (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def chance_level(y: torch.Tensor) -> float:
    """The accuracy of always guessing the most common class."""
    return float(torch.bincount(y).max()) / len(y)


def layer_gradient_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    layer_types: tuple[type, ...] = (nn.Conv2d, nn.Linear),
) -> dict[str, float]:
    """|| d loss / d W || of each layer's weight on one batch, in the model's order (eval mode:
    batch norm uses its running statistics, so the numbers are those of the trained model)."""
    was_training = model.training
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)  # a job's model copy comes without gradients
    try:
        with torch.enable_grad():
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
        norms = {
            name: float(module.weight.grad.norm())
            for name, module in model.named_modules()
            if isinstance(module, layer_types) and module.weight.grad is not None
        }
        model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    return norms
