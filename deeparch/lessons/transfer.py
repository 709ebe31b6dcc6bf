"""Lesson: freezing part of a network. A convnet trained on digits 0-4 lends its frozen features
to a new head for 5-9, against the same convnet trained from scratch on 5-9 with the same budget."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.handle import JobHandle
from deeparch.lessons.measure import accuracy, fit, seeded_model, seeded_module
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register

PRETRAIN_STEPS = {"ci": 400, "full": 1000}
TRANSFER_STEPS = {"ci": 50, "full": 100}  # the budget both contenders get on 5-9
# Training images of each new digit: transfer pays when the new task has few examples.
NEW_PER_CLASS = 10
SMALL = {"dense_width": 64}


def digits_between(x: torch.Tensor, y: torch.Tensor, low: int, high: int):
    """The images of digits low..high, labelled 0..high-low."""
    chosen = (y >= low) & (y <= high)
    return x[chosen], y[chosen] - low


def few_per_class(x: torch.Tensor, y: torch.Tensor, count: int = NEW_PER_CLASS):
    """The first `count` images of each class (the split is already shuffled)."""
    chosen = torch.cat([torch.nonzero(y == label).flatten()[:count] for label in y.unique()])
    return x[chosen], y[chosen]


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def judge_freezing(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    data = load_dataset("mnist")
    x_first, y_first = digits_between(data.x_train, data.y_train, 0, 4)
    x_second, y_second = few_per_class(*digits_between(data.x_train, data.y_train, 5, 9))
    x_val, y_val = digits_between(data.x_val, data.y_val, 5, 9)
    loss = nn.functional.cross_entropy

    pretrained = seeded_model("cnn", SMALL, "mnist", seed=0)
    fit(pretrained, x_first, y_first, loss, torch.optim.Adam(pretrained.parameters(), lr=1e-3),
        PRETRAIN_STEPS[budget], seed=1)  # fmt: skip
    # A new head for five classes; the features (every convolution) frozen.
    width = pretrained.classifier.output.in_features
    pretrained.classifier.output = seeded_module(lambda: nn.Linear(width, 5), seed=2)
    for parameter in pretrained.features.parameters():
        parameter.requires_grad_(False)
    frozen_trainable = trainable_count(pretrained)
    head = [p for p in pretrained.parameters() if p.requires_grad]
    fit(pretrained, x_second, y_second, loss, torch.optim.Adam(head, lr=1e-3),
        TRANSFER_STEPS[budget], seed=3)  # fmt: skip

    scratch = seeded_model("cnn", SMALL, "mnist", seed=0)
    scratch.classifier.output = seeded_module(lambda: nn.Linear(width, 5), seed=2)
    fit(scratch, x_second, y_second, loss, torch.optim.Adam(scratch.parameters(), lr=1e-3),
        TRANSFER_STEPS[budget], seed=3)  # fmt: skip

    frozen_accuracy = accuracy(pretrained, x_val, y_val)
    scratch_accuracy = accuracy(scratch, x_val, y_val)
    held = frozen_accuracy > scratch_accuracy
    return Outcome(
        LESSON.name,
        held=held,
        verdict=f"after {TRANSFER_STEPS[budget]} steps on {len(x_second)} images of digits 5-9, "
        f"the frozen features with a "
        f"new head ({frozen_trainable:,} trainable parameters) reach {frozen_accuracy:.1%}, the "
        f"same convnet from scratch ({trainable_count(scratch):,} trainable) "
        f"{scratch_accuracy:.1%}",
        measured={
            "val_accuracy": {
                "frozen features, new head": frozen_accuracy,
                "from scratch": scratch_accuracy,
            },
            "trainable": {
                "frozen features, new head": frozen_trainable,
                "from scratch": trainable_count(scratch),
            },
            "pretrain_steps": PRETRAIN_STEPS[budget],
            "transfer_steps": TRANSFER_STEPS[budget],
        },  # fmt: skip
        answer="frozen features, new head" if held else "from scratch",
    )


LESSON = register(
    Lesson(
        name="freezing",
        title="Freezing part of a network",
        claim="Features learned on one task serve another: a convnet's convolutions trained on "
        "digits 0-4, frozen, with only a new head trained on a few examples of 5-9, beat the "
        "same network trained from scratch on those examples with the same budget.",
        source="J. Yosinski, J. Clune, Y. Bengio, H. Lipson, How transferable are features in "
        "deep neural networks? (NeurIPS 2014); PyTorch tutorial, Transfer learning for computer "
        "vision",
        prediction=Prediction(
            "choice",
            "After the same few steps on 5-9, which is more accurate?",
            choices=("frozen features, new head", "from scratch"),
        ),  # fmt: skip
        judge=judge_freezing,
        note="Trained with a plain PyTorch loop inside the lesson: the engine freezes parts by "
        "name (freeze=features on Train) but trains on every class of a dataset and cannot "
        "swap a trained model's head.",
        setup={"arch": "cnn", "dataset": "mnist", "freeze": "features"},
        position=24,
    )
)
