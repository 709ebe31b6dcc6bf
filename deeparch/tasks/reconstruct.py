"""Reconstruction tasks: autoencoders (reconstruct) and U-Net denoisers (denoise).

The model offers encode(x) -> code, decode(code) -> x and penalty(code) (reconstruct), or
model(noisy) -> clean estimate (denoise).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import SHOW_EXAMPLES, Task, evaluation_mode, to_numpy


def reconstruction_error(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per value: the autoencoder's reconstruction loss (Hinton & Salakhutdinov
    2006 train deep autoencoders on squared error)."""
    return F.mse_loss(reconstruction, target)


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

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        noisy = self.corrupt(x)
        code = self.model.encode(noisy)
        reconstruction = reconstruction_error(self.model.decode(code), x)
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
    """U-Nets: model(noisy) -> clean estimate; mean squared error to the clean input."""

    name = "denoise"
    summary_metrics = ("val_mse",)
    best_by = ("val_mse", "min")

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        noisy = self.corrupt(x)
        mse = reconstruction_error(self.model(noisy), x)
        return {"loss": mse, "mse": mse.detach()}
