"""Lesson: optimisers side by side on the same model, data, seed and batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.handle import JobHandle
from deeparch.lessons.measure import accuracy, fit, seeded_model
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register

# Each with its customary learning rate (PyTorch's defaults where it has one; Adadelta's lr 1.0
# is Zeiler's, who proposed it to need no learning rate at all).
OPTIMISERS: dict[str, Callable[[list], torch.optim.Optimizer]] = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.05),
    "SGD with momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "Adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "Adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-2),
    "Adadelta": lambda p: torch.optim.Adadelta(p, lr=1.0),
    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
}
STEPS = {"ci": 60, "full": 600}
SMOOTHING = 10  # the training loss at the end: the mean of the last steps'


def judge_optimisers(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    data = load_dataset("mnist")
    curves, final, val_accuracy = {}, {}, {}
    for label, make in OPTIMISERS.items():
        # The same initial weights and the same batches (seed 0) for every optimiser.
        model = seeded_model("mlp", {"hidden_sizes": (128,)}, "mnist", seed=0)
        optimizer = make(list(model.parameters()))
        losses = fit(model, data.x_train, data.y_train, nn.functional.cross_entropy, optimizer,
                     STEPS[budget], batch_size=64, seed=0)  # fmt: skip
        curves[label] = losses
        final[label] = sum(losses[-SMOOTHING:]) / SMOOTHING
        val_accuracy[label] = accuracy(model, data.x_val, data.y_val)
    best = min(final, key=final.get)
    adaptive = min(final["Adam"], final["RMSprop"])
    held = final["SGD with momentum"] < final["SGD"] and adaptive < final["SGD"]
    ranking = ", ".join(f"{label} {final[label]:.3f}" for label in sorted(final, key=final.get))
    return Outcome(
        LESSON.name,
        held=held,
        verdict=f"after {STEPS[budget]} steps from the same weights on the same batches, the "
        f"training loss is {ranking}: momentum beats plain SGD at the same learning rate, and "
        f"{best} ends lowest",
        measured={"final_train_loss": final, "val_accuracy": val_accuracy, "steps": STEPS[budget]},
        series={"training loss per step": curves},
        answer=best,
    )


LESSON = register(
    Lesson(
        name="optimisers",
        title="Optimisers on the same model and seed",
        claim="From the same initial weights on the same batches, the update rule alone changes "
        "how fast the loss falls: momentum speeds up plain SGD, and the adaptive methods (Adam, "
        "RMSprop), which scale each weight's step by its gradient history, get ahead early.",
        source="S. Ruder, An overview of gradient descent optimization algorithms "
        "(arXiv:1609.04747, 2016); Sutskever et al. 2013 (momentum); Duchi et al. 2011 "
        "(Adagrad); Zeiler 2012 (Adadelta); Tieleman & Hinton 2012 (RMSprop); Kingma & Ba 2015 "
        "(Adam)",
        prediction=Prediction(
            "choice", "Which ends with the lowest training loss?", choices=tuple(OPTIMISERS)
        ),
        judge=judge_optimisers,
        note="Trained with a plain PyTorch loop inside the lesson, every optimiser on the same "
        "batches: the engine's sgd always has momentum 0.9, so plain SGD is not one of its "
        "choices (Adadelta is: optimizer=adadelta on Train).",
        setup={"arch": "mlp", "dataset": "mnist", "arch_config": {"hidden_sizes": (128,)}},
        position=18,
    )
)
