"""A character language model: cross-entropy of the next character at every step; snapshots
hold text the model writes itself, so a student watches it go from noise to words."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import Task, evaluation_mode, to_numpy

SAMPLE_PROMPTS = 3  # samples per snapshot, each continuing the start of a validation chunk
PROMPT_LENGTH = 16
SAMPLE_LENGTH = 120
SAMPLE_TEMPERATURE = 0.8


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every step: logits (N, T, V), targets (N, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class LanguageModelTask(Task):
    """model(tokens) -> logits (N, T, V) against the next tokens y (N, T)."""

    name = "language_model"

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        cross_entropy = next_token_loss(self.model(x), y)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy.detach()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.model(x)
        return {
            "loss": next_token_loss(logits, y),
            "accuracy": (logits.argmax(dim=2) == y).float().mean(),
        }

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        prompts = x[:SAMPLE_PROMPTS, :PROMPT_LENGTH]
        # The same draws at every snapshot: what changes between two samples is the model.
        generator = torch.Generator(device=x.device).manual_seed(int(self.config.seed))
        with evaluation_mode(self.model):
            samples = self.model.generate(prompts, SAMPLE_LENGTH, SAMPLE_TEMPERATURE, generator)
        return {
            "prompts": to_numpy(prompts),  # (P, 16) character ids
            "samples": to_numpy(samples),  # (P, 120) the continuations
            "temperature": SAMPLE_TEMPERATURE,
        }
