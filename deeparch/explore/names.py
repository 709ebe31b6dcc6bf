"""Surnames by language: a student's own name checked, and the prediction after each letter."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deeparch.data.language import SURNAME_INDEX, SURNAME_STEPS, encode_surname
from deeparch.errors import ConfigError
from deeparch.tasks import evaluation_mode

PUNCTUATION = (
    " '-"  # what surnames hold besides letters ("o'brien", "de vries", "müller-lüdenscheidt")
)


def check_name(text: str) -> str:
    """The name, stripped and lowercased; ConfigError naming the field when it is not letters
    (with spaces, apostrophes or hyphens between them) of at most SURNAME_STEPS characters."""
    name = str(text).strip().lower()
    allowed = f"1 to {SURNAME_STEPS} letters (spaces, ' and - between them are fine)"
    if not name or len(name) > SURNAME_STEPS:
        raise ConfigError("name", text, allowed, f"it has {len(name)} characters")
    for char in name:
        if not (char.isalpha() or char in PUNCTUATION):
            raise ConfigError("name", text, allowed, f"{char!r} is not a letter")
    return name


def unknown_letters(name: str) -> list[str]:
    """Letters of a name the model never saw in training (they are read as one 'unknown')."""
    return sorted({char for char in name if char not in SURNAME_INDEX})


def prefix_predictions(model: nn.Module, name: str) -> tuple[list[str], np.ndarray]:
    """The prefixes "b", "ba", "bak", ... of a name and the model's class probabilities after
    reading each (L, K): each prefix is one left-padded input, as a name is in training."""
    prefixes = [name[: end + 1] for end in range(len(name))]
    tokens = torch.from_numpy(np.stack([encode_surname(prefix) for prefix in prefixes]))
    device = next(model.parameters()).device
    with evaluation_mode(model):
        probabilities = torch.softmax(model(tokens.to(device)), dim=1)
    return prefixes, probabilities.cpu().numpy()
