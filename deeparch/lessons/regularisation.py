"""Lessons on regularisation: L1 against L2 on the weights (engine runs), dropout in train and
eval mode, and early stopping on a small training subset."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.diagnostics import NEAR_ZERO_WEIGHT
from deeparch.engine.handle import JobHandle
from deeparch.engine.prepare import training_subset
from deeparch.lessons.measure import accuracy, mean_loss, seeded_model
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished

# ---- 16: L1 against L2 ---------------------------------------------------------------------

# A subgradient step lands near zero, not on it: within NEAR_ZERO_WEIGHT (1e-4) counts as zero,
# the engine's weight_near_zero in every snapshot's layer statistics.
NEAR_ZERO = NEAR_ZERO_WEIGHT
L1, L2, NO_PENALTY = "L1 (l1=1e-3)", "L2 (weight_decay=1e-2)", "none"
PENALTIES = {L1: {"l1": 1e-3}, L2: {"weight_decay": 1e-2}, NO_PENALTY: {}}
PENALTY_EPOCHS = {"ci": 2, "full": 10}  # 62 steps an epoch on mnist's 4,000 training images
PENALTY_SNAPSHOT_EVERY = {"ci": 20, "full": 100}  # the histograms through training
HISTOGRAM_BINS = np.linspace(-0.3, 0.3, 61)
L1_TIMES_L2 = 5  # L1's fraction at zero at least this many times L2's


def penalty_runs(budget: str) -> dict[str, TrainConfig]:
    # SGD (momentum 0.9), not Adam: Adam divides each step by the gradient's size, so an L1
    # subgradient of any size would move a weight by about lr, hovering around zero.
    return {
        label: TrainConfig.from_dict(
            {
                "arch": "softmax_regression",
                "dataset": "mnist",
                "optimizer": "sgd",
                "lr": 0.05,
                "epochs": PENALTY_EPOCHS[budget],
                "snapshot_every": PENALTY_SNAPSHOT_EVERY[budget],
                "seed": 0,
                **penalty,
            }  # fmt: skip
        )
        for label, penalty in PENALTIES.items()
    }


def weights_of(model: nn.Module) -> np.ndarray:
    """Every weight of the model's matrices (biases left out: no penalty applies to them)."""
    return np.concatenate([p.detach().flatten().numpy() for p in model.parameters() if p.dim() > 1])


def near_zero_through_training(job: JobHandle) -> tuple[list[int], list[float]]:
    """(steps, the fraction of all weights within NEAR_ZERO of zero) at each of the run's
    snapshots, from the engine's layer statistics (each layer weighted by its size)."""
    steps, fractions = [], []
    for snapshot in job.snapshot()["snapshots"]:
        layers = snapshot.get("layers")
        if not layers:
            continue
        sizes = np.asarray(layers["weight_counts"]).sum(axis=1)  # a histogram counts every weight
        steps.append(int(snapshot["step"]))
        fractions.append(
            float((np.asarray(layers["weight_near_zero"]) * sizes).sum() / sizes.sum())
        )
    return steps, fractions


def judge_penalties(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(PENALTY_LESSON, problems)
    weights = {label: weights_of(job.model_copy()) for label, job in jobs.items()}
    near_zero = {label: float((np.abs(w) < NEAR_ZERO).mean()) for label, w in weights.items()}
    exactly_zero = {label: int((w == 0).sum()) for label, w in weights.items()}
    mean_abs = {label: float(np.abs(w).mean()) for label, w in weights.items()}
    through = {label: near_zero_through_training(job) for label, job in jobs.items()}
    steps = through[L1][0]
    fraction = {label: values for label, (_steps, values) in through.items()}
    # Under L1 the weights at zero grow in number through training and end many times as many as
    # under L2, which shrinks every weight (its mean |w| below the unpenalised run's) but leaves
    # few at zero. Measured: 31% against 0.3% at the CI budget, 35% against 2.2% at the full one.
    l1_grows = fraction[L1][-1] > fraction[L1][0]
    held = (
        l1_grows
        and near_zero[L1] > L1_TIMES_L2 * max(near_zero[L2], 0.01)
        and near_zero[L2] < 0.05
        and mean_abs[L2] < mean_abs[NO_PENALTY]
    )
    centres = (HISTOGRAM_BINS[:-1] + HISTOGRAM_BINS[1:]) / 2
    histograms = {label: np.histogram(np.clip(w, -0.3, 0.3), HISTOGRAM_BINS)[0].tolist()
                  for label, w in weights.items()}  # fmt: skip
    return Outcome(
        PENALTY_LESSON.name,
        held=held,
        verdict=f"with L1 the weights within {NEAR_ZERO:g} of zero go from "
        f"{fraction[L1][0]:.0%} at step {steps[0]} to {near_zero[L1]:.0%} at the end "
        f"({exactly_zero[L1]} exactly 0: a subgradient step hovers around zero rather than "
        f"landing on it); with L2 from {fraction[L2][0]:.0%} to {near_zero[L2]:.0%}, though its "
        f"mean |w| shrank from {mean_abs[NO_PENALTY]:.4f} (no penalty) to {mean_abs[L2]:.4f}",
        measured={
            "near_zero_fraction": near_zero,
            "near_zero_through_training": {"step": steps, **fraction},
            "exactly_zero": exactly_zero,
            "mean_abs_weight": mean_abs,
            "near_zero_threshold": NEAR_ZERO,
        },  # fmt: skip
        series={
            f"fraction of weights within {NEAR_ZERO:g} of zero, per snapshot": {
                "step": steps,
                **fraction,
            },
            "weight histogram at the end (count per bin)": {
                "weight value": centres.tolist(),
                **histograms,
            },
        },  # fmt: skip
        series_x={
            f"fraction of weights within {NEAR_ZERO:g} of zero, per snapshot": "step",
            "weight histogram at the end (count per bin)": "weight value",
        },
        answer="L1",
    )


PENALTY_LESSON = register(
    Lesson(
        name="l1_against_l2",
        title="L1 against L2",
        claim="An L1 penalty pulls every weight towards zero by the same amount each step, so "
        "weights the data does not need end at zero (a sparse model); an L2 penalty pulls in "
        "proportion to the weight, so weights only shrink.",
        source="R. Tibshirani, Regression shrinkage and selection via the lasso (JRSS B 1996); "
        "Goodfellow, Bengio, Courville, Deep Learning (2016), sec. 7.1",
        prediction=Prediction(
            "choice",
            "Which penalty leaves many weights at zero?",
            choices=("L1", "L2", "both"),
        ),  # fmt: skip
        judge=judge_penalties,
        runs=penalty_runs,
        views=("weight_histograms",),
        setup={
            "arch": "softmax_regression",
            "dataset": "mnist",
            "optimizer": "sgd",
            "lr": 0.05,
            "l1": 1e-3,
        },  # fmt: skip
        position=16,
    )
)

# ---- 17: dropout, train and eval mode ------------------------------------------------------

SUBSET = 256  # training images: few enough that a 784-512-10 MLP memorises them
DROPOUT_EPOCHS = {"ci": 40, "full": 150}  # 4 steps an epoch on 256 images
DROPOUT_RATES = {"no dropout": 0.0, "dropout 0.5": 0.5}


def dropout_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        label: TrainConfig.from_dict(
            {
                "arch": "mlp",
                "dataset": "mnist",
                "seed": 0,
                "epochs": DROPOUT_EPOCHS[budget],
                "arch_config": {"hidden_sizes": (512,), "dropout": rate},
                "train_subset": SUBSET,
            }  # fmt: skip
        )
        for label, rate in DROPOUT_RATES.items()
    }


def judge_dropout(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(DROPOUT_LESSON, problems)
    data = load_dataset("mnist")
    images = data.x_val[:8]
    model = seeded_model("mlp", {"hidden_sizes": (512,), "dropout": 0.5}, "mnist", seed=0)
    model.train()
    with torch.no_grad():
        train_difference = float((model(images) - model(images)).abs().max())
        model.eval()
        eval_difference = float((model(images) - model(images)).abs().max())
    gaps, train_acc, val_acc = {}, {}, {}
    loss = nn.functional.cross_entropy
    for label, job in jobs.items():
        # The very images the engine trained on (its stratified subset for the run's seed).
        x_small, y_small = training_subset(job.config, "mnist", data.x_train, data.y_train)
        net = job.model_copy()
        train_acc[label] = accuracy(net, x_small, y_small)
        val_acc[label] = accuracy(net, data.x_val, data.y_val)
        gaps[label] = mean_loss(net, data.x_val, data.y_val, loss) - mean_loss(
            net, x_small, y_small, loss
        )
    held = (
        train_difference > 0 and eval_difference == 0 and gaps["dropout 0.5"] < gaps["no dropout"]
    )
    return Outcome(
        DROPOUT_LESSON.name,
        held=held,
        verdict=f"in train mode two calls on the same images differ by up to "
        f"{train_difference:.3g}, in eval mode by {eval_difference:g}; on {SUBSET} training "
        f"images the gap between validation and training loss is {gaps['no dropout']:.3f} "
        f"without dropout and {gaps['dropout 0.5']:.3f} with it (validation accuracy "
        f"{val_acc['no dropout']:.1%} and {val_acc['dropout 0.5']:.1%})",
        measured={
            "train_mode_difference": train_difference,
            "eval_mode_difference": eval_difference,
            "loss_gap": gaps,
            "train_accuracy": train_acc,
            "val_accuracy": val_acc,
            "subset": SUBSET,
        },  # fmt: skip
        answer=0,
    )


DROPOUT_LESSON = register(
    Lesson(
        name="dropout_modes",
        title="Dropout and train/eval mode",
        claim="In train mode dropout zeroes a random half of the units on every call (and scales "
        "the rest by 2), so outputs vary from call to call; model.eval() switches it off and "
        "outputs are fixed. On a small training set it narrows the gap between training and "
        "validation loss.",
        source="N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, "
        "Dropout: a simple way to prevent neural networks from overfitting (JMLR 2014); "
        "PyTorch documentation, torch.nn.Dropout",
        prediction=Prediction(
            "number",
            "In eval mode, how much do two calls on the same images differ?",
            answer=0,
            tolerance=1.0,
        ),  # fmt: skip
        judge=judge_dropout,
        runs=dropout_runs,
        setup={"arch": "mlp", "dataset": "mnist", "arch_config": {"dropout": 0.5}},
        position=17,
    )
)

# ---- 19: early stopping --------------------------------------------------------------------

EARLY_SUBSET = 200
PATIENCE = 5
MAX_EPOCHS = {"ci": 40, "full": 120}


def early_runs(budget: str) -> dict[str, TrainConfig]:
    """The engine's own early stopping on its own stratified subset of 200 training images."""
    return {
        "mlp on 200 images": TrainConfig.from_dict(
            {
                "arch": "mlp",
                "dataset": "mnist",
                "seed": 0,
                "epochs": MAX_EPOCHS[budget],
                "arch_config": {"hidden_sizes": (256,), "dropout": 0.0},
                "batch_size": 50,
                "train_subset": EARLY_SUBSET,
                "early_stopping": PATIENCE,
            }  # fmt: skip
        )
    }


def judge_early_stopping(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(EARLY_LESSON, problems)
    job = jobs["mlp on 200 images"]
    data = load_dataset("mnist")
    val_losses = [float(row["val_loss"]) for row in job.snapshot()["epoch_metrics"]
                  if "val_loss" in row]  # fmt: skip
    best = min(val_losses)
    best_epoch = val_losses.index(best) + 1
    last = val_losses[-1]
    stopped = len(val_losses) if len(val_losses) < MAX_EPOCHS[budget] else None
    # The weights the run kept, measured on the whole validation split independently.
    kept = mean_loss(job.model_copy(), data.x_val, data.y_val, nn.functional.cross_entropy)
    held = stopped is not None and last > best and abs(kept - best) < 1e-4
    return Outcome(
        EARLY_LESSON.name,
        held=held,
        verdict=f"on {EARLY_SUBSET} training images the validation loss is lowest at epoch "
        f"{best_epoch} ({best:.4f}) and rises to {last:.4f}; with patience {PATIENCE} the run "
        + (f"stops at epoch {stopped}" if stopped else "never stopped")
        + f" and keeps the best weights (their validation loss, measured again: {kept:.4f})",
        measured={
            "best_epoch": best_epoch,
            "best_val_loss": best,
            "stopped_epoch": stopped,
            "last_val_loss": last,
            "kept_val_loss": kept,
            "patience": PATIENCE,
            "subset": EARLY_SUBSET,
        },  # fmt: skip
        series={"validation loss per epoch": {"val_loss": val_losses}},
        series_x={"validation loss per epoch": "epoch"},
        answer=best_epoch,
    )


EARLY_LESSON = register(
    Lesson(
        name="early_stopping",
        title="Early stopping",
        claim="On a small training set the validation loss falls, then turns up as the network "
        "starts to memorise; early stopping watches it, stops once it has not improved for "
        "`patience` epochs, and keeps the weights of the best epoch.",
        source="L. Prechelt, Early stopping - but when? (Neural Networks: Tricks of the Trade, "
        "1998); Goodfellow, Bengio, Courville, Deep Learning (2016), sec. 7.8",
        prediction=Prediction(
            "number", "At about which epoch is the validation loss lowest?", tolerance=0.5
        ),
        judge=judge_early_stopping,
        runs=early_runs,
        setup={
            "arch": "mlp",
            "dataset": "mnist",
            "epochs": 40,
            "train_subset": EARLY_SUBSET,
            "early_stopping": PATIENCE,
        },  # fmt: skip
        position=19,
    )
)
