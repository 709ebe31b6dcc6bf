"""Temporal convolutional network: causal dilated Conv1d layers (dilation doubling per layer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register
from deeparch.models.rnn import (
    SEQUENCE_KINDS,
    SequenceClassifier,
    check_sequence_data,
    embedding_dim_field,
    readout_field,
    sequence_length,
    token_input_field,
)

GALLERY_POSITION = 70  # Home's gallery: simplest idea first (registry.list_families)


@dataclass(frozen=True)
class TCNConfig:
    hidden_size: int = hp(32, "channels of every causal convolution", min=1, max=256)
    num_layers: int = hp(
        5,
        "causal conv layers; layer i has dilation 2**(i-1), so reach doubles per layer",
        min=1,
        max=8,
    )
    kernel_size: int = hp(3, "taps per convolution, spaced `dilation` steps apart", min=2, max=7)
    residual: bool = hp(True, "add each layer's input to its output (1x1 conv when widths differ)")
    embedding_dim: int = embedding_dim_field()
    token_input: str = token_input_field()
    readout: str = readout_field()


def receptive_field(kernel_size: int, num_layers: int) -> int:
    """Input steps the last output sees: 1 + (k - 1) * (1 + 2 + ... + 2**(L-1))."""
    return 1 + (kernel_size - 1) * (2**num_layers - 1)


class CausalConvBlock(nn.Module):
    """ReLU(dilated Conv1d) padded on the left only, plus an optional residual path."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, residual: bool
    ) -> None:
        super().__init__()
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.residual = residual
        # A 1x1 convolution matches widths so the residual sum is defined (first layer only).
        self.residual_proj = (
            nn.Conv1d(in_channels, out_channels, 1)
            if residual and in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (N, C, T). Left padding only: output t depends on inputs t, t-d, t-2d, ... never t+1.
        out = torch.relu(self.conv(F.pad(x, (self.left_padding, 0))))
        if not self.residual:
            return out
        shortcut = x if self.residual_proj is None else self.residual_proj(x)
        return out + shortcut


class TCNClassifier(SequenceClassifier):
    """A stack of causal dilated convolutions read out at the last step (or the mean)."""

    def __init__(self, config: TCNConfig, info: DataInfo) -> None:
        super().__init__(info, config.embedding_dim, config.readout, config.token_input)
        self.receptive_field = receptive_field(config.kernel_size, config.num_layers)
        widths = [self.input_size] + [config.hidden_size] * config.num_layers
        self.tcn = nn.ModuleList(
            CausalConvBlock(widths[i], widths[i + 1], config.kernel_size, 2**i, config.residual)
            for i in range(config.num_layers)
        )
        self.head = nn.Linear(config.hidden_size, info.num_classes)

    def hidden_states(self, e: torch.Tensor) -> torch.Tensor:
        activations = e.transpose(1, 2)  # (N, T, E) -> (N, E, T) for Conv1d
        for block in self.tcn:
            activations = block(activations)
        return activations.transpose(1, 2)  # (N, H, T) -> (N, T, H)


def check_tcn(config: TCNConfig, info: DataInfo) -> None:
    check_sequence_data(info)
    steps = sequence_length(info)
    top_dilation = 2 ** (config.num_layers - 1)
    if top_dilation >= steps:
        max_layers = (steps - 1).bit_length()  # largest L with 2**(L-1) < steps
        raise ConfigError(
            "num_layers",
            config.num_layers,
            f"at most {max_layers} for {steps} time steps",
            f"layer {config.num_layers} would have dilation {top_dilation} >= {steps}, "
            "so every tap but the current one falls on padding",
        )


def build_tcn(config: TCNConfig, info: DataInfo) -> TCNClassifier:
    return TCNClassifier(config, info)


register(
    ArchSpec(
        name="tcn",
        task="sequence",
        config_cls=TCNConfig,
        builder=build_tcn,
        data_kinds=SEQUENCE_KINDS,
        default_dataset="mnist1d",
        train_defaults={"epochs": 20, "lr": 3e-3},
        description=(
            "Temporal convolutional network: causal 1-D convolutions, padded on the left only so "
            "step t never sees the future, with dilation 1, 2, 4, ... so the reach grows "
            "exponentially with depth (receptive field 1 + (k-1)(2^L - 1)). No recurrence: "
            "all steps are computed in parallel and gradients do not pass through a long chain."
        ),
        check=check_tcn,
    )
)
