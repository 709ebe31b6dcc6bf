"""Training tasks by name: what one step, an evaluation and a snapshot mean for each kind of model.

The trainer knows tasks, never model families (minGPT's trainer.py). A task builds its
optimizers' parameter groups, runs `train_step(batch) -> {term: float}` with every loss term
reported separately, `evaluate(x, y)` under torch.no_grad() with the model's mode restored, and
`snapshot(x, y)` that returns the payload pages draw (numpy arrays, detached, on the CPU).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeparch.data.info import DataInfo
from deeparch.errors import UnknownNameError

# Evaluation runs without gradients, so it takes larger batches; past about 256 a convolution's
# activations no longer fit the CPU caches and samples/s falls (the cnn: 14k at 256, 8k at 512).
EVAL_BATCH_SIZE = 256
SHOW_EXAMPLES = 8  # how many examples a snapshot shows (misclassified digits, reconstructions)
GRAD_EXAMPLES = 64  # examples averaged for the per-time-step gradient norms


# ---- losses: pure functions ---------------------------------------------------------------------


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


def l1_penalty(parameters: list[nn.Parameter]) -> torch.Tensor:
    """Sum of absolute weights (Tibshirani 1996, the lasso), which pushes weights to exactly 0."""
    return torch.stack([p.abs().sum() for p in parameters]).sum()


# ---- the base task ------------------------------------------------------------------------------


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """no_grad and eval mode for the block, and the model's previous mode restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class Task(abc.ABC):
    """One kind of training objective; subclasses fill in the loss terms and the snapshot."""

    name = ""

    def __init__(self, model: nn.Module, info: DataInfo, config: Any, device: torch.device) -> None:
        self.model = model
        self.info = info
        self.config = config
        self.device = device
        self.l1 = float(config.l1)
        self.grad_clip = float(config.grad_clip)
        # Weights only (no biases or norm scales) for the L1 penalty, as in the lasso.
        self.l1_parameters = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        # Noise of this job's own (inputs corrupted, GAN latents): reseeded every step by the
        # trainer, so the run does not depend on the global RNG other threads share.
        self.noise = torch.Generator(device=device)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- optimisation -----------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[dict[str, Any]]]:
        """Parameter groups per optimizer name; one optimizer over all weights by default."""
        return {"model": [{"params": [p for p in self.model.parameters() if p.requires_grad]}]}

    def set_optimizers(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def regularized(
        self,
        loss: torch.Tensor,
        terms: dict[str, torch.Tensor],
        parameters: list[nn.Parameter] | None = None,
    ) -> torch.Tensor:
        """Add the L1 penalty (reported as its own term `l1`) when it is switched on."""
        if parameters is None:
            weights = self.l1_parameters
        else:
            weights = [p for p in parameters if p.dim() > 1]
        if self.l1 > 0 and weights:
            penalty = self.l1 * l1_penalty(weights)
            terms["l1"] = terms.get("l1", 0.0) + penalty.detach()
            return loss + penalty
        return loss

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Backward pass, optional gradient-norm clipping (Pascanu et al. 2013), one step."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        optimizer.step()

    # -- the three things a trainer asks of a task -------------------------------------------------

    @abc.abstractmethod
    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every loss term of one batch as scalar tensors, `loss` being the total to minimise."""

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        terms = self.loss_terms(x, y)
        terms["loss"] = self.regularized(terms["loss"], terms)
        self.update(self.optimizers["model"], terms["loss"])
        return {name: float(value.detach()) for name, value in terms.items()}

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Validation metrics: each term (and accuracy) averaged over samples, as val_<term>."""
        self.noise.manual_seed(int(self.config.seed))  # the same corruption at every evaluation
        sums: dict[str, float] = {}
        with evaluation_mode(self.model):
            for start in range(0, len(x), EVAL_BATCH_SIZE):
                xb, yb = x[start : start + EVAL_BATCH_SIZE], y[start : start + EVAL_BATCH_SIZE]
                for name, value in self.eval_terms(xb, yb).items():
                    sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
        return {f"val_{name}": total / max(1, len(x)) for name, total in sums.items()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch means for evaluation; subclasses add metrics such as accuracy."""
        return self.loss_terms(x, y)

    @abc.abstractmethod
    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """What the pages draw for this task, from validation data, as numpy arrays."""

    def dry_run(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """One forward pass in training mode without changing weights or buffers (shape check)."""
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        try:
            with torch.no_grad():
                self.loss_terms(*batch)
        finally:
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu").numpy().copy()


# ---- classification -----------------------------------------------------------------------------


class ClassifyTask(Task):
    """model(x) -> logits; cross-entropy; accuracy, confusion matrix and misclassified examples."""

    name = "classify"

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
            "confusion": _numpy(confusion),
            "misclassified": {
                "inputs": _numpy(x[wrong]),
                "true": _numpy(y[wrong]),
                "pred": _numpy(pred[wrong]),
            },
        }
        payload.update(self.extra_snapshot(x, y))
        return payload

    def extra_snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
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
        return {"grad_norm_per_step": _numpy(grad_norm_per_step), "hidden_trace": _numpy(hidden[0])}


# ---- by name ------------------------------------------------------------------------------------


def task_classes() -> dict[str, type[Task]]:
    """Task name -> class (the names of deeparch.models.registry.TASKS)."""
    from deeparch.tasks.generative import DenoiseTask, GanTask, ReconstructTask, VaeTask

    return {
        "classify": ClassifyTask,
        "sequence": SequenceTask,
        "reconstruct": ReconstructTask,
        "denoise": DenoiseTask,
        "vae": VaeTask,
        "gan": GanTask,
    }


def make_task(
    name: str, model: nn.Module, info: DataInfo, config: Any, device: torch.device
) -> Task:
    """The task object for an architecture's task name."""
    classes = task_classes()
    if name not in classes:
        raise UnknownNameError("task", name, list(classes))
    return classes[name](model, info, config, device)
