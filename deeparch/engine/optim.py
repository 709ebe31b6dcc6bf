"""Optimizers by name and the choice of device: the one place these names are spelled out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch

from deeparch.errors import ConfigError, UnknownNameError

logger = logging.getLogger(__name__)

# name -> (class, fixed keyword arguments). SGD's momentum is TrainConfig.momentum, classical
# momentum 0.9 by default (Sutskever et al. 2013), 0 for plain SGD; the others keep PyTorch's
# defaults, which are the published ones. Adadelta (Zeiler 2012) scales
# each step by the ratio of running RMS of past updates to past gradients, so its learning rate is
# a multiplier of that step: the paper's rule is lr = 1.0.
OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adagrad": (torch.optim.Adagrad, {}),
    "adadelta": (torch.optim.Adadelta, {}),
}

# Optimizers with a fused implementation (PyTorch 2.4+ on the CPU, CUDA and MPS); RMSprop and
# Adadelta have none.
FUSED_CAPABLE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

DEFAULT_MOMENTUM = 0.9
# The optimizers whose update TrainConfig.momentum sets (the others ignore it, so a value other
# than the default with them is refused by TrainConfig.validate rather than silently dropped).
MOMENTUM_OPTIMIZERS = ("sgd",)


def optimizer_arguments(
    name: str, lr: float, weight_decay: float = 0.0, momentum: float = DEFAULT_MOMENTUM
) -> dict[str, Any]:
    """The keyword arguments of optimizer `name` for these settings (the engine's and the
    exported script's: one place)."""
    try:
        _cls, fixed_kwargs = OPTIMIZERS[name]
    except KeyError:
        raise UnknownNameError("optimizer", name, list(OPTIMIZERS)) from None
    arguments = {"lr": lr, "weight_decay": weight_decay, **fixed_kwargs}
    if name in MOMENTUM_OPTIMIZERS:
        arguments["momentum"] = momentum
    return arguments


def make_optimizer(
    name: str,
    params: Iterable[Any],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = DEFAULT_MOMENTUM,
) -> torch.optim.Optimizer:
    """An optimizer by name over parameters or parameter groups."""
    arguments = optimizer_arguments(name, lr, weight_decay, momentum)
    optimizer_cls = OPTIMIZERS[name][0]
    params = list(params)
    if optimizer_cls in FUSED_CAPABLE:
        try:
            # The same update in one kernel per step instead of several per parameter tensor:
            # for a small model the optimizer step is a large part of a training step on the CPU.
            return optimizer_cls(params, fused=True, **arguments)
        except (RuntimeError, ValueError, TypeError) as error:
            logger.debug("fused %s unavailable here (%s); using the default kernels", name, error)
    return optimizer_cls(params, **arguments)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(name: str = "auto") -> torch.device:
    """The device to train on: `auto` takes CUDA, then Apple's MPS, then the CPU."""
    if name not in DEVICE_CHOICES:
        raise ConfigError("device", name, "one of " + ", ".join(DEVICE_CHOICES))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "auto or cpu", "no CUDA GPU is visible to PyTorch here")
    if name == "mps" and not _mps_available():
        raise ConfigError("device", name, "auto or cpu", "Apple's MPS backend is missing here")
    return torch.device(name)


def device_available(name: str) -> bool:
    """Whether choose_device(name) finds that device here."""
    return {"cuda": torch.cuda.is_available, "mps": _mps_available}.get(name, lambda: True)()


def default_max_running() -> int:
    """How many jobs may train at once: one per GPU, else one per two CPU cores."""
    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    import os

    return max(1, (os.cpu_count() or 2) // 2)
