"""Quasi-recurrent network (Bradbury et al. 2016): causal convolution gates plus fo-pooling."""

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
    check_layer_dropout,
    check_sequence_data,
    dropout_field,
    embedding_dim_field,
    readout_field,
    sequence_length,
    token_input_field,
)

GALLERY_POSITION = 60  # Home's gallery: simplest idea first (registry.list_families)


@dataclass(frozen=True)
class QRNNConfig:
    hidden_size: int = hp(64, "size of the pooled state c_t and output h_t", min=1, max=512)
    num_layers: int = hp(
        2, "stacked QRNN layers; each convolves the previous layer's h", min=1, max=4
    )
    kernel_size: int = hp(
        2, "time steps each gate sees at once (x_(t-k+1) .. x_t); 2 as in the paper", min=1, max=9
    )
    dropout: float = dropout_field()
    embedding_dim: int = embedding_dim_field()
    token_input: str = token_input_field()
    readout: str = readout_field()


def fo_pool(
    candidates: torch.Tensor,
    forget_gates: torch.Tensor,
    output_gates: torch.Tensor,
    initial_cell: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """fo-pooling, the only sequential part of a QRNN.

    c_t = f_t * c_(t-1) + (1 - f_t) * z_t ;  h_t = o_t * c_t  (Bradbury et al. 2016, eq. 4).
    Inputs (N, T, H); returns (h (N, T, H), c_T (N, H)). The loop is over time only: every gate
    was already computed for all steps at once by the convolution.
    """
    batch, steps, width = candidates.shape
    if initial_cell is None:
        cell = candidates.new_zeros(batch, width)
    else:
        cell = initial_cell
    outputs = []
    for t in range(steps):
        forget = forget_gates[:, t]
        cell = forget * cell + (1 - forget) * candidates[:, t]
        outputs.append(output_gates[:, t] * cell)
    return torch.stack(outputs, dim=1), cell  # (N, T, H), (N, H)


class QRNNLayer(nn.Module):
    """One QRNN layer: a causal Conv1d gives Z, F, O for every step, then fo-pooling."""

    def __init__(self, input_size: int, hidden_size: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        # One convolution computes the three gate pre-activations side by side: 3H channels.
        self.gate_conv = nn.Conv1d(input_size, 3 * hidden_size, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (N, T, F) -> (N, F, T): Conv1d wants channels before time.
        channels_first = x.transpose(1, 2)
        # Pad on the left only, so the gates at step t see x_(t-k+1) .. x_t and nothing later.
        padded = F.pad(channels_first, (self.kernel_size - 1, 0))
        gates = self.gate_conv(padded).transpose(1, 2)  # (N, T, 3H)
        z_pre, f_pre, o_pre = gates.chunk(3, dim=2)  # each (N, T, H)
        hidden, _ = fo_pool(torch.tanh(z_pre), torch.sigmoid(f_pre), torch.sigmoid(o_pre))
        return hidden


class QRNNClassifier(SequenceClassifier):
    """Stacked QRNN layers with dropout between them and a linear head."""

    def __init__(self, config: QRNNConfig, info: DataInfo) -> None:
        super().__init__(info, config.embedding_dim, config.readout, config.token_input)
        sizes = [self.input_size] + [config.hidden_size] * config.num_layers
        self.qrnn = nn.ModuleList(
            QRNNLayer(sizes[i], sizes[i + 1], config.kernel_size) for i in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, info.num_classes)

    def hidden_states(self, e: torch.Tensor) -> torch.Tensor:
        hidden = e
        for index, layer in enumerate(self.qrnn):
            if index > 0:
                hidden = self.dropout(hidden)
            hidden = layer(hidden)
        return hidden  # (N, T, H) of the top layer


def check_qrnn(config: QRNNConfig, info: DataInfo) -> None:
    check_sequence_data(info)
    check_layer_dropout(config.dropout, config.num_layers)
    steps = sequence_length(info)
    if config.kernel_size > steps:
        raise ConfigError(
            "kernel_size",
            config.kernel_size,
            f"at most {steps}",
            f"{info.name} has only {steps} time steps; a wider kernel only sees padding",
        )


def build_qrnn(config: QRNNConfig, info: DataInfo) -> QRNNClassifier:
    return QRNNClassifier(config, info)


register(
    ArchSpec(
        name="qrnn",
        task="sequence",
        config_cls=QRNNConfig,
        builder=build_qrnn,
        data_kinds=SEQUENCE_KINDS,
        default_dataset="mnist1d",
        # 10 epochs, not the LSTM's 20: its pooling steps through time in Python, so an epoch
        # costs five LSTM epochs on a CPU; 10 reach 89% on mnist1d (deeparch.bench.defaults).
        train_defaults={"epochs": 10, "lr": 3e-3},
        description=(
            "Quasi-RNN: a causal convolution computes a candidate z_t and forget/output gates "
            "f_t, o_t for all time steps in parallel; only the cheap element-wise fo-pooling "
            "c_t = f_t c_(t-1) + (1 - f_t) z_t, h_t = o_t c_t runs step by step. "
            "Convolution speed with an RNN's sense of order."
        ),
        check=check_qrnn,
    )
)
