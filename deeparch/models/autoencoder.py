"""Autoencoders (task reconstruct): dense, deep, convolutional, denoising, sparse and linear."""

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

GALLERY_POSITION = 80  # Home's gallery: simplest idea first (registry.list_families)

# One place for the activation names a config may use.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid")
CODE_ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh")


# ---------------------------------------------------------------- sparsity penalties (pure)


def l1_sparsity(code: torch.Tensor) -> torch.Tensor:
    """L1 activity penalty: sum over code units of |code|, averaged over the batch."""
    return code.abs().sum(dim=1).mean()


def kl_sparsity(code: torch.Tensor, target: float) -> torch.Tensor:
    """Sum over code units j of KL(rho || rho_hat_j), rho_hat_j the batch-mean activation of unit j.

    Andrew Ng, "Sparse autoencoder", CS294A lecture notes (2011), section 2.3: each unit is
    treated as a Bernoulli variable with mean rho_hat_j and pulled towards the small target mean
    rho. The code must lie in (0, 1) (sigmoid units).
    """
    rho_hat = code.mean(dim=0).clamp(1e-6, 1 - 1e-6)  # (code_size,)
    rho = target
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


# ---------------------------------------------------------------- models


class Autoencoder(nn.Module):
    """encoder: image -> code (N, code_size); decoder: code -> image (N, C, H, W).

    Subclasses only build `encoder` and `decoder`; the reconstruct-task interface lives here.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code_size: int,
        noise_std: float = 0.0,
        sparsity: str = "none",
        sparsity_weight: float = 0.0,
        sparsity_target: float = 0.05,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.code_size = code_size
        self.noise_std = noise_std  # the engine corrupts inputs with this; the model never does
        self.sparsity = sparsity
        self.sparsity_weight = sparsity_weight
        self.sparsity_target = sparsity_target
        self.encoder: nn.Module = nn.Identity()
        self.decoder: nn.Module = nn.Identity()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        """The weighted sparsity term to add to the reconstruction loss (0 without sparsity)."""
        if self.sparsity == "l1":
            return self.sparsity_weight * l1_sparsity(code)
        if self.sparsity == "kl":
            return self.sparsity_weight * kl_sparsity(code, self.sparsity_target)
        return code.new_zeros(())


def _dense_layers(sizes: list[int], activation: str, prefix: str) -> list[tuple[str, nn.Module]]:
    """Linear layers through `sizes`, each followed by the activation (the caller adds the last)."""
    layers: list[tuple[str, nn.Module]] = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers.append((f"{prefix}{index}", nn.Linear(n_in, n_out)))
        if index < len(sizes) - 1:
            layers.append((f"{activation}{index}", ACTIVATIONS[activation]()))
    return layers


class DenseAutoencoder(Autoencoder):
    """Fully connected: flatten, hidden_sizes down to the code, and the mirror image back up."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden_sizes: tuple[int, ...],
        code_size: int,
        activation: str = "relu",
        code_activation: str = "identity",
        output: str = "sigmoid",
        **kwargs: float | str,
    ) -> None:
        super().__init__(input_shape, code_size, **kwargs)
        n_inputs = math.prod(self.input_shape)
        down = [n_inputs, *hidden_sizes, code_size]
        encoder = [("flatten", nn.Flatten())]  # (N, C, H, W) -> (N, C*H*W)
        encoder += _dense_layers(down, activation, "fc")
        if code_activation != "identity":
            encoder.append(("code_" + code_activation, ACTIVATIONS[code_activation]()))
        decoder = _dense_layers(down[::-1], activation, "fc")
        if output == "sigmoid":  # pixels are intensities in [0, 1]
            decoder.append(("sigmoid", nn.Sigmoid()))
        decoder.append(("unflatten", nn.Unflatten(1, self.input_shape)))  # -> (N, C, H, W)
        self.encoder = nn.Sequential(OrderedDict(encoder))
        self.decoder = nn.Sequential(OrderedDict(decoder))


def conv_sizes(size: int, depth: int) -> list[int]:
    """Side lengths through `depth` convs of kernel 3, stride 2, padding 1: ceil(size / 2) each."""
    sizes = [size]
    for _ in range(depth):
        sizes.append((sizes[-1] + 2 * 1 - 3) // 2 + 1)
    return sizes


class ConvAutoencoder(Autoencoder):
    """Stride-2 convolutions down, a linear code, transposed convolutions back to the exact size."""

    def __init__(
        self, input_shape: tuple[int, ...], channels: tuple[int, ...], code_size: int
    ) -> None:
        super().__init__(input_shape, code_size)
        in_channels, height, width = self.input_shape
        heights, widths = conv_sizes(height, len(channels)), conv_sizes(width, len(channels))
        map_channels = [in_channels, *channels]
        encoder: list[tuple[str, nn.Module]] = []
        for i in range(len(channels)):
            conv = nn.Conv2d(map_channels[i], map_channels[i + 1], 3, stride=2, padding=1)
            encoder += [(f"conv{i + 1}", conv), (f"relu{i + 1}", nn.ReLU())]
        bottom = (channels[-1], heights[-1], widths[-1])
        encoder.append(("flatten", nn.Flatten()))  # (N, C', H', W') -> (N, C'*H'*W')
        encoder.append(("code", nn.Linear(math.prod(bottom), code_size)))
        decoder: list[tuple[str, nn.Module]] = [
            ("fc", nn.Linear(code_size, math.prod(bottom))),
            ("relu", nn.ReLU()),
            ("unflatten", nn.Unflatten(1, bottom)),  # -> (N, C', H', W')
        ]
        for i in reversed(range(len(channels))):
            # A transposed conv (k3, s2, p1) gives 2*in - 1; output_padding adds the missing row
            # when the encoder's input was even, so the output is exactly the input size.
            padding_hw = (
                heights[i] - (2 * heights[i + 1] - 1),
                widths[i] - (2 * widths[i + 1] - 1),
            )
            deconv = nn.ConvTranspose2d(
                map_channels[i + 1], map_channels[i], 3, 2, 1, output_padding=padding_hw
            )
            decoder.append((f"deconv{i + 1}", deconv))
            if i > 0:
                decoder.append((f"relu{i + 1}", nn.ReLU()))
        decoder.append(("sigmoid", nn.Sigmoid()))  # pixels are intensities in [0, 1]
        self.encoder = nn.Sequential(OrderedDict(encoder))
        self.decoder = nn.Sequential(OrderedDict(decoder))


# ---------------------------------------------------------------- configs


@dataclass(frozen=True)
class AutoencoderConfig:
    hidden_sizes: tuple = hp(
        (128, 64),
        "widths of the encoder's hidden layers; the decoder mirrors them",
        min=1,
        max=4096,
    )
    code_size: int = hp(
        12, "size of the bottleneck code; smaller forces more compression", min=1, max=1024
    )
    activation: str = hp("relu", "nonlinearity after each hidden layer", choices=HIDDEN_ACTIVATIONS)
    code_activation: str = hp(
        "relu",
        'applied to the code (ReLU, as in Chollet\'s "Building Autoencoders in Keras", 2016; '
        "identity keeps it linear)",
        choices=CODE_ACTIVATIONS,
    )


@dataclass(frozen=True)
class DeepAutoencoderConfig(AutoencoderConfig):
    hidden_sizes: tuple = hp(
        (400, 400),
        "widths of the encoder's hidden layers; the decoder mirrors them",
        min=1,
        max=4096,
    )
    code_size: int = hp(
        20, "size of the bottleneck code; smaller forces more compression", min=1, max=1024
    )
    code_activation: str = hp(
        "identity",
        "applied to the code (identity: a linear code)",
        choices=CODE_ACTIVATIONS,
    )


@dataclass(frozen=True)
class DenoisingAutoencoderConfig(AutoencoderConfig):
    hidden_sizes: tuple = hp(
        (256,), "widths of the encoder's hidden layers; the decoder mirrors them", min=1, max=4096
    )
    code_size: int = hp(
        64, "size of the code; noise, not a narrow code, stops plain copying", min=1, max=1024
    )
    code_activation: str = hp("identity", "applied to the code", choices=CODE_ACTIVATIONS)
    noise_std: float = hp(
        0.3,
        "std of the Gaussian noise added to each input pixel in training",
        min=0.01,
        max=1.0,
        step=0.01,
    )


@dataclass(frozen=True)
class SparseAutoencoderConfig:
    hidden_sizes: tuple = hp(
        (256,), "widths of the encoder's hidden layers; the decoder mirrors them", min=1, max=4096
    )
    code_size: int = hp(
        128, "size of the code; may exceed the input, sparsity is the bottleneck", min=1, max=4096
    )
    activation: str = hp("relu", "nonlinearity after each hidden layer", choices=HIDDEN_ACTIVATIONS)
    sparsity: str = hp(
        "kl",
        "kl: KL(rho || rho_hat) on sigmoid codes (Ng); l1: L1 on ReLU codes",
        choices=("kl", "l1"),
    )
    sparsity_weight: float = hp(
        1e-3, "weight of the sparsity penalty in the loss", min=1e-6, max=10.0, log=True
    )
    sparsity_target: float = hp(
        0.05,
        "rho: the mean activation each code unit should have (kl only)",
        min=0.001,
        max=0.5,
        step=0.001,
    )


@dataclass(frozen=True)
class ConvAutoencoderConfig:
    channels: tuple = hp(
        (16, 32),
        "channels of each stride-2 conv; one entry per halving of the image",
        min=1,
        max=512,
    )
    code_size: int = hp(32, "size of the bottleneck code", min=1, max=1024)


@dataclass(frozen=True)
class LinearAutoencoderConfig:
    """Why an `output` choice: the reconstruct task wants decoded pixels in [0, 1] (sigmoid, the
    default), but the PCA equivalence (Baldi & Hornik 1989) holds for a purely linear decoder
    trained with squared error. With output="linear" decode is unbounded: train it with MSE, and
    clip to [0, 1] only for display.
    """

    code_size: int = hp(
        12, "number of linear code units (the PCA components it can match)", min=1, max=1024
    )
    output: str = hp(
        "sigmoid",
        "sigmoid keeps pixels in [0, 1]; linear is exactly PCA's model (train with MSE)",
        choices=("sigmoid", "linear"),
    )


# ---------------------------------------------------------------- checks and builders


def _check_undercomplete(
    config: AutoencoderConfig | LinearAutoencoderConfig, info: DataInfo
) -> None:
    n_inputs = math.prod(info.input_shape)
    if config.code_size >= n_inputs:
        raise ConfigError(
            "code_size",
            config.code_size,
            f"less than the {n_inputs} input values of {info.name}",
            "a code as large as the input can learn to copy it; lower code_size, or use "
            "sparse_autoencoder or denoising_autoencoder for a large code",
        )


def _check_conv_depth(config: ConvAutoencoderConfig, info: DataInfo) -> None:
    _, height, width = info.input_shape
    depth = len(config.channels)
    for side in (height, width):
        sizes = conv_sizes(side, depth)
        for layer, size_in in enumerate(sizes[:-1], start=1):
            if size_in < 2:
                raise ConfigError(
                    "channels",
                    config.channels,
                    f"at most {layer - 1} stride-2 convolutions for {height}x{width} images",
                    f"the feature map is already 1x1 after conv{layer - 1}, so conv{layer} has "
                    "nothing left to halve; remove entries from channels",
                )


def build_autoencoder(config: AutoencoderConfig, info: DataInfo) -> DenseAutoencoder:
    """Plain, deep and denoising autoencoders (only the denoising config has noise_std)."""
    return DenseAutoencoder(
        info.input_shape,
        config.hidden_sizes,
        config.code_size,
        config.activation,
        config.code_activation,
        noise_std=getattr(config, "noise_std", 0.0),
    )


def build_sparse(config: SparseAutoencoderConfig, info: DataInfo) -> DenseAutoencoder:
    # KL needs code units in (0, 1) to read as firing probabilities; L1 wants units that can be 0.
    code_activation = "sigmoid" if config.sparsity == "kl" else "relu"
    return DenseAutoencoder(
        info.input_shape,
        config.hidden_sizes,
        config.code_size,
        config.activation,
        code_activation,
        sparsity=config.sparsity,
        sparsity_weight=config.sparsity_weight,
        sparsity_target=config.sparsity_target,
    )


def build_linear(config: LinearAutoencoderConfig, info: DataInfo) -> DenseAutoencoder:
    # No hidden layers: one Linear each way, so no hidden activation is ever used.
    return DenseAutoencoder(
        info.input_shape, (), config.code_size, "relu", "identity", output=config.output
    )


def build_conv(config: ConvAutoencoderConfig, info: DataInfo) -> ConvAutoencoder:
    return ConvAutoencoder(info.input_shape, config.channels, config.code_size)


def _register(
    name: str,
    config_cls: type,
    builder: Callable[[Any, DataInfo], nn.Module],
    check: Callable[[Any, DataInfo], None] | None,
    description: str,
) -> None:
    register(
        ArchSpec(
            name=name,
            task="reconstruct",
            config_cls=config_cls,
            builder=builder,
            data_kinds=("image",),
            default_dataset="mnist",
            train_defaults={"epochs": 10},
            description=description,
            check=check,
        )
    )


_register(
    "autoencoder",
    AutoencoderConfig,
    build_autoencoder,
    _check_undercomplete,
    "An undercomplete autoencoder: a dense encoder squeezes each image into a small code "
    "(784-128-64-12 by default) and a mirrored decoder rebuilds the image from that code alone. "
    "The narrow code forces it to keep what matters and drop the rest.",
)
_register(
    "autoencoder_deep",
    DeepAutoencoderConfig,
    build_autoencoder,
    _check_undercomplete,
    "A stacked (deep) autoencoder, 784-400-400-20: two wide hidden layers on each side let it "
    "learn more complex codes than a single layer could.",
)
_register(
    "denoising_autoencoder",
    DenoisingAutoencoderConfig,
    build_autoencoder,
    None,
    "A denoising autoencoder: during training each input gets Gaussian noise of std noise_std, "
    "and the target is the clean image, so the network must learn the structure of digits "
    "instead of copying pixels.",
)
_register(
    "sparse_autoencoder",
    SparseAutoencoderConfig,
    build_sparse,
    None,
    "A sparse autoencoder: the code may be as large as the input, but a penalty (L1 on the code, "
    "or KL divergence between a small target rate and each unit's mean activation) lets only a "
    "few units fire for any one image.",
)
_register(
    "conv_autoencoder",
    ConvAutoencoderConfig,
    build_conv,
    _check_conv_depth,
    "A convolutional autoencoder: stride-2 convolutions halve the image at each layer, a linear "
    "layer makes the code, and transposed convolutions grow it back to exactly the input size.",
)
_register(
    "linear_autoencoder",
    LinearAutoencoderConfig,
    build_linear,
    _check_undercomplete,
    "A linear autoencoder: one linear map to the code and one back. With a linear output and "
    "squared error it learns the same subspace as PCA, which makes it the baseline for what "
    "the nonlinear autoencoders add.",
)
