"""word2vec (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector
Space"): skip-gram predicts each context word from the centre word, CBOW predicts the centre
word from the average of its context; the input embedding is what is kept. Trained here with the
full softmax over the vocabulary (the paper's hierarchical softmax and negative sampling are
ways of making that softmax cheaper for vocabularies of millions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 78
OBJECTIVES = ("skipgram", "cbow")


@dataclass(frozen=True)
class Word2VecConfig:
    objective: str = hp("skipgram", "fixed by the architecture name", choices=("skipgram",))
    embedding_dim: int = hp(32, "size of each word's vector", min=2, max=256, step=2)
    window: int = hp(2, "context words on each side of the centre word", min=1, max=5)


@dataclass(frozen=True)
class CBOWConfig(Word2VecConfig):
    objective: str = hp("cbow", "fixed by the architecture name", choices=("cbow",))


class Word2Vec(nn.Module):
    """Word windows (N, 2W + 1), centre at W -> logits over the vocabulary (N, V).

    skipgram: from the centre word's vector (the same prediction for every context slot);
    cbow: from the mean of the context words' vectors."""

    def __init__(self, config: Word2VecConfig, info: DataInfo) -> None:
        super().__init__()
        self.objective = config.objective
        self.window = config.window
        self.centre = int(info.input_shape[0]) // 2  # the dataset's window is centred
        self.embedding = nn.Embedding(info.vocab_size, config.embedding_dim)  # input vectors
        self.output = nn.Linear(config.embedding_dim, info.vocab_size, bias=False)  # output

    def context(self, windows: torch.Tensor) -> torch.Tensor:
        """The 2 * window context ids around the centre (N, 2w)."""
        c, w = self.centre, self.window
        return torch.cat([windows[:, c - w : c], windows[:, c + 1 : c + w + 1]], dim=1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if self.objective == "skipgram":
            return self.output(self.embedding(windows[:, self.centre]))
        return self.output(self.embedding(self.context(windows)).mean(dim=1))

    def pairs(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (M, V), targets (M,)) of the objective's training pairs in these windows."""
        logits = self(windows)
        if self.objective == "cbow":
            return logits, windows[:, self.centre]
        context = self.context(windows)  # (N, 2w): each is a target of the same prediction
        repeated = logits[:, None].expand(-1, context.shape[1], -1)
        return repeated.reshape(-1, logits.shape[1]), context.reshape(-1)

    def vectors(self) -> torch.Tensor:
        return self.embedding.weight.detach()


def nearest_words(vectors: torch.Tensor, ids: torch.Tensor, k: int) -> tuple:
    """The k nearest other words of each id by cosine similarity: (ids (P, k), similarity)."""
    unit = F.normalize(vectors.float(), dim=1)
    similarity = unit[ids] @ unit.T  # (P, V)
    similarity[torch.arange(len(ids)), ids] = -2.0  # never a word's own neighbour
    top = similarity.topk(k, dim=1)
    return top.indices, top.values


def pca_2d(vectors: torch.Tensor) -> torch.Tensor:
    """Coordinates (N, 2) on the first two principal components of the centred rows."""
    centred = vectors.double() - vectors.double().mean(dim=0)
    _u, _s, v = torch.linalg.svd(centred, full_matrices=False)
    components = v[:2].T  # (D, 2)
    # A sign convention, so that the picture does not flip from one snapshot to the next: the
    # largest loading of each component is positive.
    signs = torch.sign(components[components.abs().argmax(dim=0), torch.arange(2)])
    return (centred @ (components * signs)).float()


def check_word2vec(config: Word2VecConfig, info: DataInfo) -> None:
    widest = int(info.input_shape[0]) // 2
    if config.window > widest:
        raise ConfigError("window", config.window, f"at most {widest} for {info.name}")


def build_word2vec(config: Word2VecConfig, info: DataInfo) -> Word2Vec:
    return Word2Vec(config, info)


for _name, _config_cls, _description in (
    ("skipgram", Word2VecConfig, "word2vec skip-gram: each word's vector predicts the words "
     "around it. Words used in the same company end up with similar vectors (Mikolov et al. "
     "2013)."),
    ("cbow", CBOWConfig, "word2vec CBOW (continuous bag of words): the average of the context "
     "words' vectors predicts the word in the middle. Faster than skip-gram, smoother for "
     "frequent words (Mikolov et al. 2013)."),
):  # fmt: skip
    register(
        ArchSpec(
            name=_name,
            task="word2vec",
            config_cls=_config_cls,
            builder=build_word2vec,
            data_kinds=("windows",),
            default_dataset="topics_words",
            # 15 epochs: after 3 the neighbours are still noise; after 15 (2,760 steps) "true"
            # has "false" and "string" has "byte" and "substring" among its nearest.
            train_defaults={"epochs": 15, "lr": 1e-2, "batch_size": 256},
            description=_description,
            check=check_word2vec,
        )
    )
