"""Variational autoencoders (task vae): dense 784-400-20 and convolutional (loss: tasks/vae.py)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register
from deeparch.randomness import current_generator

GALLERY_POSITION = 90  # Home's gallery: simplest idea first (registry.list_families)

# ---------------------------------------------------------------- models


class VariationalAutoencoder(nn.Module):
    """encoder -> (mu, logvar) heads -> a sampled z -> decoder -> images in [0, 1].

    In training mode z is sampled with the reparameterisation trick; in eval mode z = mu, so
    reconstructions shown to a student are deterministic.
    """

    # The inspector counts the mu and logvar heads as part of the encoder (they read its features).
    inspector_parts = {"mu": "encoder", "logvar": "encoder"}

    def __init__(
        self,
        encoder: nn.Module,
        features: int,
        decoder: nn.Module,
        latent_dim: int,
        beta: float,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.beta = beta
        self.encoder = encoder  # (N, C, H, W) -> (N, features)
        self.mu = nn.Linear(features, latent_dim)
        self.logvar = nn.Linear(features, latent_dim)
        self.decoder = decoder  # (N, latent_dim) -> (N, C, H, W)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        return self.mu(features), self.logvar(features)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), so gradients flow through mu and sigma."""
        if not self.training:
            return mu
        std = torch.exp(0.5 * logvar)
        if generator is None:  # the current job's generator (or the default one outside a job)
            generator = current_generator(std.device)
        eps = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new images decoded from z ~ N(0, I), the prior the KL term pulls the codes towards."""
        device = self.mu.weight.device
        # A torch.Generator draws on its own device; the noise then moves to the model's.
        noise_device = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, generator=generator, device=noise_device)
        return self.decode(z.to(device))


def dense_vae(
    input_shape: tuple[int, ...], hidden_sizes: tuple[int, ...], latent_dim: int, beta: float
) -> VariationalAutoencoder:
    """pytorch/examples' VAE generalised: 784-400-20 (mu and logvar) and 20-400-784 back."""
    n_inputs = math.prod(input_shape)
    encoder: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]  # -> (N, C*H*W)
    for i, (n_in, n_out) in enumerate(zip((n_inputs, *hidden_sizes), hidden_sizes), start=1):
        encoder += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"relu{i}", nn.ReLU())]
    decoder: list[tuple[str, nn.Module]] = []
    up = (latent_dim, *hidden_sizes[::-1])
    for i, (n_in, n_out) in enumerate(zip(up, up[1:]), start=1):
        decoder += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"relu{i}", nn.ReLU())]
    decoder += [
        (f"fc{len(up)}", nn.Linear(up[-1], n_inputs)),
        ("sigmoid", nn.Sigmoid()),  # Bernoulli means: pixel intensities in [0, 1]
        ("unflatten", nn.Unflatten(1, tuple(input_shape))),  # -> (N, C, H, W)
    ]
    return VariationalAutoencoder(
        nn.Sequential(OrderedDict(encoder)),
        hidden_sizes[-1],
        nn.Sequential(OrderedDict(decoder)),
        latent_dim,
        beta,
    )


def halved(size: int) -> int:
    """Side length after a conv of kernel 4, stride 2, padding 1: floor(size / 2)."""
    return (size + 2 * 1 - 4) // 2 + 1


def conv_vae_model(
    input_shape: tuple[int, ...], capacity: int, latent_dim: int, beta: float
) -> VariationalAutoencoder:
    """Two stride-2 convs (c, 2c channels) down, and two transposed convs back to the input size.

    Kernel 4 avoids the checkerboard artefacts of kernels not divisible by the stride (Odena et
    al., Distill 2016). A transposed conv (k4, s2, p1) doubles the side; output_padding adds the
    row lost when an odd side was halved, so the output is exactly the input size (no cropping).
    """
    channels, height, width = input_shape
    heights = [height, halved(height), halved(halved(height))]
    widths = [width, halved(width), halved(halved(width))]
    bottom = (2 * capacity, heights[2], widths[2])
    encoder = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(channels, capacity, 4, 2, 1),  # -> (N, c, H/2, W/2)
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(capacity, 2 * capacity, 4, 2, 1),  # -> (N, 2c, H/4, W/4)
            relu2=nn.ReLU(),
            flatten=nn.Flatten(),  # -> (N, 2c * H/4 * W/4)
        )
    )
    decoder = nn.Sequential(
        OrderedDict(
            fc=nn.Linear(latent_dim, math.prod(bottom)),
            unflatten=nn.Unflatten(1, bottom),  # -> (N, 2c, H/4, W/4)
            deconv2=nn.ConvTranspose2d(
                2 * capacity,
                capacity,
                4,
                2,
                1,
                output_padding=(heights[1] - 2 * heights[2], widths[1] - 2 * widths[2]),
            ),
            relu2=nn.ReLU(),
            deconv1=nn.ConvTranspose2d(
                capacity,
                channels,
                4,
                2,
                1,
                output_padding=(heights[0] - 2 * heights[1], widths[0] - 2 * widths[1]),
            ),
            sigmoid=nn.Sigmoid(),  # -> (N, C, H, W) in [0, 1]
        )
    )
    return VariationalAutoencoder(encoder, math.prod(bottom), decoder, latent_dim, beta)


# ---------------------------------------------------------------- configs, checks, registration

_LATENT_HELP = "size of z; 2 lets you walk the latent space as a grid of images"
_BETA_HELP = "weight of the KL term: 1 is the VAE, above 1 a beta-VAE, 0 a plain autoencoder"


@dataclass(frozen=True)
class VAEConfig:
    hidden_sizes: tuple = hp(
        (400,), "widths of the encoder's hidden layers (the decoder mirrors them)", min=1, max=4096
    )
    latent_dim: int = hp(20, _LATENT_HELP, min=2, max=128)
    beta: float = hp(1.0, _BETA_HELP, min=0.0, max=10.0, step=0.1)


@dataclass(frozen=True)
class ConvVAEConfig:
    capacity: int = hp(
        32, "channels of the first conv; the second has twice as many", min=1, max=256
    )
    latent_dim: int = hp(2, _LATENT_HELP, min=2, max=128)
    beta: float = hp(1.0, _BETA_HELP, min=0.0, max=10.0, step=0.1)


def check_conv_vae(config: ConvVAEConfig, info: DataInfo) -> None:
    _, height, width = info.input_shape
    if min(height, width) < 4:
        raise ConfigError(
            "dataset",
            info.name,
            "images of at least 4x4",
            f"two stride-2 convolutions leave nothing of a {height}x{width} image",
        )


def build_vae(config: VAEConfig, info: DataInfo) -> VariationalAutoencoder:
    return dense_vae(info.input_shape, config.hidden_sizes, config.latent_dim, config.beta)


def build_conv_vae(config: ConvVAEConfig, info: DataInfo) -> VariationalAutoencoder:
    return conv_vae_model(info.input_shape, config.capacity, config.latent_dim, config.beta)


register(
    ArchSpec(
        name="vae",
        task="vae",
        config_cls=VAEConfig,
        builder=build_vae,
        data_kinds=("image",),
        default_dataset="mnist",
        train_defaults={"epochs": 10},
        description=(
            "A variational autoencoder (Kingma & Welling 2014), 784-400-20 as in pytorch/examples. "
            "The encoder gives a mean and a log-variance for each latent dimension instead of one "
            "code; training samples z from that Gaussian and a KL term keeps the codes close to "
            "N(0, I), so decoding random z ~ N(0, I) produces new digits."
        ),
    )
)
register(
    ArchSpec(
        name="conv_vae",
        task="vae",
        config_cls=ConvVAEConfig,
        builder=build_conv_vae,
        data_kinds=("image",),
        default_dataset="mnist",
        # lr 3e-3: reconstruction error 0.87 of the best linear 2-number code's (PCA with 2
        # components) after 10 epochs; at 1e-3 0.90.
        train_defaults={"epochs": 10, "lr": 3e-3},
        description=(
            "A convolutional VAE: two stride-2 convolutions (capacity and twice capacity "
            "channels) feed the mean and log-variance heads, and two transposed convolutions "
            "decode z back to an image of exactly the input size. With latent_dim 2 the whole "
            "latent space can be drawn as a grid of decoded images."
        ),
        check=check_conv_vae,
    )
)
