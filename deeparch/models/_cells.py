"""The five sequence cells as one interchangeable stack, for the tasks beyond classification.

A CellStack maps (N, T, E) to (N, T, H) and is causal: output t sees inputs 0..t only, so it can
forecast, generate and decode. The forecaster, the character language model and the
sequence-to-sequence model take a `cell` name and build one (or two) of these; the classifiers in
rnn.py, qrnn.py and tcn.py keep their own modules (and parameter names).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deeparch.config import hp
from deeparch.errors import ConfigError
from deeparch.models.qrnn import QRNNLayer
from deeparch.models.rnn import CELL_MODULES
from deeparch.models.tcn import CausalConvBlock

CELLS = ("rnn", "lstm", "gru", "qrnn", "tcn")


def cell_field(default: str = "lstm") -> Any:
    return hp(
        default,
        "the sequence cell: rnn (Elman), lstm, gru, qrnn (convolution gates + fo-pooling) or "
        "tcn (causal dilated convolutions)",
        choices=CELLS,
    )


class CellStack(nn.Module):
    """num_layers of one cell type; the attribute is named for it (rnn, lstm, gru, qrnn, tcn)."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        kernel_size: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.hidden_size = hidden_size
        if cell in CELL_MODULES:
            layers = CELL_MODULES[cell](
                input_size, hidden_size, num_layers, batch_first=True, dropout=dropout
            )
        elif cell == "qrnn":
            sizes = [input_size] + [hidden_size] * num_layers
            layers = nn.ModuleList(
                QRNNLayer(sizes[i], sizes[i + 1], kernel_size) for i in range(num_layers)
            )
        elif cell == "tcn":
            widths = [input_size] + [hidden_size] * num_layers
            layers = nn.ModuleList(
                CausalConvBlock(widths[i], widths[i + 1], kernel_size, 2**i, residual=True)
                for i in range(num_layers)
            )
        else:
            raise ConfigError("cell", cell, "one of " + ", ".join(CELLS))
        setattr(self, cell, layers)
        self.dropout = nn.Dropout(dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        layers = getattr(self, self.cell)
        if self.cell in CELL_MODULES:
            outputs, _ = layers(e)
            return outputs  # (N, T, H): the top layer's h_t at every step
        if self.cell == "tcn":
            activations = e.transpose(1, 2)  # (N, T, E) -> (N, E, T) for Conv1d
            for block in layers:
                activations = block(activations)
            return activations.transpose(1, 2)  # (N, H, T) -> (N, T, H)
        hidden = e
        for index, layer in enumerate(layers):
            hidden = layer(self.dropout(hidden) if index > 0 else hidden)
        return hidden


def check_cell_stack(cell: str, num_layers: int, kernel_size: int, dropout: float, steps: int):
    """Refuse settings the cell cannot use, naming the field (as the classifiers do)."""
    if dropout > 0 and num_layers < 2:
        raise ConfigError(
            "dropout", dropout, "0 when num_layers is 1",
            "dropout acts between stacked layers; raise num_layers to 2 or set dropout to 0",
        )  # fmt: skip
    if dropout > 0 and cell == "tcn":
        raise ConfigError("dropout", dropout, "0 for the tcn cell (it has no dropout)")
    if cell == "tcn" and 2 ** (num_layers - 1) >= steps:
        raise ConfigError(
            "num_layers", num_layers, f"at most {(steps - 1).bit_length()} for {steps} steps",
            f"layer {num_layers} would have dilation {2 ** (num_layers - 1)} >= {steps}",
        )  # fmt: skip
    if cell == "qrnn" and kernel_size > steps:
        raise ConfigError("kernel_size", kernel_size, f"at most {steps} (the sequence length)")
    if cell == "tcn" and kernel_size < 2:
        raise ConfigError("kernel_size", kernel_size, "at least 2 for the tcn cell")
