"""Fully connected classifiers: MLP, logistic and softmax regression, and the MLP as 1x1 Conv1d."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError, UnknownNameError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 10  # Home's gallery: simplest idea first (registry.list_families)

# The one name -> activation map of deeparch; other families import it rather than spell one out.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (not in-place, so hooks see the values it received)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise UnknownNameError("activation", name, list(ACTIVATIONS)) from None


def flat_size(info: DataInfo) -> int:
    """Number of input features once one sample is flattened: 1x28x28 -> 784, (2,) -> 2."""
    return math.prod(info.input_shape)


@dataclass(frozen=True)
class MLPConfig:
    hidden_sizes: tuple = hp(
        (500, 200, 100),
        "Width of each hidden layer, input side first (a common MNIST MLP: 784-500-200-100-10)",
        min=1,
        max=4096,
    )
    activation: str = hp(
        "relu",
        "Nonlinearity after each hidden layer; without one, stacked layers are one linear map",
        choices=tuple(ACTIVATIONS),
    )
    dropout: float = hp(
        0.0,
        "Probability of zeroing each hidden unit in training; a regulariser against overfitting",
        min=0.0,
        max=0.9,
        step=0.05,
    )
    batch_norm: bool = hp(
        False,
        "True: normalise each hidden layer's pre-activations over the batch (Ioffe & Szegedy 2015)",
    )


@dataclass(frozen=True)
class LinearConfig:
    bias: bool = hp(
        True,
        "True: learn an intercept; False forces every decision boundary through the origin",
    )


def _hidden_layers(
    config: MLPConfig, in_features: int, make_layer: Callable[[int, int], nn.Module], prefix: str
) -> nn.Sequential:
    """The hidden stack as named children: {prefix}1, bn1, act1, drop1, {prefix}2, ..."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    width_in = in_features
    for index, width in enumerate(config.hidden_sizes, start=1):
        children[f"{prefix}{index}"] = make_layer(width_in, width)
        if config.batch_norm:
            children[f"bn{index}"] = nn.BatchNorm1d(width)
        children[f"act{index}"] = make_activation(config.activation)
        if config.dropout > 0:
            children[f"drop{index}"] = nn.Dropout(config.dropout)
        width_in = width
    return nn.Sequential(children)


class MLP(nn.Module):
    """Flatten; Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer; output Linear."""

    def __init__(self, config: MLPConfig, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = _hidden_layers(config, in_features, nn.Linear, prefix="fc")
        self.output = nn.Linear(config.hidden_sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (N, C, H, W) or (N, 2) -> (N, features)
        return self.output(self.layers(x))


class MLPConv1d(nn.Module):
    """The same MLP computed by Conv1d layers of kernel size 1 over a length-1 position axis.

    A width-1 kernel is a Linear layer applied with the same weights at every position (the
    mlpconv layer of Lin, Chen & Yan 2014, "Network In Network", is 1x1 convolutions); here there
    is one position.
    """

    def __init__(self, config: MLPConfig, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = _hidden_layers(
            config, in_features, lambda i, o: nn.Conv1d(i, o, kernel_size=1), prefix="conv"
        )
        self.output = nn.Conv1d(config.hidden_sizes[-1], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x).unsqueeze(-1)  # (N, features) -> (N, features, 1): features as channels
        x = self.output(self.layers(x))  # (N, num_classes, 1)
        return x.squeeze(-1)  # (N, num_classes)

    @torch.no_grad()
    def load_linear_weights(self, mlp: MLP) -> None:
        """Copy an MLP's weights in, reshaped (out, in) -> (out, in, 1): both then agree."""
        source = mlp.state_dict()
        target = {}
        for name, tensor in self.state_dict().items():
            mlp_name = name.replace("layers.conv", "layers.fc")
            target[name] = source[mlp_name].reshape(tensor.shape)
        self.load_state_dict(target)


class LinearClassifier(nn.Module):
    """Flatten, then one Linear layer: logistic regression (1 logit) or softmax regression (K)."""

    def __init__(self, in_features: int, num_outputs: int, bias: bool) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.output = nn.Linear(in_features, num_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.flatten(x))  # (N, num_outputs)


def build_mlp(config: MLPConfig, info: DataInfo) -> MLP:
    return MLP(config, flat_size(info), info.num_classes)


def build_mlp_conv1d(config: MLPConfig, info: DataInfo) -> MLPConv1d:
    return MLPConv1d(config, flat_size(info), info.num_classes)


def build_logistic_regression(config: LinearConfig, info: DataInfo) -> LinearClassifier:
    return LinearClassifier(flat_size(info), 1, config.bias)


def build_softmax_regression(config: LinearConfig, info: DataInfo) -> LinearClassifier:
    return LinearClassifier(flat_size(info), info.num_classes, config.bias)


def check_binary(config: LinearConfig, info: DataInfo) -> None:
    """Logistic regression has a single logit, so it separates exactly two classes."""
    if info.num_classes != 2:
        raise ConfigError(
            "dataset",
            info.name,
            "a dataset with 2 classes, such as moons, circles or xor",
            f"{info.name} has {info.num_classes} classes; logistic regression outputs one "
            "probability for two classes, use softmax_regression for more",
        )


def check_has_features(config: object, info: DataInfo) -> None:
    """Shapes cannot go wrong in a fully connected model; only an empty input would."""
    if flat_size(info) < 1:
        raise ConfigError("dataset", info.name, "a dataset whose samples have at least 1 feature")


register(
    ArchSpec(
        name="mlp",
        task="classify",
        config_cls=MLPConfig,
        builder=build_mlp,
        data_kinds=("image", "points"),
        default_dataset="mnist",
        train_defaults={"epochs": 10},
        description=(
            "A multilayer perceptron: the input is flattened into one long vector and passed "
            "through "
            "fully connected layers, each followed by a nonlinearity. Every unit sees every pixel, "
            "so it ignores where pixels sit in the image."
        ),
        check=check_has_features,
    )
)

register(
    ArchSpec(
        name="logistic_regression",
        task="classify",
        config_cls=LinearConfig,
        builder=build_logistic_regression,
        data_kinds=("points",),
        default_dataset="moons",
        # 120 steps of 400 points: at Adam's usual 1e-3 the weights barely move and the line
        # stays where it started (50%); at 0.05 it settles at the best straight line (about 88%).
        train_defaults={"epochs": 20, "lr": 0.05},
        description=(
            "One linear layer giving a single score; its sigmoid is the probability of class 1. "
            "The boundary between the two classes is always a straight line."
        ),
        check=check_binary,
    )
)

register(
    ArchSpec(
        name="softmax_regression",
        task="classify",
        config_cls=LinearConfig,
        builder=build_softmax_regression,
        data_kinds=("image", "points"),
        default_dataset="mnist",
        train_defaults={"epochs": 10},
        description=(
            "One linear layer giving one score per class, turned into probabilities by softmax. "
            "The simplest multi-class model: an MLP without hidden layers."
        ),
        check=check_has_features,
    )
)

register(
    ArchSpec(
        name="mlp_conv1d",
        task="classify",
        config_cls=MLPConfig,
        builder=build_mlp_conv1d,
        data_kinds=("image", "points"),
        default_dataset="mnist",
        train_defaults={"epochs": 10},
        description=(
            "The same MLP written with 1-D convolutions of kernel size 1: such a convolution is a "
            "fully connected layer applied at each position. Same parameters, same outputs."
        ),
        check=check_has_features,
    )
)
