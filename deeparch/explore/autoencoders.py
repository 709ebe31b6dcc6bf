"""PCA vs linear and nonlinear autoencoders of one code size (Goodfellow et al. 2016, sec. 14.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.explore.views import train_on_random_batches
from deeparch.models import create_model
from deeparch.randomness import borrowed_global_generator, use_job_dropout

METHODS = ("PCA", "linear autoencoder", "nonlinear autoencoder")


@dataclass
class ReconstructionComparison:
    """Validation reconstruction error (mean squared error per pixel) of each method."""

    code_size: int
    errors: dict[str, float]  # method -> validation MSE per pixel
    originals: np.ndarray  # (n, C, H, W)
    reconstructions: dict[str, np.ndarray]  # method -> (n, C, H, W)
    train_losses: dict[str, list[float]]  # autoencoder -> training MSE per step


class PCAModel:
    """Principal component analysis by SVD: code = (x - mean) V_k, x_hat = mean + code V_k^T."""

    def __init__(self, x_train: torch.Tensor, code_size: int) -> None:
        flat = x_train.reshape(len(x_train), -1).double()  # (N, D)
        self.mean = flat.mean(dim=0, keepdim=True)
        # Right singular vectors of the centred data are the principal axes (rows of vt).
        _u, _s, vt = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = vt[:code_size]  # (k, D)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(len(x), -1).double() - self.mean) @ self.components.T  # (N, k)

    def decode(self, code: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return (self.mean + code @ self.components).float().reshape(len(code), *shape)


# The autoencoders compared with PCA: registry architectures (name, overrides beyond code_size).
# The linear one has a linear output so that, trained with MSE, it can reach PCA's subspace.
AUTOENCODER_ARCHS = {
    "linear autoencoder": ("linear_autoencoder", {"output": "linear"}),
    "nonlinear autoencoder": (
        "autoencoder",
        {"hidden_sizes": (256,), "code_activation": "identity", "activation": "relu"},
    ),
}
# Adam learning rates for a short run: the linear model's loss surface is smooth enough for a
# larger step, which brings it close to PCA in a few hundred steps (measured on bundled mnist).
LEARNING_RATES = {"linear autoencoder": 1e-2, "nonlinear autoencoder": 3e-3}


def build_autoencoder(method: str, code_size: int, info: DataInfo) -> nn.Module:
    """A fresh registry autoencoder of the given method and code size for a dataset."""
    arch, overrides = AUTOENCODER_ARCHS[method]
    model, _config = create_model(arch, {**overrides, "code_size": code_size}, info)
    return model


def train_autoencoder(
    model: nn.Module,
    x_train: torch.Tensor,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Minimise the MSE between inputs and their reconstructions; returns the loss per step."""
    return train_on_random_batches(
        model, x_train, x_train, nn.functional.mse_loss, steps, batch_size, lr, seed
    )


def compare_reconstruction(
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    info: DataInfo,
    code_size: int,
    steps: int = 300,
    examples: int = 8,
    seed: int = 0,
) -> ReconstructionComparison:
    """Fit PCA and train both autoencoders on x_train; report MSE per pixel on x_val."""
    input_size = int(np.prod(x_train.shape[1:]))
    if not 1 <= code_size <= min(input_size, len(x_train)):
        raise ConfigError(
            "code_size", code_size, f"an integer from 1 to {min(input_size, len(x_train))}"
        )
    if not 0 <= steps <= 5000:
        raise ConfigError("steps", steps, "an integer from 0 to 5000")
    shape = tuple(x_train.shape[1:])
    flat_val = x_val.reshape(len(x_val), -1).float()

    pca = PCAModel(x_train, code_size)
    reconstructions = {"PCA": pca.decode(pca.encode(x_val), shape)}
    train_losses: dict[str, list[float]] = {}
    for name in AUTOENCODER_ARCHS:
        with borrowed_global_generator(seed):  # initial weights from the seed alone
            model = use_job_dropout(build_autoencoder(name, code_size, info))
        train_losses[name] = train_autoencoder(
            model, x_train.float(), steps, lr=LEARNING_RATES[name], seed=seed
        )
        with torch.no_grad():
            reconstructions[name] = model(x_val.float())
    errors = {
        name: float(((recon.reshape(len(x_val), -1) - flat_val) ** 2).mean())
        for name, recon in reconstructions.items()
    }
    return ReconstructionComparison(
        code_size=code_size,
        errors=errors,
        originals=x_val[:examples].float().numpy(),
        reconstructions={k: v[:examples].clamp(0, 1).numpy() for k, v in reconstructions.items()},
        train_losses=train_losses,
    )
