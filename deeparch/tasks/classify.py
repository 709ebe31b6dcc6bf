"""Classification tasks: logits and cross-entropy; for sequences also the per-step gradient."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import EVAL_BATCH_SIZE, SHOW_EXAMPLES, Task, evaluation_mode, to_numpy
from deeparch.tasks.boundary import decision_boundary

GRAD_EXAMPLES = 64  # examples averaged for the per-time-step gradient norms
# Examples a snapshot keeps of each confusion cell (as indices): a page shows them on a click.
CELL_EXAMPLES = 8


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; a single logit column (N, 1) is binary logistic regression (BCE)."""
    if logits.dim() == 2 and logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], targets.float())
    return F.cross_entropy(logits, targets)


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """Class indices from logits (N, K), or from one logit (N, 1) thresholded at 0 (p = 0.5)."""
    if logits.dim() == 2 and logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def cell_example_indices(pair: torch.Tensor, k: int, per_cell: int) -> torch.Tensor:
    """(K, K, per_cell) indices of the first examples in each confusion cell, -1 past its count.

    `pair` is true * K + predicted per example; indices are positions in the snapshot's samples
    (the first validation samples), so a page finds the images in the dataset, and a snapshot
    holds a few kilobytes of indices rather than copies of images.
    """
    order = torch.argsort(pair, stable=True)  # examples grouped by cell, in sample order
    grouped = pair[order]
    counts = torch.bincount(pair, minlength=k * k)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(pair), device=pair.device) - starts[grouped]  # place in its cell
    keep = rank < per_cell
    indices = torch.full((k * k, per_cell), -1, dtype=torch.int32, device=pair.device)
    indices[grouped[keep], rank[keep]] = order[keep].to(torch.int32)
    return indices.reshape(k, k, per_cell)


def cell_examples(
    payload: dict[str, Any], x_val: torch.Tensor, true_class: int, predicted_class: int
) -> torch.Tensor:
    """The validation inputs a snapshot counted in one confusion cell (at most CELL_EXAMPLES)."""
    indices = payload["cell_examples"][true_class, predicted_class]
    indices = torch.as_tensor(indices[indices >= 0], dtype=torch.long)
    return x_val[indices]


class ClassifyTask(Task):
    """model(x) -> logits; cross-entropy; accuracy, confusion matrix and misclassified examples."""

    name = "classify"
    summary_metrics = ("val_accuracy", "val_loss")
    best_by = ("val_accuracy", "max")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        cross_entropy = classification_loss(self.logits(x), y)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy.detach()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.logits(x)
        return {
            "loss": classification_loss(logits, y),
            "accuracy": (predictions(logits) == y).float().mean(),
        }

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        with evaluation_mode(self.model):
            pred = torch.cat(
                [
                    predictions(self.logits(x[start : start + EVAL_BATCH_SIZE]))
                    for start in range(0, len(x), EVAL_BATCH_SIZE)
                ]
            )
        k = self.info.num_classes
        # confusion[true, pred] counts: one bincount over the pair index true * K + pred.
        confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k)
        wrong = (pred != y).nonzero()[:SHOW_EXAMPLES, 0]
        payload = {
            "val_accuracy": float((pred == y).float().mean()) if len(y) else 0.0,
            "confusion": to_numpy(confusion),
            "cell_examples": to_numpy(cell_example_indices(y * k + pred, k, CELL_EXAMPLES)),
            "misclassified": {
                "inputs": to_numpy(x[wrong]),
                "true": to_numpy(y[wrong]),
                "pred": to_numpy(pred[wrong]),
            },
        }
        payload.update(self.extra_snapshot(x, y))
        return payload

    def extra_snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        if self.info.kind == "points":  # 2-D points: the decision regions, as they move
            return {"boundary": decision_boundary(self.model, x, y)}
        return {}


class SequenceTask(ClassifyTask):
    """Sequence classification, plus the per-time-step gradient and the hidden-state trace."""

    name = "sequence"

    def extra_snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        x, y = x[:GRAD_EXAMPLES], y[:GRAD_EXAMPLES]
        was_training = self.model.training
        self.model.eval()
        try:
            # cuDNN computes RNN gradients only in training mode; the plain kernels work in eval.
            cudnn_off = (
                torch.backends.cudnn.flags(enabled=False)
                if self.device.type == "cuda"
                else contextlib.nullcontext()
            )
            with cudnn_off, torch.enable_grad():
                embedded = self.model.embed(x).detach().requires_grad_(True)  # (N, T, E)
                logits = self.model.classify_embedded(embedded)
                # Summed, so each example's gradient is d loss_i / d e_i, not scaled by 1/N.
                loss = classification_loss(logits, y) * len(y)
                (grad,) = torch.autograd.grad(loss, embedded)
            grad_norm_per_step = grad.norm(dim=2).mean(dim=0)  # (N, T, E) -> (T,)
            with torch.no_grad():
                first = self.model.embed(x[:1])
                _, hidden = self.model.classify_embedded(first, return_hidden=True)  # (1, T, H)
        finally:
            self.model.train(was_training)
        return {
            "grad_norm_per_step": to_numpy(grad_norm_per_step),
            "hidden_trace": to_numpy(hidden[0]),
        }
