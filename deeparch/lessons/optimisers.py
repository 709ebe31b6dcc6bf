"""Lesson: optimisers side by side, trained by the engine on the same model, data, seed and
batches (the same seed gives every run the same initial weights and the same batch order)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished

# Each with its customary learning rate (PyTorch's defaults where it has one; Adadelta's lr 1.0
# is Zeiler's, who proposed it to need no learning rate at all). Plain SGD and SGD with momentum
# share their learning rate, so momentum is the only difference between them.
OPTIMISERS: dict[str, dict[str, Any]] = {
    "SGD": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0},
    "SGD with momentum": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    "Adam": {"optimizer": "adam", "lr": 1e-3},
    "Adagrad": {"optimizer": "adagrad", "lr": 1e-2},
    "Adadelta": {"optimizer": "adadelta", "lr": 1.0},
    "RMSprop": {"optimizer": "rmsprop", "lr": 1e-3},
}
STEPS = {"ci": 60, "full": 600}
SMOOTHING = 10  # the training loss at the end: the mean of the last steps'
MODEL = {"arch": "mlp", "dataset": "mnist", "arch_config": {"hidden_sizes": (128,)}}


def optimiser_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        label: TrainConfig.from_dict(
            {
                **MODEL,
                **settings,
                "epochs": 1000,  # max_steps ends the run (one epoch of mnist is 62 steps)
                "max_steps": STEPS[budget],
                "batch_size": 64,
                "seed": 0,
            }  # fmt: skip
        )
        for label, settings in OPTIMISERS.items()
    }


def loss_curve(job: JobHandle) -> list[float]:
    """The run's training loss at every step, in order."""
    return [float(value) for _step, value in job.snapshot()["losses"]["loss"]]


def judge_optimisers(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(LESSON, problems)
    curves = {label: loss_curve(job) for label, job in jobs.items()}
    final = {label: sum(losses[-SMOOTHING:]) / SMOOTHING for label, losses in curves.items()}
    # The evaluation the engine ran when each run reached max_steps.
    val_accuracy = {
        label: job.snapshot()["final_metrics"].get("val_accuracy") for label, job in jobs.items()
    }
    best = min(final, key=final.get)
    adaptive = min(final["Adam"], final["RMSprop"])
    held = final["SGD with momentum"] < final["SGD"] and adaptive < final["SGD"]
    ranking = ", ".join(f"{label} {final[label]:.3f}" for label in sorted(final, key=final.get))
    return Outcome(
        LESSON.name,
        held=held,
        verdict=f"after {len(curves['SGD'])} steps from the same weights on the same batches, the "
        f"training loss is {ranking}: momentum "
        + ("beats" if final["SGD with momentum"] < final["SGD"] else "does not beat")
        + f" plain SGD at the same learning rate, and {best} ends lowest",
        measured={
            "final_train_loss": final,
            "val_accuracy": val_accuracy,
            "steps": {label: len(losses) for label, losses in curves.items()},
        },  # fmt: skip
        series={"training loss per step": curves},
        series_x={"training loss per step": "step"},
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
        runs=optimiser_runs,
        setup={**MODEL, "optimizer": "sgd", "lr": 0.05, "momentum": 0.0},
        position=18,
    )
)
