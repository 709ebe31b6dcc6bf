"""Recurrent sequence classifiers (Elman RNN, LSTM, GRU) and the shared sequence-task front end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 50  # Home's gallery: simplest idea first (registry.list_families)

SEQUENCE_KINDS = ("sequence", "tokens")
READOUTS = ("last", "mean")
TOKEN_INPUTS = ("embedding", "one_hot")


def embedding_dim_field() -> Any:
    """The `embedding_dim` hyperparameter every sequence family declares."""
    return hp(
        16,
        "size of the learned vector per token (token datasets only; float sequences pass as is)",
        min=2,
        max=256,
        step=2,
    )


def token_input_field() -> Any:
    """The `token_input` hyperparameter: how a token id becomes the vector a cell reads."""
    return hp(
        "embedding",
        "token datasets only. embedding: a learned vector of embedding_dim per token; one_hot: "
        "a vector as long as the vocabulary with a single 1 (what an Embedding computes too, "
        "but the first layer then learns the vectors itself, with more weights)",
        choices=TOKEN_INPUTS,
    )


def readout_field(default: str = "last") -> Any:
    """The `readout` hyperparameter: which summary of the hidden states the classifier sees."""
    return hp(
        default,
        "last: classify from the final hidden state; mean: from the average over all time steps",
        choices=READOUTS,
    )


def dropout_field() -> Any:
    """The `dropout` hyperparameter: dropout between stacked layers only."""
    return hp(
        0.0,
        "dropout on the outputs of every layer except the last (needs num_layers >= 2)",
        min=0.0,
        max=0.9,
        step=0.05,
    )


def sequence_length(info: DataInfo) -> int:
    """Number of time steps T of a sequence (T, F) or token (T,) dataset."""
    return int(info.input_shape[0])


def check_sequence_data(info: DataInfo) -> None:
    """Raise ConfigError when a dataset cannot feed a sequence model."""
    if info.kind not in SEQUENCE_KINDS:
        raise ConfigError("dataset", info.name, "a sequence or token dataset")
    if info.kind == "tokens" and info.vocab_size < 1:
        raise ConfigError("dataset", info.name, "a token dataset with vocab_size >= 1")


def check_layer_dropout(dropout: float, num_layers: int) -> None:
    """Dropout between layers does nothing with a single layer: say so instead of ignoring it."""
    if dropout > 0 and num_layers < 2:
        raise ConfigError(
            "dropout",
            dropout,
            "0 when num_layers is 1",
            "dropout acts between stacked layers; raise num_layers to 2 or set dropout to 0",
        )


class SequenceClassifier(nn.Module, ABC):
    """Base class for the `sequence` task: embed(x) -> e (N,T,E); classify_embedded(e) -> logits.

    Subclasses build `self.head` and implement `hidden_states(e) -> (N, T, H)`.
    forward(x) == classify_embedded(embed(x)), so the engine can take d loss / d e[:, t].
    """

    def __init__(
        self, info: DataInfo, embedding_dim: int, readout: str, token_input: str = "embedding"
    ) -> None:
        super().__init__()
        self.readout = readout
        self.num_classes = info.num_classes
        self.one_hot_size = 0  # one-hot token vectors of this length (0: not one-hot)
        if info.kind == "tokens" and token_input == "one_hot":
            self.embedding = None
            self.one_hot_size = self.input_size = info.vocab_size
        elif info.kind == "tokens":
            # The "Embedding front end": a lookup table instead of a one-hot Linear.
            self.embedding = nn.Embedding(info.vocab_size, embedding_dim)
            self.input_size = embedding_dim
        else:
            # Identity (no module) so gradients and hidden traces refer to the true input.
            self.embedding = None
            self.input_size = int(info.input_shape[-1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (N,T) long -> (N,T,E) float; float sequences (N,T,F) pass through unchanged."""
        if self.one_hot_size:
            return F.one_hot(x, self.one_hot_size).float()  # (N, T) -> (N, T, vocabulary)
        if self.embedding is None:
            return x if x.is_floating_point() else x.float()
        return self.embedding(x)

    @abstractmethod
    def hidden_states(self, e: torch.Tensor) -> torch.Tensor:
        """The per-step hidden states (N, T, H) the readout summarises."""

    def summarize(self, hidden: torch.Tensor) -> torch.Tensor:
        """Reduce (N, T, H) to (N, H) according to `readout`."""
        if self.readout == "mean":
            return hidden.mean(dim=1)
        return hidden[:, -1]

    def classify_embedded(
        self, e: torch.Tensor, return_hidden: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, num_classes) from embedded input (N,T,E); with hidden (N,T,H) when asked."""
        hidden = self.hidden_states(e)
        logits = self.head(self.summarize(hidden))
        if return_hidden:
            return logits, hidden
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify_embedded(self.embed(x))


# --------------------------------------------------------------------------------------------
# RNN / LSTM / GRU


CELL_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RecurrentConfig:
    """One config for the three recurrent cells; each registered name fixes `cell`."""

    cell: str = hp("lstm", "the recurrent cell; fixed by the architecture name", choices=("lstm",))
    hidden_size: int = hp(64, "size of the hidden state h_t per direction", min=1, max=512, step=1)
    num_layers: int = hp(
        1, "stacked recurrent layers; layer 2 reads layer 1's outputs", min=1, max=4
    )
    bidirectional: bool = hp(
        False, "also run a second RNN from the last step to the first and concatenate both"
    )
    dropout: float = dropout_field()
    embedding_dim: int = embedding_dim_field()
    token_input: str = token_input_field()
    readout: str = readout_field()
    batch_first: bool = hp(
        True,
        "True: the layer reads (batch, time, feature), as the data comes. False builds it "
        "reading (time, batch, feature) while the data still comes (batch, time, feature): it "
        "runs without an error, treats the batch as time and learns the wrong thing (the "
        "classic mistake, shown on purpose)",
    )
    recurrent_init_scale: float = hp(
        0.0,
        "0: PyTorch's initialisation of the recurrent weights (uniform within 1/sqrt(hidden)). "
        "s > 0: every recurrent matrix (each gate's) starts as s x a random orthogonal matrix "
        "(Saxe et al. 2014); 1 keeps the state's size, above 1 it grows every step and the "
        "gradients explode (Pascanu et al. 2013)",
        min=0.0,
        max=10.0,
        step=0.1,
    )


@dataclass(frozen=True)
class GatedConfig(RecurrentConfig):
    """The gated cells' config: the recurrent one, plus where their keep-gate starts."""

    keep_gate_bias: float = hp(
        0.0,
        "0: PyTorch's gate biases. b > 0: the gate that keeps the state (the LSTM's forget gate, "
        "the GRU's update gate) starts with bias b, and the LSTM's input gate with -b; at 4 the "
        "cell keeps 98% of its state a step (sigmoid(4)), so what it wrote survives 60 steps "
        "(Jozefowicz et al. 2015; 'chrono' initialisation, Tallec & Ollivier 2018)",
        min=0.0,
        max=10.0,
        step=0.5,
    )


@dataclass(frozen=True)
class LSTMConfig(GatedConfig):
    cell: str = hp("lstm", "the recurrent cell; fixed by the architecture name", choices=("lstm",))


@dataclass(frozen=True)
class GRUConfig(GatedConfig):
    cell: str = hp("gru", "the recurrent cell; fixed by the architecture name", choices=("gru",))


@dataclass(frozen=True)
class ElmanConfig(RecurrentConfig):
    cell: str = hp("rnn", "the recurrent cell; fixed by the architecture name", choices=("rnn",))
    nonlinearity: str = hp(
        "tanh",
        "tanh keeps h_t bounded (no explosion); relu lets gradients pass but can blow up",
        choices=("tanh", "relu"),
    )


class RecurrentClassifier(SequenceClassifier):
    """A stacked (optionally bidirectional) nn.RNN/LSTM/GRU with a linear head."""

    def __init__(self, config: RecurrentConfig, info: DataInfo) -> None:
        super().__init__(info, config.embedding_dim, config.readout, config.token_input)
        self.cell = config.cell
        self.hidden_size = config.hidden_size
        self.num_directions = 2 if config.bidirectional else 1
        extra = {"nonlinearity": config.nonlinearity} if config.cell == "rnn" else {}
        self.rnn = CELL_MODULES[config.cell](
            input_size=self.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            # True: (N, T, F) in and out, like the data. False reads dim 0 as time: the data's
            # (N, T, F) is taken for (time N, batch T, F), and the output (N, T, H) comes back in
            # the same layout, so every shape downstream still fits (the mistake stays silent).
            batch_first=config.batch_first,
            dropout=config.dropout,
            bidirectional=config.bidirectional,
            **extra,
        )
        if config.recurrent_init_scale > 0:
            scale_recurrent_weights(self.rnn, config.recurrent_init_scale)
        keep_gate_bias = getattr(config, "keep_gate_bias", 0.0)  # the gated cells' field
        if keep_gate_bias > 0:
            bias_keep_gate(self.rnn, keep_gate_bias)
        self.head = nn.Linear(config.hidden_size * self.num_directions, info.num_classes)

    def hidden_states(self, e: torch.Tensor) -> torch.Tensor:
        # outputs: (N, T, H * directions), the top layer's h_t at every step. The LSTM's second
        # state (the cell c_t) is returned separately and not used by the classifier.
        outputs, _ = self.rnn(e)
        return outputs

    def summarize(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.readout == "last" and self.num_directions == 2:
            # The backward direction finishes at t = 0, so its final state sits at index 0.
            forward_final = hidden[:, -1, : self.hidden_size]
            backward_final = hidden[:, 0, self.hidden_size :]
            return torch.cat([forward_final, backward_final], dim=1)  # (N, 2H)
        return super().summarize(hidden)


def scale_recurrent_weights(rnn: nn.RNNBase, scale: float) -> None:
    """Each gate's block of every recurrent matrix (weight_hh_l*, (gates x H, H)) becomes
    `scale` x a random orthogonal matrix (from the default generator, which model construction
    lends seeded): its singular values are all `scale`, so the state grows or shrinks by about
    that much a step (Saxe, McClelland, Ganguli 2014; Le, Jaitly, Hinton 2015 use the identity)."""
    hidden = rnn.hidden_size
    with torch.no_grad():
        for name, weight in rnn.named_parameters():
            if not name.startswith("weight_hh"):
                continue
            for block in weight.split(hidden, dim=0):  # (H, H) per gate: PyTorch stacks them
                nn.init.orthogonal_(block, gain=scale)


def bias_keep_gate(rnn: nn.LSTM | nn.GRU, value: float) -> None:
    """Every layer's (and direction's) keep-gate bias becomes `value`: rows H..2H of bias_ih
    (PyTorch orders the gates i, f, g, o for the LSTM and r, z, n for the GRU, so those rows are
    the LSTM's forget gate and the GRU's update gate), with the matching rows of bias_hh at 0,
    since the two biases add. The LSTM's input gate (rows 0..H) gets -`value`, as chrono
    initialisation sets it, so the noise after a written value is not added to the cell at half
    strength each step."""
    hidden = rnn.hidden_size
    keep = slice(hidden, 2 * hidden)
    with torch.no_grad():
        for name, bias in rnn.named_parameters():
            if name.startswith("bias_ih"):
                bias[keep] = value
                if isinstance(rnn, nn.LSTM):
                    bias[:hidden] = -value
            elif name.startswith("bias_hh"):
                bias[keep] = 0.0
                if isinstance(rnn, nn.LSTM):
                    bias[:hidden] = 0.0


def check_recurrent(config: RecurrentConfig, info: DataInfo) -> None:
    check_sequence_data(info)
    check_layer_dropout(config.dropout, config.num_layers)


def build_recurrent(config: RecurrentConfig, info: DataInfo) -> RecurrentClassifier:
    return RecurrentClassifier(config, info)


_RECURRENT = {
    "rnn": (
        ElmanConfig,
        "Elman RNN: one hidden state h_t = act(W x_t + U h_(t-1) + b) updated step by step. "
        "The simplest recurrence; long sequences show vanishing (tanh) or exploding (relu) "
        "gradients, which the gradient-per-step plot makes visible. Its one click reads "
        "mnist_rows (28 rows of 28 pixels, the last rows still telling digits apart) and "
        "learns it, tanh or relu. On mnist1d, where the class is spread over 40 steps, the "
        "same RNN stays at chance (10%) after 20 epochs while an LSTM reaches about 70% and a "
        "GRU 90%: train it there, then compare the cells in Sequences, 'Vanishing gradients'.",
    ),
    "lstm": (
        LSTMConfig,
        "LSTM: keeps two states, a cell c_t that is only scaled and added to, and an output "
        "h_t = o_t * tanh(c_t). Input, forget and output gates decide what to write, keep and "
        "show, so gradients survive many more steps than in a plain RNN.",
    ),
    "gru": (
        GRUConfig,
        "GRU: a lighter gated RNN with one state and two gates (reset, update); the update gate "
        "mixes the old state with a candidate. Three weight blocks instead of the LSTM's four.",
    ),
}

# One click per cell (measured on one thread here, deeparch.bench.defaults): a plain RNN on mnist1d
# stays at chance for 20 epochs (its gradient fades over 40 steps), so it starts on mnist_rows,
# 28 steps, where 10 epochs take it to 82%; the gated cells learn mnist1d itself.
ONE_CLICK = {
    "rnn": ("mnist_rows", {"epochs": 10, "lr": 3e-3}),
    "lstm": ("mnist1d", {"epochs": 20, "lr": 3e-3}),
    "gru": ("mnist1d", {"epochs": 20, "lr": 3e-3}),
}

for _name, (_config_cls, _description) in _RECURRENT.items():
    register(
        ArchSpec(
            name=_name,
            task="sequence",
            config_cls=_config_cls,
            builder=build_recurrent,
            data_kinds=SEQUENCE_KINDS,
            default_dataset=ONE_CLICK[_name][0],
            train_defaults=ONE_CLICK[_name][1],
            description=_description,
            check=check_recurrent,
        )
    )


class TokenInput(nn.Module):
    """Token ids (N, T) -> vectors (N, T, E): a learned Embedding, or fixed one-hot vectors."""

    def __init__(self, vocab_size: int, embedding_dim: int, token_input: str) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        one_hot = token_input == "one_hot"
        self.size = vocab_size if one_hot else embedding_dim
        self.embedding = None if one_hot else nn.Embedding(vocab_size, embedding_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return F.one_hot(tokens, self.vocab_size).float()
        return self.embedding(tokens)
