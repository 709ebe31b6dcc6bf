"""Forecasting (many-to-many): a sequence cell outputs a prediction of the next value at every
step, and rolls out a horizon by feeding its own predictions back (as in Graves 2013, section 2:
"generating sequences by sampling from the output and feeding it in as the next input")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models._cells import CellStack, cell_field, check_cell_stack
from deeparch.models.registry import ArchSpec, register
from deeparch.models.rnn import dropout_field

GALLERY_POSITION = 72  # after the sequence classifiers (registry.list_families)


@dataclass(frozen=True)
class ForecasterConfig:
    cell: str = cell_field()
    hidden_size: int = hp(32, "size of the state (or channels) per step", min=1, max=256)
    num_layers: int = hp(1, "stacked layers of the cell", min=1, max=4)
    kernel_size: int = hp(3, "qrnn and tcn only: time steps each convolution sees", min=1, max=7)
    dropout: float = dropout_field()
    horizon: int = hp(
        16, "steps the forecast view predicts from its own outputs, after the context", min=1,
        max=32)  # fmt: skip


class Forecaster(nn.Module):
    """x (N, T, 1) -> the next value after every step (N, T, 1); rollout(context, steps)."""

    def __init__(self, config: ForecasterConfig, info: DataInfo) -> None:
        super().__init__()
        features = int(info.input_shape[-1])
        self.horizon = config.horizon
        self.encoder = CellStack(
            config.cell, features, config.hidden_size, config.num_layers, config.kernel_size,
            config.dropout,
        )  # fmt: skip
        self.head = nn.Linear(config.hidden_size, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))  # (N, T, H) -> (N, T, 1)

    def rollout(self, context: torch.Tensor, steps: int) -> torch.Tensor:
        """Predict `steps` values after context (N, Tc, 1), each fed back as the next input.

        The whole sequence so far is read again at every step: the same code for every cell
        (a recurrent one could carry its state instead; the outputs are the same)."""
        sequence = context
        for _ in range(steps):
            next_value = self(sequence)[:, -1:]  # (N, 1, 1): the prediction after the last step
            sequence = torch.cat([sequence, next_value], dim=1)
        return sequence[:, context.shape[1] :]  # (N, steps, 1)


def check_forecaster(config: ForecasterConfig, info: DataInfo) -> None:
    steps = int(info.input_shape[0])
    check_cell_stack(config.cell, config.num_layers, config.kernel_size, config.dropout, steps)
    if config.horizon >= steps:
        raise ConfigError("horizon", config.horizon, f"below {steps}, the window's length",
                          "the forecast needs some of the window as its context")  # fmt: skip


def build_forecaster(config: ForecasterConfig, info: DataInfo) -> Forecaster:
    return Forecaster(config, info)


register(
    ArchSpec(
        name="forecaster",
        task="forecast",
        config_cls=ForecasterConfig,
        builder=build_forecaster,
        data_kinds=("series",),
        default_dataset="sines",
        # 20 epochs (740 steps): the next-value error falls to 0.42 of repeating the last value's
        # (10 epochs: 0.49), about 12 CPU seconds.
        train_defaults={"epochs": 20, "lr": 3e-3},
        description=(
            "Many-to-many forecaster: a sequence cell (rnn, lstm, gru, qrnn or tcn) reads a time "
            "series and predicts the next value at every step; the forecast over a horizon feeds "
            "each prediction back in as the next input."
        ),
        check=check_forecaster,
    )
)
