"""Randomness that belongs to one job (or one view), never to the process.

PyTorch's default generator is shared by every thread of the process: two jobs that both reseed and
draw from it interleave their draws, so neither reproduces a run done alone. Each job therefore
owns its generators (`JobGenerators`: one torch.Generator on the CPU, one on the training device,
one numpy Generator) and makes them current for its thread with `use_generators`. Code that draws
noise during training asks `current_generator(device)` (`randn_like`, `Dropout`); outside a job it
falls back to the default generator, exactly like plain PyTorch.

Two things in PyTorch take no generator at all: a module's constructor (its `reset_parameters`
draws the initial weights from the default generator) and the dropout inside a multi-layer
nn.LSTM/GRU/RNN kernel. Only for those, `borrowed_global_generator(seed)` lends the default
generator under one process-wide lock, seeded, and restores its state afterwards, so its draws
depend on the seed alone and never on what another thread was doing.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Mixing constants: a step's seed is a function of (seed, step) only, so a resumed run draws
# exactly what the uninterrupted run drew at that step.
_STEP_MULTIPLIER = 1_000_003
_SEED_MODULUS = 2**63 - 1


def step_seed(seed: int, step: int) -> int:
    """The seed of one training step: a function of (seed, step) only."""
    return (seed * _STEP_MULTIPLIER + step) % _SEED_MODULUS


class JobGenerators:
    """The generators of one job: `cpu` (shuffling, sampling), `device` (dropout and noise where
    the model trains) and `numpy`. `reseed(seed)` sets all three from one number."""

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.cpu = torch.Generator()
        self.on_device = self.cpu if self.device.type == "cpu" else torch.Generator(self.device)
        self.numpy = np.random.default_rng(seed)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        # About 2 us for the torch generators; torch.manual_seed would visit every backend.
        self.cpu.manual_seed(seed)
        if self.on_device is not self.cpu:
            self.on_device.manual_seed(seed)
        self.numpy = np.random.default_rng(seed)

    def for_device(self, device: torch.device) -> torch.Generator:
        """The generator that draws on `device` (the CPU one for CPU tensors)."""
        return self.cpu if device.type == "cpu" else self.on_device


_current: contextvars.ContextVar[JobGenerators | None] = contextvars.ContextVar(
    "deeparch_generators", default=None
)


@contextlib.contextmanager
def use_generators(generators: JobGenerators) -> Iterator[JobGenerators]:
    """Make a job's generators the current ones in this thread for the block."""
    token = _current.set(generators)
    try:
        yield generators
    finally:
        _current.reset(token)


def current_generator(device: torch.device) -> torch.Generator | None:
    """The current job's generator for `device`; None outside a job (the default generator)."""
    generators = _current.get()
    return None if generators is None else generators.for_device(device)


def randn_like(tensor: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like `tensor`, from the current job's generator."""
    generator = current_generator(tensor.device)
    return torch.randn(tensor.shape, generator=generator, device=tensor.device, dtype=tensor.dtype)


def drop_with(
    x: torch.Tensor, p: float, generator: torch.Generator, inplace: bool = False
) -> torch.Tensor:
    """Dropout in training mode, its mask drawn from `generator`: each value zeroed with
    probability p, the survivors scaled by 1 / (1 - p) (deeparch.randomness; an exported script
    copies it, so that its masks are the engine's, draw for draw)."""
    if p == 1.0:
        return x.mul(0.0) if not inplace else x.zero_()
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    scaled = keep.div_(1.0 - p)
    return x.mul_(scaled) if inplace else x * scaled


class Dropout(nn.Dropout):
    """nn.Dropout (Srivastava et al. 2014) that draws its mask from the current job's generator.

    The same expected output as nn.Dropout: each value is zeroed with probability p and the
    survivors are scaled by 1 / (1 - p). Outside a job it is exactly F.dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = current_generator(x.device)
        if not self.training or self.p == 0.0 or generator is None:
            return F.dropout(x, self.p, self.training, self.inplace)
        return drop_with(x, self.p, generator, self.inplace)


def use_job_dropout(model: nn.Module) -> nn.Module:
    """Replace every plain nn.Dropout in a model (a torchvision model's, say) by `Dropout`.

    Same p and inplace, no parameters or buffers, so state dicts and parameter tables are unchanged.
    """
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p, child.inplace))
    return model


_GLOBAL_GENERATOR_LOCK = threading.RLock()


@contextlib.contextmanager
def borrowed_global_generator(seed: int, devices: list[torch.device] | None = None) -> Iterator:
    """The process-wide default generator, seeded, for code that takes no generator.

    Held under one lock, so no other borrower draws in between; the generator's state before the
    block is restored after it. `devices` lists accelerators whose default generators are lent too.
    """
    cuda_indices = [d.index or 0 for d in devices or [] if d.type == "cuda"]
    with _GLOBAL_GENERATOR_LOCK, torch.random.fork_rng(devices=cuda_indices):
        torch.default_generator.manual_seed(seed)
        for index in cuda_indices:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def draws_from_global_generator(model: nn.Module) -> bool:
    """Whether training the model draws from the default generator no matter what: a multi-layer
    recurrent module with dropout (the kernel applies it between layers without a generator)."""
    return any(
        isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1
        for module in model.modules()
    )


def seed_from(generator: torch.Generator) -> int:
    """A fresh seed drawn from a generator (to seed a borrowed default generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))
