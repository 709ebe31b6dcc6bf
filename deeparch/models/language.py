"""A character-level language model (one-to-many when it generates): a sequence cell predicts
the next character at every step; sampling one character at a time from softmax(logits / T)
writes new text (Karpathy 2015, "The Unreasonable Effectiveness of Recurrent Neural Networks";
Graves 2013)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models._cells import (
    CellStack,
    cell_field,
    check_cell_stack,
)
from deeparch.models.registry import ArchSpec, register
from deeparch.models.rnn import TokenInput, dropout_field, embedding_dim_field, token_input_field

GALLERY_POSITION = 74


@dataclass(frozen=True)
class CharLMConfig:
    cell: str = cell_field()
    hidden_size: int = hp(128, "size of the state (or channels) per step", min=1, max=512)
    num_layers: int = hp(1, "stacked layers of the cell", min=1, max=4)
    kernel_size: int = hp(3, "qrnn and tcn only: time steps each convolution sees", min=1, max=7)
    dropout: float = dropout_field()
    embedding_dim: int = embedding_dim_field()
    token_input: str = token_input_field()


def sample_next(logits: torch.Tensor, temperature: float, generator: torch.Generator):
    """One id per row from softmax(logits / temperature); temperature 0 takes the argmax."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


class CharLanguageModel(nn.Module):
    """tokens (N, T) -> next-character logits (N, T, V); generate(prompt, length, temperature)."""

    def __init__(self, config: CharLMConfig, info: DataInfo) -> None:
        super().__init__()
        self.context = int(info.input_shape[0])  # the longest history it was trained on
        self.embedding = TokenInput(info.vocab_size, config.embedding_dim, config.token_input)
        self.encoder = CellStack(
            config.cell, self.embedding.size, config.hidden_size, config.num_layers,
            config.kernel_size, config.dropout,
        )  # fmt: skip
        self.head = nn.Linear(config.hidden_size, info.num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(tokens)))

    @torch.no_grad()
    def generate(
        self, prompt: torch.Tensor, length: int, temperature: float, generator: torch.Generator
    ) -> torch.Tensor:
        """Continue prompts (N, P) by `length` ids, reading at most the last `context` ones."""
        sequence = prompt
        for _ in range(length):
            logits = self(sequence[:, -self.context :])[:, -1]  # (N, V) after the last step
            sequence = torch.cat(
                [sequence, sample_next(logits, temperature, generator)[:, None]], 1
            )
        return sequence[:, prompt.shape[1] :]


def check_char_lm(config: CharLMConfig, info: DataInfo) -> None:
    steps = int(info.input_shape[0])
    check_cell_stack(config.cell, config.num_layers, config.kernel_size, config.dropout, steps)
    if info.vocab_size < 2:
        raise ConfigError("dataset", info.name, "a text dataset with at least 2 characters")


def build_char_lm(config: CharLMConfig, info: DataInfo) -> CharLanguageModel:
    return CharLanguageModel(config, info)


register(
    ArchSpec(
        name="char_lm",
        task="language_model",
        config_cls=CharLMConfig,
        builder=build_char_lm,
        data_kinds=("text",),
        default_dataset="topics_chars",
        train_defaults={"epochs": 5, "lr": 3e-3},
        description=(
            "Character-level language model: a sequence cell reads text one character at a time "
            "and predicts the next at every step. Generating samples one character, feeds it "
            "back and samples again; the temperature makes it bolder or more careful."
        ),
        check=check_char_lm,
    )
)
