"""Encoder-decoder (sequence to vector to sequence): an encoder cell reads the input and its
last state is the summary vector; a decoder cell writes the output one token at a time, reading
its previous token and the summary at every step (Sutskever, Vinyals & Le 2014; Cho et al. 2014
feed the summary to every decoder step)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.models._cells import (
    CellStack,
    cell_field,
    check_cell_stack,
)
from deeparch.models.registry import ArchSpec, register
from deeparch.models.rnn import TokenInput, dropout_field, embedding_dim_field, token_input_field

GALLERY_POSITION = 76


@dataclass(frozen=True)
class Seq2SeqConfig:
    cell: str = cell_field("gru")
    hidden_size: int = hp(128, "size of the summary vector and of every state", min=1, max=512)
    num_layers: int = hp(1, "stacked layers in the encoder and in the decoder", min=1, max=4)
    kernel_size: int = hp(3, "qrnn and tcn only: time steps each convolution sees", min=1, max=7)
    dropout: float = dropout_field()
    embedding_dim: int = embedding_dim_field()
    token_input: str = token_input_field()


class Seq2Seq(nn.Module):
    """x (N, T) -> summary (N, H) -> output logits (N, T_out, V).

    forward(x) decodes greedily (each step reads the token it chose before);
    teacher_forced(x, y) reads the true previous tokens instead (how it trains)."""

    def __init__(self, config: Seq2SeqConfig, info: DataInfo) -> None:
        super().__init__()
        self.output_steps = int(info.target_shape[0])
        self.start_token = info.num_classes  # one id past the output symbols
        size, layers, k, drop = (
            config.hidden_size,
            config.num_layers,
            config.kernel_size,
            config.dropout,
        )
        self.encoder_input = TokenInput(info.vocab_size, config.embedding_dim, config.token_input)
        self.encoder = CellStack(config.cell, self.encoder_input.size, size, layers, k, drop)
        self.decoder_input = TokenInput(
            info.num_classes + 1, config.embedding_dim, config.token_input
        )
        self.decoder = CellStack(config.cell, self.decoder_input.size + size, size, layers, k, drop)
        self.head = nn.Linear(size, info.num_classes)

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the whole input is squeezed into: the encoder's last output (N, H)."""
        return self.encoder(self.encoder_input(x))[:, -1]

    def decode(self, summary: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Logits (N, S, V) after previous tokens (N, S) (start token first), summary (N, H)."""
        e = self.decoder_input(previous)  # (N, S, E)
        context = summary[:, None].expand(-1, previous.shape[1], -1)  # (N, S, H)
        return self.head(self.decoder(torch.cat([e, context], dim=2)))

    def start(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.full((n, 1), self.start_token, dtype=torch.long, device=device)

    def teacher_forced(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        previous = torch.cat([self.start(len(x), x.device), y[:, :-1]], dim=1)  # (N, T_out)
        return self.decode(self.summary(x), previous)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = self.summary(x)
        previous = self.start(len(x), x.device)
        for _ in range(self.output_steps):
            logits = self.decode(summary, previous)  # (N, S, V)
            previous = torch.cat([previous, logits[:, -1].argmax(dim=1, keepdim=True)], dim=1)
        return logits  # (N, T_out, V): step s read the tokens chosen at steps < s


def check_seq2seq(config: Seq2SeqConfig, info: DataInfo) -> None:
    steps = min(int(info.input_shape[0]), int(info.target_shape[0]))
    check_cell_stack(config.cell, config.num_layers, config.kernel_size, config.dropout, steps)


def build_seq2seq(config: Seq2SeqConfig, info: DataInfo) -> Seq2Seq:
    return Seq2Seq(config, info)


register(
    ArchSpec(
        name="seq2seq",
        task="seq2seq",
        config_cls=Seq2SeqConfig,
        builder=build_seq2seq,
        data_kinds=("transduction",),
        default_dataset="reverse_digits",
        train_defaults={"epochs": 15, "lr": 3e-3},
        description=(
            "Encoder-decoder: one sequence cell reads the input into a single summary vector, a "
            "second writes the output from it one token at a time (Sutskever et al. 2014). "
            "Everything the decoder knows of the input must pass through that vector."
        ),
        check=check_seq2seq,
    )
)
