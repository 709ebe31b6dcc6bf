"""The VAE task and its loss: reconstruction + beta * KL (Kingma & Welling 2014).

The model offers model(x) -> (recon, mu, logvar), encode(x) -> (mu, logvar), decode(z) and
latent_dim.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import SHOW_EXAMPLES, Task, evaluation_mode, to_numpy
from deeparch.tasks.reconstruct import LOSS_FUNCTIONS

SAMPLE_COUNT = 16  # decoded VAE samples per snapshot (a 4 x 4 grid)


def bernoulli_reconstruction(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) for Bernoulli pixels: BCE summed over every pixel, averaged over the batch."""
    return F.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0]


def summed_reconstruction(recon: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The reconstruction term per image, summed over pixels as the ELBO sums log-likelihoods:
    bce (Bernoulli pixels), mse (a Gaussian decoder of fixed variance, up to a constant and a
    factor) or l1 (a Laplace decoder, likewise)."""
    return LOSS_FUNCTIONS[kind](recon, x, reduction="sum") / x.shape[0]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, averaged over the batch.

    Closed form from Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014), appendix B:
    -KL = 1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative ELBO of Kingma & Welling (2014), split into (reconstruction, beta * kl).

    The second term already carries the weight beta (beta-VAE, Higgins et al. 2017; beta = 1 is the
    plain VAE), so the loss to minimise is the sum of the two; both are per-image averages over
    the batch, the reconstruction summed over pixels as the log-likelihood demands.
    """
    return bernoulli_reconstruction(recon, x), beta * kl_divergence(mu, logvar)


class VaeTask(Task):
    """Variational autoencoders: reconstruction + beta * KL (Kingma & Welling 2014)."""

    name = "vae"
    summary_metrics = ("val_reconstruction", "val_kl", "val_loss")

    @dataclasses.dataclass(frozen=True)
    class Settings:
        beta: float = 1.0  # the KL term's weight (beta-VAE, Higgins et al. 2017; 1: the plain VAE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fixed = torch.Generator().manual_seed(int(self.config.seed))
        # The same latent points decoded at every snapshot, so samples change only with training.
        self.fixed_z = torch.randn(SAMPLE_COUNT, int(self.model.latent_dim), generator=fixed).to(
            self.device
        )

    @property
    def loss_kind(self) -> str:
        """The reconstruction term: the run's choice, Bernoulli cross-entropy by default."""
        chosen = getattr(self.config, "reconstruction_loss", "default")
        return "bce" if chosen == "default" else chosen

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        recon, mu, logvar = self.model(x)
        if self.loss_kind == "bce":
            reconstruction, kl = vae_loss(recon, x, mu, logvar, float(self.settings.beta))
        else:
            reconstruction = summed_reconstruction(recon, x, self.loss_kind)
            kl = float(self.settings.beta) * kl_divergence(mu, logvar)
        return {"loss": reconstruction + kl, "reconstruction": reconstruction.detach(), "kl": kl}

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        with evaluation_mode(self.model):
            mu, _ = self.model.encode(x)  # (M, latent_dim)
            recon, _, _ = self.model(x[:SHOW_EXAMPLES])
            samples = self.model.decode(self.fixed_z)
        return {
            "latent_means": to_numpy(mu),
            "labels": to_numpy(y),
            "samples": to_numpy(samples),
            "originals": to_numpy(x[:SHOW_EXAMPLES]),
            "reconstructions": to_numpy(recon),
        }
