"""Lesson: residual learning. A plain deep net and a ResNet of the same depth, and a shallow plain
net beside them, trained by the engine with the same data, seed and budget; their accuracy and
each layer's gradient norm."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.lessons.measure import accuracy as measured_accuracy
from deeparch.lessons.measure import layer_gradient_norms
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished

# Deep enough that the plain net degrades: 3 stages of 6 blocks is 37 layers with weights (the
# registry's one click is this depth too, so the lesson's runs are what Train starts).
DEEP = {"stages": 3, "blocks_per_stage": 6}
# The degradation problem is the deep plain net against a shallow one (He et al., Fig. 1: 56
# layers below 20); 1 block a stage is 9 layers with weights.
SHALLOW = {"stages": 3, "blocks_per_stage": 1}
DEPTHS = {"resnet": ("resnet", DEEP), "plainnet": ("plainnet", DEEP),
          "plainnet (shallow)": ("plainnet", SHALLOW)}  # fmt: skip
# What "falls behind" means at either budget: the deep plain net this far below the ResNet of its
# depth, and below the shallow plain net. Measured at the CI budget (50 steps): 67.9% for the
# ResNet, 44.3% for the shallow plain net, 30.0% for the deep one (README, Lessons).
RESNET_AHEAD = 0.25
DEGRADED = 0.1
BUDGETS = {
    "ci": {"base_channels": 8, "max_steps": 50, "batch_size": 32},
    # One epoch (125 steps). At base_channels 16 and batches of 64 (62 steps) the deeper plain
    # net fell clearly behind the shallow one, but the ResNet led it by only 6.9 points.
    "full": {"base_channels": 8, "max_steps": 0, "batch_size": 32},
}


def residual_runs(budget: str) -> dict[str, TrainConfig]:
    settings = BUDGETS[budget]
    return {
        label: TrainConfig.from_dict(
            {
                "arch": arch,
                "dataset": "mnist",
                "arch_config": {**depth, "base_channels": settings["base_channels"]},
                "epochs": 1,
                "max_steps": settings["max_steps"],
                "batch_size": settings["batch_size"],
                "lr": 1e-3,
                "seed": 0,
            }
        )
        for label, (arch, depth) in DEPTHS.items()
    }


def judge_residual(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(LESSON, problems)
    data = load_dataset("mnist")
    x, y = data.x_val[:256], data.y_val[:256]
    models = {label: job.model_copy() for label, job in jobs.items()}
    accuracy = {
        label: measured_accuracy(model, data.x_val, data.y_val) for label, model in models.items()
    }
    norms = {
        label: layer_gradient_norms(model, x, y, nn.functional.cross_entropy)
        for label, model in models.items()
    }
    first = {label: next(iter(layer_norms.values())) for label, layer_norms in norms.items()}
    margin = accuracy["resnet"] - accuracy["plainnet"]
    degradation = accuracy["plainnet (shallow)"] - accuracy["plainnet"]
    gradient_ratio = first["resnet"] / max(first["plainnet"], 1e-30)
    # The skips' effect on the gradient is shown beside the verdict, not judged: the ratio
    # depends on how far training has gone.
    held = margin > RESNET_AHEAD and degradation > DEGRADED
    steps = jobs["resnet"].snapshot().get("step", 0)
    layers = {label: len(layer_norms) for label, layer_norms in norms.items()}
    return Outcome(
        LESSON.name,
        held=held,
        verdict=f"after {steps} steps the plain net of {layers['plainnet']} layers reaches "
        f"{accuracy['plainnet']:.1%} validation accuracy, the ResNet of the same depth "
        f"{accuracy['resnet']:.1%} and the plain net of {layers['plainnet (shallow)']} layers "
        f"{accuracy['plainnet (shallow)']:.1%}: the deeper plain net is "
        + ("worse" if degradation > DEGRADED else "not clearly worse")
        + f" (the check asks {DEGRADED:.0%} below the shallow one, {RESNET_AHEAD:.0%} below the "
        "ResNet); the first layer's gradient norm is "
        f"{first['resnet']:.3g} in the ResNet against {first['plainnet']:.3g} in the plain net",
        measured={
            "val_accuracy": accuracy,
            "steps": steps,
            "layers_with_weights": layers,
            "resnet_margin": margin,
            "degradation": degradation,
            "first_layer_gradient": first,
            "first_layer_gradient_ratio": round(gradient_ratio, 2),
        },  # fmt: skip
        series={
            "gradient norm per layer (input side first)": {
                label: list(layer_norms.values()) for label, layer_norms in norms.items()
            }
        },
        series_x={"gradient norm per layer (input side first)": "layer (1: nearest the input)"},
        answer="resnet" if margin > 0 else "plainnet",
    )


LESSON = register(
    Lesson(
        name="residual_learning",
        title="Residual learning",
        claim="Stacking more layers can make a plain network train worse, not better: the "
        "degradation problem (a plain net of 37 layers below one of 9, with the same budget). "
        "With the same layers, a ResNet whose blocks add their input back trains well at the "
        "depth where the plain net falls behind.",
        source="K. He, X. Zhang, S. Ren, J. Sun, Deep residual learning for image recognition "
        "(CVPR 2016), sec. 4.1 and Fig. 1",
        prediction=Prediction(
            "choice",
            "3 stages of 6 blocks, one epoch on MNIST: which reaches the higher accuracy?",
            choices=("resnet", "plainnet"),
        ),
        judge=judge_residual,
        runs=residual_runs,
        setup={"arch": "resnet", "dataset": "mnist", "arch_config": DEEP, "epochs": 1},
        position=12,
    )
)
