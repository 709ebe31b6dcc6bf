"""Convolutional classifiers: Chollet's Keras MNIST convnet and a small-image AlexNet."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.introspection.convmath import conv_output_size, pool_output_size
from deeparch.models.mlp import ACTIVATIONS, make_activation
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 20  # Home's gallery: simplest idea first (registry.list_families)

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class CNNConfig:
    channels: tuple = hp(
        (32, 64, 64),
        "Filters in each conv block, one entry per block (32, 64, 64: the MNIST convnet of "
        'Chollet\'s "Deep Learning with Python", 2017, section 5.1)',
        min=1,
        max=512,
    )
    kernel_size: int = hp(
        3, "Height and width of every conv filter (Chollet's convnet: 3x3)", min=1, max=11, step=1
    )
    stride: int = hp(1, "Step between filter positions; 2 halves the feature map", min=1, max=4)
    padding: int = hp(
        0,
        "Zeros added on each side before a conv: 0 is Keras 'valid' (Chollet's convnet); "
        "kernel_size // 2 keeps the size at stride 1 ('same')",
        min=0,
        max=5,
    )
    pooling: str = hp(
        "max",
        "Downsampling after a conv block: max keeps the strongest response, avg the mean",
        choices=("max", "avg", "none"),
    )
    pool_size: int = hp(2, "Window and step of each pooling layer; 2 halves the map", min=2, max=4)
    pooled_blocks: int = hp(
        2,
        "Pool after the first this many conv blocks (Chollet's convnet: 2; its last block is not "
        "pooled)",
        min=0,
        max=8,
    )
    batch_norm: bool = hp(
        False, "True: batch-normalise each conv output (then the conv needs no bias of its own)"
    )
    activation: str = hp(
        "relu", "Nonlinearity after each conv and dense layer", choices=tuple(ACTIVATIONS)
    )
    dense_width: int = hp(
        64,
        "Units of the hidden dense layer after flattening (Chollet's convnet: 64); 0 removes it",
        min=0,
        max=1024,
    )
    dropout: float = hp(
        0.0,
        "Probability of zeroing a unit just before the output layer",
        min=0.0,
        max=0.9,
        step=0.05,
    )


def _kernel_error(config: CNNConfig, h: int, w: int, where: str, block: int) -> ConfigError:
    k, p = config.kernel_size, config.padding
    padded = f" ({h + 2 * p}x{w + 2 * p} with padding {p})" if p else ""
    # Deeper than the first block, the map shrank on the way: fewer blocks also fix it.
    fewer_blocks = (
        f"keep at most {block - 1} entries in channels (conv{block} is the one that does not fit), "
        if block > 1
        else ""
    )
    return ConfigError(
        "kernel_size",
        k,
        f"at most {min(h, w) + 2 * p} here",
        f"kernel_size {k} is larger than the {h}x{w} feature map{padded} {where}; "
        f"{fewer_blocks}lower kernel_size, add padding or remove a pooling layer",
    )


def cnn_feature_shapes(config: CNNConfig, info: DataInfo) -> list[tuple[str, tuple[int, int, int]]]:
    """(layer name, (C, H, W) after it) for every conv and pool, computed without building.

    Raises ConfigError naming the field when a kernel does not fit the map it meets or a pool
    would leave no pixels.
    """
    _, h, w = info.input_shape
    pooling = config.pooling != "none"
    if pooling and config.pooled_blocks > len(config.channels):
        raise ConfigError(
            "pooled_blocks",
            config.pooled_blocks,
            f"at most {len(config.channels)}, the number of conv blocks (entries in channels)",
        )
    shapes: list[tuple[str, tuple[int, int, int]]] = []
    where = f"of the {info.name} input"
    for block, channels in enumerate(config.channels, start=1):
        if config.kernel_size > min(h, w) + 2 * config.padding:
            raise _kernel_error(config, h, w, where, block)
        h, w = (
            conv_output_size(s, config.kernel_size, config.stride, config.padding) for s in (h, w)
        )
        shapes.append((f"conv{block}", (channels, h, w)))
        where = f"after conv{block}"
        if pooling and block <= config.pooled_blocks:
            if min(h, w) < config.pool_size:
                raise ConfigError(
                    "pooled_blocks",
                    config.pooled_blocks,
                    f"at most {block - 1} for this input: pool{block} has no room",
                    f"{config.pool_size}x{config.pool_size} pooling after conv{block} meets a "
                    f"{h}x{w} feature map and would leave 0 pixels; lower pooled_blocks or "
                    "pool_size, or add padding",
                )
            h, w = (pool_output_size(s, config.pool_size) for s in (h, w))
            shapes.append((f"pool{block}", (channels, h, w)))
            where = f"after pool{block}"
    return shapes


def check_cnn(config: CNNConfig, info: DataInfo) -> None:
    cnn_feature_shapes(config, info)


class ConvNet(nn.Module):
    """features: conv{i} -> [bn{i}] -> act{i} -> [pool{i}]; classifier: flatten -> fc1 -> output."""

    def __init__(self, config: CNNConfig, info: DataInfo) -> None:
        super().__init__()
        shapes = cnn_feature_shapes(config, info)
        pooled = {name for name, _ in shapes if name.startswith("pool")}
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels_in = info.input_shape[0]
        for block, channels in enumerate(config.channels, start=1):
            layers[f"conv{block}"] = nn.Conv2d(
                channels_in,
                channels,
                config.kernel_size,
                stride=config.stride,
                padding=config.padding,
                bias=not config.batch_norm,  # batch norm subtracts the mean, cancelling a bias
            )
            if config.batch_norm:
                layers[f"bn{block}"] = nn.BatchNorm2d(channels)
            layers[f"act{block}"] = make_activation(config.activation)
            if f"pool{block}" in pooled:
                layers[f"pool{block}"] = POOLS[config.pooling](config.pool_size)
            channels_in = channels
        self.features = nn.Sequential(layers)

        c, h, w = shapes[-1][1]
        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())  # (N,C,H,W)->(N,CHW)
        width_in = c * h * w
        if config.dense_width > 0:
            head["fc1"] = nn.Linear(width_in, config.dense_width)
            head["act1"] = make_activation(config.activation)
            width_in = config.dense_width
        if config.dropout > 0:
            head["dropout"] = nn.Dropout(config.dropout)
        head["output"] = nn.Linear(width_in, info.num_classes)
        self.classifier = nn.Sequential(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# torchvision's AlexNet filter counts (Krizhevsky, "One weird trick...", 2014), scaled by `width`.
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
ALEXNET_KERNELS = (5, 5, 3, 3, 3)  # the 11x11 stride-4 first layer is for 224x224 photos
ALEXNET_POOLED = (1, 2, 5)  # overlapping 3x3 stride-2 max-pools after conv1, conv2, conv5
ALEXNET_MIN_SIZE = 8  # three halvings: 8 -> 4 -> 2 -> 1


@dataclass(frozen=True)
class AlexNetConfig:
    width: float = hp(
        0.25,
        "Fraction of AlexNet's filter counts (64, 192, 384, 256, 256); 1.0 is full width and slow "
        "on a CPU",
        min=0.125,
        max=1.0,
        step=0.125,
    )
    dense_width: int = hp(
        256, "Units in each of the two hidden dense layers (AlexNet: 4096)", min=16, max=4096
    )
    dropout: float = hp(
        0.5, "Dropout before each hidden dense layer (AlexNet: 0.5)", min=0.0, max=0.9, step=0.05
    )
    local_response_norm: bool = hp(
        False,
        "True: AlexNet's local response normalisation after conv1 and conv2 (since replaced by "
        "batch norm)",
    )


def alexnet_channels(config: AlexNetConfig) -> tuple[int, ...]:
    return tuple(max(1, round(c * config.width)) for c in ALEXNET_CHANNELS)


def _alexnet_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def alexnet_output_size(size: int) -> int:
    """Side of the last feature map: the convs keep the size, each pool roughly halves it."""
    for _ in ALEXNET_POOLED:
        size = pool_output_size(size, 3, stride=2, padding=1)
    return size


def check_alexnet(config: AlexNetConfig, info: DataInfo) -> None:
    _, h, w = info.input_shape
    if min(h, w) < ALEXNET_MIN_SIZE:
        raise ConfigError(
            "dataset",
            info.name,
            f"images of at least {ALEXNET_MIN_SIZE}x{ALEXNET_MIN_SIZE}",
            f"alexnet halves its {h}x{w} input three times by pooling; use the cnn for tiny images",
        )


class AlexNet(nn.Module):
    """Five ReLU convs with three overlapping max-pools, then a dense classifier with dropout."""

    def __init__(self, config: AlexNetConfig, info: DataInfo) -> None:
        super().__init__()
        channels_in, h, w = info.input_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for index, (channels, kernel) in enumerate(
            zip(alexnet_channels(config), ALEXNET_KERNELS), start=1
        ):
            layers[f"conv{index}"] = nn.Conv2d(channels_in, channels, kernel, padding=kernel // 2)
            layers[f"act{index}"] = nn.ReLU()
            if config.local_response_norm and index <= 2:
                # Krizhevsky et al. 2012, section 3.3: k=2, n=5, alpha=1e-4, beta=0.75
                layers[f"lrn{index}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
            if index in ALEXNET_POOLED:
                layers[f"pool{ALEXNET_POOLED.index(index) + 1}"] = _alexnet_pool()
            channels_in = channels
        self.features = nn.Sequential(layers)

        flat = channels_in * alexnet_output_size(h) * alexnet_output_size(w)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),  # (N, C, H, W) -> (N, C*H*W)
                drop1=nn.Dropout(config.dropout),
                fc1=nn.Linear(flat, config.dense_width),
                act1=nn.ReLU(),
                drop2=nn.Dropout(config.dropout),
                fc2=nn.Linear(config.dense_width, config.dense_width),
                act2=nn.ReLU(),
                output=nn.Linear(config.dense_width, info.num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


register(
    ArchSpec(
        name="cnn",
        task="classify",
        config_cls=CNNConfig,
        builder=ConvNet,
        data_kinds=("image",),
        default_dataset="mnist",
        train_defaults={"epochs": 5},
        description=(
            "A convolutional network: small filters slide over the image and detect the same local "
            "pattern wherever it appears, and pooling shrinks the maps so later filters see more. "
            "A dense layer then reads the final maps to pick a class."
        ),
        check=check_cnn,
    )
)

register(
    ArchSpec(
        name="alexnet",
        task="classify",
        config_cls=AlexNetConfig,
        builder=AlexNet,
        data_kinds=("image",),
        default_dataset="mnist",
        train_defaults={"epochs": 3},
        description=(
            "The 2012 ImageNet winner, shrunk for small images: five ReLU convolutions with three "
            "overlapping max-pools, then two wide dense layers regularised with dropout."
        ),
        check=check_alexnet,
    )
)
