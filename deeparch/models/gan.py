"""Generative adversarial networks (task gan): DCGAN, a fully connected GAN, a conditional GAN."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 110  # Home's gallery: simplest idea first (registry.list_families)


class GAN(nn.Module):
    """A generator and a discriminator, trained against each other by the engine's gan task.

    generator(z[, labels]) -> images (N, C, H, W) in [-1, 1]; discriminator(x[, labels]) -> logits
    (N,), no sigmoid (the engine uses BCEWithLogits). num_classes is 0 for an unconditional GAN.
    Trained with Adam and the gan task's betas (0.5, 0.999); each architecture's train_defaults
    give its learning rate (the dcgan 1e-3, the MLP GANs the paper's 2e-4).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditional = num_classes > 0

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I) of shape (n, latent_dim); pass a seeded torch.Generator for fixed noise."""
        device = next(self.parameters()).device
        # A torch.Generator draws on its own device; the noise then moves to the model's.
        noise_device = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, generator=generator, device=noise_device)
        return z.to(device)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(G(z)): the logits the generator is trained to push up; traces both parts in one pass.

        A conditional GAN called without labels uses classes 0, 1, 2, ... in turn, so that a
        summary of the model can run it from noise alone.
        """
        if self.conditional and labels is None:
            labels = torch.arange(z.shape[0], device=z.device) % self.num_classes
        return self.discriminator(self.generator(z, labels), labels)


# ---------------------------------------------------------------- DCGAN


def dcgan_sizes(image_size: int) -> list[int]:
    """Side lengths from the image down to the 3x3 or 4x4 map the last conv reduces to 1x1.

    Each step halves, rounding up: an even side uses DCGAN's kernel 4 (stride 2, padding 1), an odd
    side kernel 3, so 64 -> 32 -> 16 -> 8 -> 4 (the paper) and 28 -> 14 -> 7 -> 4 (MNIST).
    """
    sizes = [image_size]
    while sizes[-1] > 4:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _kernel(side: int) -> int:
    return 4 if side % 2 == 0 else 3


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> transposed convs with BatchNorm and ReLU -> tanh images (N, C, S, S)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, ...], ngf: int) -> None:
        super().__init__()
        channels, image_size, _ = image_shape
        sizes = dcgan_sizes(image_size)
        widths = [channels] + [ngf * 2**level for level in range(len(sizes) - 1)]
        top = len(sizes) - 1
        layers: list[tuple[str, nn.Module]] = [
            # (N, latent_dim, 1, 1) -> (N, widths[top], f, f), f = the smallest side
            ("convt1", nn.ConvTranspose2d(latent_dim, widths[top], sizes[top], 1, 0, bias=False)),
            ("bn1", nn.BatchNorm2d(widths[top])),
            ("relu1", nn.ReLU()),
        ]
        for number, level in enumerate(range(top - 1, -1, -1), start=2):
            # (N, widths[level + 1], sizes[level + 1]^2) -> (N, widths[level], sizes[level]^2)
            upsample = nn.ConvTranspose2d(
                widths[level + 1], widths[level], _kernel(sizes[level]), 2, 1, bias=False
            )
            layers.append((f"convt{number}", upsample))
            if level > 0:
                layers.append((f"bn{number}", nn.BatchNorm2d(widths[level])))
                layers.append((f"relu{number}", nn.ReLU()))
        layers.append(("tanh", nn.Tanh()))  # images in [-1, 1], as the engine scales real data
        self.latent_dim = latent_dim
        self.net = nn.Sequential(OrderedDict(layers))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))  # (N, nz) -> (N, nz, 1, 1)


class DCGANDiscriminator(nn.Module):
    """Images (N, C, S, S) -> strided convs with LeakyReLU(0.2) and BatchNorm -> one logit (N,)."""

    def __init__(self, image_shape: tuple[int, ...], ndf: int) -> None:
        super().__init__()
        channels, image_size, _ = image_shape
        sizes = dcgan_sizes(image_size)
        widths = [channels] + [ndf * 2**level for level in range(len(sizes) - 1)]
        top = len(sizes) - 1
        layers: list[tuple[str, nn.Module]] = []
        for level in range(top):
            # (N, widths[level], sizes[level]^2) -> (N, widths[level + 1], sizes[level + 1]^2)
            number = level + 1
            downsample = nn.Conv2d(
                widths[level], widths[level + 1], _kernel(sizes[level]), 2, 1, bias=False
            )
            layers.append((f"conv{number}", downsample))
            if level > 0:  # the paper leaves BatchNorm off the discriminator's input layer
                layers.append((f"bn{number}", nn.BatchNorm2d(widths[level + 1])))
            layers.append((f"lrelu{number}", nn.LeakyReLU(0.2)))
        # (N, widths[top], f, f) -> (N, 1, 1, 1): a logit, no sigmoid
        layers.append((f"conv{top + 1}", nn.Conv2d(widths[top], 1, sizes[top], 1, 0, bias=False)))
        self.net = nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).view(-1)  # (N, 1, 1, 1) -> (N,)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. (2015): conv weights from N(0, 0.02), BatchNorm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_dcgan(
    image_size: int, channels: int, latent_dim: int = 100, ngf: int = 64, ndf: int = 64
) -> GAN:
    """A DCGAN for square images; image_size 64, channels 3 is the layout of Radford et al."""
    image_shape = (channels, image_size, image_size)
    model = GAN(
        DCGANGenerator(latent_dim, image_shape, ngf),
        DCGANDiscriminator(image_shape, ndf),
        latent_dim,
    )
    model.apply(dcgan_init)
    return model


# ---------------------------------------------------------------- fully connected GANs


class MLPGenerator(nn.Module):
    """z (and a label embedding when conditional) -> Linear, BatchNorm, LeakyReLU -> tanh images."""

    def __init__(
        self,
        latent_dim: int,
        hidden_sizes: tuple[int, ...],
        image_shape: tuple[int, ...],
        num_classes: int = 0,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        # Mirza & Osindero (2014): the condition enters as a learned vector appended to z.
        self.label_embedding = nn.Embedding(num_classes, num_classes) if num_classes else None
        sizes = (latent_dim + num_classes, *hidden_sizes)
        layers: list[tuple[str, nn.Module]] = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            layers.append((f"fc{i}", nn.Linear(n_in, n_out)))
            # BatchNorm after every hidden layer but the first (as DCGAN keeps it off the ends):
            # it stops the speckled, saturated pixels an unnormalised MLP generator drifts into.
            if batchnorm and i > 1:
                layers.append((f"bn{i}", nn.BatchNorm1d(n_out)))
            layers.append((f"lrelu{i}", nn.LeakyReLU(0.2)))
        layers += [
            (f"fc{len(sizes)}", nn.Linear(sizes[-1], math.prod(image_shape))),
            ("tanh", nn.Tanh()),
            ("unflatten", nn.Unflatten(1, tuple(image_shape))),  # -> (N, C, H, W)
        ]
        self.net = nn.Sequential(OrderedDict(layers))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels (N,) next to the noise")
            z = torch.cat([z, self.label_embedding(labels)], dim=1)  # (N, latent_dim + classes)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Flattened image (and label embedding) -> Linear + LeakyReLU + Dropout -> one logit (N,).

    When conditional, the label also enters at the end as a projection (Miyato & Koyama 2018):
    logit = w . h + embed(y) . h for the last hidden features h, so the score depends on whether
    the image fits its label, not only on whether it looks like a digit.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...],
        hidden_sizes: tuple[int, ...],
        dropout: float,
        num_classes: int = 0,
        projection: bool = True,
    ) -> None:
        super().__init__()
        self.label_embedding = nn.Embedding(num_classes, num_classes) if num_classes else None
        self.flatten = nn.Flatten()  # (N, C, H, W) -> (N, C*H*W)
        sizes = (math.prod(image_shape) + num_classes, *hidden_sizes)
        layers: list[tuple[str, nn.Module]] = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            layers += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"lrelu{i}", nn.LeakyReLU(0.2))]
            if dropout > 0:
                layers.append((f"dropout{i}", nn.Dropout(dropout)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.head = nn.Linear(sizes[-1], 1)  # a logit, no sigmoid
        self.projection = (
            nn.Embedding(num_classes, sizes[-1]) if num_classes and projection else None
        )
        if self.projection is not None:
            # Small start: the projection grows only as far as the label helps the score.
            nn.init.normal_(self.projection.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.flatten(x)
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels (N,) next to the images")
            features = torch.cat([features, self.label_embedding(labels)], dim=1)
        hidden = self.features(features)  # (N, last hidden size)
        logits = self.head(hidden).view(-1)  # (N, 1) -> (N,)
        if self.projection is not None:
            logits = logits + (self.projection(labels) * hidden).sum(dim=1)
        return logits


def build_mlp_gan(
    image_shape: tuple[int, ...],
    latent_dim: int,
    hidden_sizes: tuple[int, ...],
    dropout: float,
    num_classes: int = 0,
    batchnorm: bool = True,
    projection: bool = True,
) -> GAN:
    """The generator widens through hidden_sizes; the discriminator narrows through them."""
    return GAN(
        MLPGenerator(latent_dim, hidden_sizes, image_shape, num_classes, batchnorm),
        MLPDiscriminator(image_shape, hidden_sizes[::-1], dropout, num_classes, projection),
        latent_dim,
        num_classes,
    )


# ---------------------------------------------------------------- configs, checks, registration

_LATENT_HELP = "size of the noise vector z the generator starts from"


@dataclass(frozen=True)
class DCGANConfig:
    latent_dim: int = hp(100, _LATENT_HELP + " (100 in the DCGAN paper)", min=2, max=256)
    # 16, not the paper's 64: a quarter of the work per step, so one click's thousand steps
    # fit in about a minute on one CPU core and the samples become strokes, not blobs.
    ngf: int = hp(
        16, "generator width: channels of its last hidden layer (paper: 64)", min=4, max=128
    )
    ndf: int = hp(
        16, "discriminator width: channels of its first layer (paper: 64)", min=4, max=128
    )


@dataclass(frozen=True)
class MLPGANConfig:
    latent_dim: int = hp(100, _LATENT_HELP, min=2, max=256)
    hidden_sizes: tuple = hp(
        (256, 512, 1024),
        "generator widths; the discriminator uses them in reverse",
        min=8,
        max=4096,
    )
    dropout: float = hp(
        0.3,
        "dropout in the discriminator, so it does not win too early",
        min=0.0,
        max=0.9,
        step=0.05,
    )
    batchnorm: bool = hp(
        True, "BatchNorm in the generator's hidden layers (steadier, less speckled samples)"
    )
    projection: bool = hp(
        True, "cgan only: the discriminator also scores image-label fit (projection, Miyato 2018)"
    )


def check_dcgan(config: DCGANConfig, info: DataInfo) -> None:
    _, height, width = info.input_shape
    if height != width or height < 8:
        raise ConfigError(
            "dataset",
            info.name,
            "square images of at least 8x8",
            f"the DCGAN halves the side down to 4x4, which a {height}x{width} image does not allow",
        )


def check_cgan(config: MLPGANConfig, info: DataInfo) -> None:
    if info.num_classes < 2:
        raise ConfigError(
            "dataset",
            info.name,
            "a labelled dataset with at least 2 classes",
            "a conditional GAN generates an image of a chosen class",
        )


def _build_dcgan(config: DCGANConfig, info: DataInfo) -> GAN:
    channels, image_size, _ = info.input_shape
    return build_dcgan(image_size, channels, config.latent_dim, config.ngf, config.ndf)


def _build_mlp_gan(config: MLPGANConfig, info: DataInfo) -> GAN:
    return build_mlp_gan(
        info.input_shape,
        config.latent_dim,
        config.hidden_sizes,
        config.dropout,
        batchnorm=config.batchnorm,
    )


def _build_cgan(config: MLPGANConfig, info: DataInfo) -> GAN:
    return build_mlp_gan(
        info.input_shape,
        config.latent_dim,
        config.hidden_sizes,
        config.dropout,
        info.num_classes,
        config.batchnorm,
        config.projection,
    )


def _spec(
    name: str,
    config_cls: type,
    builder: Callable[[Any, DataInfo], nn.Module],
    check: Callable[[Any, DataInfo], None] | None,
    description: str,
    train_defaults: dict[str, Any],
) -> ArchSpec:
    return ArchSpec(
        name=name,
        task="gan",
        config_cls=config_cls,
        builder=builder,
        data_kinds=("image",),
        default_dataset="mnist",
        train_defaults=train_defaults,
        description=description,
        check=check,
    )


register(
    _spec(
        "dcgan",
        DCGANConfig,
        _build_dcgan,
        check_dcgan,
        "A deep convolutional GAN (Radford et al. 2015). The generator grows a noise vector into "
        "an image with transposed convolutions, BatchNorm and ReLU, ending in tanh; the "
        "discriminator shrinks an image to one real-or-fake score with strided convolutions and "
        "LeakyReLU. Sized from the data: 28x28 for MNIST, 32x32 for CIFAR-10.",
        # About a thousand steps at 1e-3 (the paper's 2e-4 still draws blobs after 300 steps):
        # digit strokes, 35% of them read with confidence by a digit classifier, 53 s of one
        # CPU thread here (deeparch.bench.defaults).
        {"epochs": 16, "lr": 1e-3},
    )
)
register(
    _spec(
        "mlp_gan",
        MLPGANConfig,
        _build_mlp_gan,
        None,
        "The original GAN setup (Goodfellow et al. 2014) with fully connected layers: a "
        "generator maps noise to a flattened image, a discriminator scores flattened images, and "
        "each learns by trying to beat the other.",
        {"epochs": 20, "lr": 2e-4},
    )
)
register(
    _spec(
        "cgan",
        MLPGANConfig,
        _build_cgan,
        check_cgan,
        "A conditional GAN (Mirza & Osindero 2014): both networks also receive the class label "
        "as a learned embedding (the discriminator also scores how well image and label fit, a "
        "projection after Miyato & Koyama 2018), so after training you choose which digit (or "
        "garment) the generator draws.",
        {"epochs": 20, "lr": 2e-4},
    )
)
