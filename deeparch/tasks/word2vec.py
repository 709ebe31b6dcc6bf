"""word2vec: cross-entropy over the vocabulary for every (input, target) pair of a window;
snapshots hold nearest neighbours of a few words and a 2-D map of the embedding space."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deeparch.models.word2vec import nearest_words, pca_2d
from deeparch.tasks.base import Task, evaluation_mode, to_numpy

# Words the snapshot follows (those in the vocabulary): Python's own nouns and verbs.
PROBE_WORDS = ("list", "string", "function", "class", "true", "error", "file", "integer")
NEIGHBOURS = 5
MAP_WORDS = 200  # the most frequent words placed on the 2-D map


class Word2VecTask(Task):
    """model.pairs(windows) -> (logits, targets): skip-gram or CBOW pairs."""

    name = "word2vec"

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, targets = self.model.pairs(x)
        cross_entropy = F.cross_entropy(logits, targets)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy.detach()}

    def probe_ids(self) -> list[int]:
        index = {word: i for i, word in enumerate(self.info.class_names)}
        return [index[word] for word in PROBE_WORDS if word in index]

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        with evaluation_mode(self.model):
            vectors = self.model.vectors().cpu()
        probes = torch.tensor(self.probe_ids(), dtype=torch.long)
        neighbours, similarity = nearest_words(vectors, probes, NEIGHBOURS)
        # The vocabulary is sorted by frequency: the first MAP_WORDS ids are the most frequent.
        shown = min(MAP_WORDS, len(vectors))
        return {
            "probe_ids": to_numpy(probes),
            "neighbour_ids": to_numpy(neighbours),  # (P, 5)
            "neighbour_similarity": to_numpy(similarity),
            "map_xy": to_numpy(pca_2d(vectors[:shown])),  # (200, 2), ids 0..199
        }
