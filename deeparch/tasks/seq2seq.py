"""Sequence to sequence: trained with teacher forcing (the decoder reads the true previous
tokens), measured decoding greedily from its own choices, position by position."""

from __future__ import annotations

from typing import Any

import torch

from deeparch.tasks.base import EVAL_BATCH_SIZE, SHOW_EXAMPLES, Task, evaluation_mode, to_numpy
from deeparch.tasks.language import next_token_loss


class Seq2SeqTask(Task):
    """model.teacher_forced(x, y) -> logits (N, T_out, V) for the loss; model(x) decodes."""

    name = "seq2seq"

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        cross_entropy = next_token_loss(self.model.teacher_forced(x, y), y)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy.detach()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        correct = self.model(x).argmax(dim=2) == y  # (N, T_out), greedy decoding
        return {
            "loss": next_token_loss(self.model.teacher_forced(x, y), y),
            "accuracy": correct.float().mean(),
            "sequence_accuracy": correct.all(dim=1).float().mean(),
        }

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        with evaluation_mode(self.model):
            decoded = torch.cat(
                [
                    self.model(x[start : start + EVAL_BATCH_SIZE]).argmax(dim=2)
                    for start in range(0, len(x), EVAL_BATCH_SIZE)
                ]
            )
        correct = (decoded == y).float()  # (N, T_out)
        return {
            "position_accuracy": to_numpy(correct.mean(dim=0)),  # (T_out,)
            "sequence_accuracy": float(correct.all(dim=1).float().mean()) if len(y) else 0.0,
            "inputs": to_numpy(x[:SHOW_EXAMPLES]),
            "targets": to_numpy(y[:SHOW_EXAMPLES]),
            "outputs": to_numpy(decoded[:SHOW_EXAMPLES]),
        }
