"""Reconstruction tasks: autoencoders (reconstruct) and U-Net denoisers (denoise).

The model offers encode(x) -> code, decode(code) -> x and penalty(code) (reconstruct), or
model(noisy) -> clean estimate (denoise).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from deeparch.errors import ConfigError
from deeparch.tasks.base import SHOW_EXAMPLES, Task, evaluation_mode, to_numpy

# The reconstruction losses a run may choose (TrainConfig.reconstruction_loss): "default" is the
# task's own (squared error for autoencoders and U-Nets, Bernoulli cross-entropy for VAEs).
RECONSTRUCTION_LOSSES = ("default", "mse", "bce", "l1")
RECONSTRUCTION_TASKS = ("reconstruct", "denoise", "vae")
LOSS_FUNCTIONS = {"mse": F.mse_loss, "bce": F.binary_cross_entropy, "l1": F.l1_loss}


def reconstruction_error(
    reconstruction: torch.Tensor, target: torch.Tensor, kind: str = "mse"
) -> torch.Tensor:
    """The reconstruction loss per value, averaged: mse (Hinton & Salakhutdinov 2006 train deep
    autoencoders on squared error), bce (pixels as Bernoulli probabilities; Bengio et al. 2007)
    or l1 (absolute error: less pull from a few badly reconstructed pixels)."""
    return LOSS_FUNCTIONS[kind](reconstruction, target)


def check_output_range(kind: str, output: torch.Tensor, target: torch.Tensor, arch: str) -> None:
    """BCE reads output and target as probabilities: where either leaves [0, 1] it cannot apply
    (a linear output layer; signals such as MNIST-1D's)."""
    if kind != "bce":
        return
    for what, values in (("output", output), ("data", target)):
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ConfigError(
                "reconstruction_loss",
                kind,
                f"mse or l1 for {arch}, whose {what} is not in [0, 1]",
                f"one batch's {what} spans {low:.3g} to {high:.3g}; BCE needs probabilities",
            )


def corrupt(
    x: torch.Tensor, noise_std: float, generator: torch.Generator, clamp: bool
) -> torch.Tensor:
    """Additive Gaussian noise (denoising autoencoders, Vincent et al. 2008), clamped for images."""
    if noise_std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    noisy = x + noise_std * noise
    return noisy.clamp(0.0, 1.0) if clamp else noisy


class ReconstructTask(Task):
    """Autoencoders: reconstruct the clean input from a (possibly corrupted) one, plus a penalty."""

    name = "reconstruct"
    summary_metrics = ("val_reconstruction", "val_loss")

    @dataclasses.dataclass(frozen=True)
    class Settings:
        # Gaussian noise on the inputs during training (a denoising autoencoder's noise_std).
        noise_std: float = 0.0

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        clamp = self.info.kind == "image"
        return corrupt(x, float(self.settings.noise_std), self.noise, clamp=clamp)

    @property
    def loss_kind(self) -> str:
        """The reconstruction loss: the run's choice, squared error by default."""
        chosen = getattr(self.config, "reconstruction_loss", "default")
        return "mse" if chosen == "default" else chosen

    def dry_run(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        # Before the loss runs, so a BCE that cannot apply is named rather than failing inside.
        with evaluation_mode(self.model):
            check_output_range(self.loss_kind, self.model(batch[0]), batch[0], self.config.arch)
        super().dry_run(batch)

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        noisy = self.corrupt(x)
        code = self.model.encode(noisy)
        reconstruction = reconstruction_error(self.model.decode(code), x, self.loss_kind)
        penalty = self.model.penalty(code)
        return {
            "loss": reconstruction + penalty,
            "reconstruction": reconstruction.detach(),
            "penalty": penalty.detach(),
        }

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        originals = x[:SHOW_EXAMPLES]
        self.noise.manual_seed(int(self.config.seed))  # the same corrupted inputs every time
        with evaluation_mode(self.model):
            inputs = self.corrupt(originals)
            reconstructions = self.model(inputs)
        return {
            "originals": to_numpy(originals),
            "inputs": to_numpy(inputs),
            "reconstructions": to_numpy(reconstructions),
        }


class DenoiseTask(ReconstructTask):
    """U-Nets: model(noisy) -> clean estimate; its error to the clean input (mean squared error
    by default), reported under the loss's name (mse, bce or l1)."""

    name = "denoise"
    summary_metrics = ("val_mse",)
    best_by = ("val_mse", "min")

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        noisy = self.corrupt(x)
        error = reconstruction_error(self.model(noisy), x, self.loss_kind)
        return {"loss": error, self.loss_kind: error.detach()}
