"""Lessons on autoencoders, each trained by the engine: PCA equals a linear autoencoder;
undercomplete, stacked and sparse codes; denoising against plain reconstruction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.explore.autoencoders import PCAModel
from deeparch.lessons.measure import generator
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished
from deeparch.tasks import evaluation_mode
from deeparch.tasks.reconstruct import corrupt

# Reconstruction of validation images: mean squared error per pixel.


def reconstruction_mse(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> float:
    with evaluation_mode(model):
        return float(((model(inputs) - targets) ** 2).mean())


def train_config(arch: str, dataset: str, arch_config: dict[str, Any], **train: Any) -> TrainConfig:
    return TrainConfig.from_dict({"arch": arch, "dataset": dataset, "arch_config": arch_config,
                                  "seed": 0, **train})  # fmt: skip


# ---- 13: PCA is a linear autoencoder --------------------------------------------------------

PCA_CODE_SIZE = 8
PCA_EPOCHS = {"ci": 60, "full": 200}


def pca_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        "linear autoencoder": train_config(
            "linear_autoencoder",
            "digits",
            {"code_size": PCA_CODE_SIZE, "output": "linear"},
            epochs=PCA_EPOCHS[budget],
            lr=1e-2,
            batch_size=64,
        )  # fmt: skip
    }


def principal_angles_degrees(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """The principal angles between the column spaces of a (D, k) and b (D, k), in degrees."""
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return sorted(math.degrees(math.acos(float(c))) for c in cosines)


def judge_pca(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(PCA_LESSON, problems)
    data = load_dataset("digits")
    model = jobs["linear autoencoder"].model_copy()
    shape = tuple(data.x_val.shape[1:])
    pca = PCAModel(data.x_train, PCA_CODE_SIZE)
    pca_error = float(((pca.decode(pca.encode(data.x_val), shape) - data.x_val) ** 2).mean())
    ae_error = reconstruction_mse(model, data.x_val, data.x_val)
    decoder_weight = model.decoder.fc1.weight.detach()  # (D, k): the code's directions in pixels
    angles = principal_angles_degrees(decoder_weight, pca.components.T)
    # How much of one subspace lies in the other: the mean squared cosine of the angles (1: the
    # same subspace). The last angles close slowest, where the variances of two components are
    # close: the error barely depends on them.
    overlap = sum(math.cos(math.radians(a)) ** 2 for a in angles) / len(angles)
    ratio = ae_error / pca_error
    median = angles[len(angles) // 2]
    held = ratio < 1.05 and median < 5.0
    return Outcome(
        PCA_LESSON.name,
        held=held,
        verdict=f"with a code of {PCA_CODE_SIZE} on the 8x8 digits, PCA's validation error is "
        f"{pca_error:.4f} and the linear autoencoder's {ae_error:.4f} ({ratio:.3f}x); the "
        f"principal angles between their subspaces are {angles[0]:.1f} to {angles[-1]:.1f} "
        f"degrees (median {median:.1f}; overlap {overlap:.3f} of 1): the last directions, whose "
        f"variances are close, turn into place slowest, and the error hardly depends on them",
        measured={
            "code_size": PCA_CODE_SIZE,
            "pca_val_mse": pca_error,
            "autoencoder_val_mse": ae_error,
            "error_ratio": round(ratio, 4),
            "subspace_overlap": round(overlap, 4),
            "principal_angles_degrees": [round(a, 2) for a in angles],
        },
        series={"principal angles (degrees), smallest first": {"angle": angles}},
        series_x={"principal angles (degrees), smallest first": "principal angle (1: smallest)"},
        answer=round(median, 1),
    )


PCA_LESSON = register(
    Lesson(
        name="pca_linear_autoencoder",
        title="PCA equals a linear autoencoder",
        claim="A linear autoencoder trained with squared error learns the subspace of the top "
        "principal components: at the same code size its reconstruction error equals PCA's, and "
        "the principal angles between the two subspaces are near zero (its code is a rotation "
        "of PCA's, not the components themselves).",
        source="P. Baldi and K. Hornik, Neural networks and principal component analysis "
        "(Neural Networks 1989); Goodfellow, Bengio, Courville, Deep Learning (2016), sec. 14.1",
        prediction=Prediction(
            "choice",
            "At the same code size, whose validation error is lower?",
            choices=("PCA", "the linear autoencoder", "the same within a few percent"),
            answer="the same within a few percent",
        ),
        judge=judge_pca,
        runs=pca_runs,
        setup={
            "arch": "linear_autoencoder",
            "dataset": "digits",
            "arch_config": {"code_size": PCA_CODE_SIZE, "output": "linear"},
            "lr": 0.01,
            "epochs": 150,
        },  # fmt: skip
        position=13,
    )
)

# ---- 14: undercomplete, stacked and sparse ---------------------------------------------------

ACTIVE_THRESHOLD = 1e-2  # a code unit counts as active for an image when above this
CODE_RUNS = {
    "undercomplete (784-128-64-12)": ("autoencoder", {}),
    "stacked (784-400-400-20)": ("autoencoder_deep", {}),
    "overcomplete, no penalty (128 relu codes)": (
        "autoencoder", {"hidden_sizes": (256,), "code_size": 128, "code_activation": "relu"},
    ),
    "sparse, L1 penalty (128 relu codes)": (
        "sparse_autoencoder", {"sparsity": "l1", "sparsity_weight": 1e-3},
    ),
}  # fmt: skip
CODE_STEPS = {"ci": 60, "full": 0}  # 0: all epochs
CODE_EPOCHS = {"ci": 1, "full": 5}


def code_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        label: train_config(
            arch, "mnist", overrides, epochs=CODE_EPOCHS[budget], max_steps=CODE_STEPS[budget]
        )  # fmt: skip
        for label, (arch, overrides) in CODE_RUNS.items()
    }


def active_fraction(model: Any, images: torch.Tensor) -> float:
    """The fraction of (image, code unit) pairs whose code value is above ACTIVE_THRESHOLD."""
    with evaluation_mode(model):
        return float((model.encode(images).abs() > ACTIVE_THRESHOLD).float().mean())


def judge_codes(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(CODES_LESSON, problems)
    images = load_dataset("mnist").x_val[:500]
    errors, active = {}, {}
    for label, job in jobs.items():
        model = job.model_copy()
        errors[label] = reconstruction_mse(model, images, images)
        active[label] = active_fraction(model, images)
    dense, sparse = (
        active["overcomplete, no penalty (128 relu codes)"],
        active["sparse, L1 penalty (128 relu codes)"],
    )
    held = sparse < 0.5 * dense
    listed = "; ".join(f"{label}: error {errors[label]:.4f}, {active[label]:.0%} active"
                       for label in jobs)  # fmt: skip
    return Outcome(
        CODES_LESSON.name,
        held=held,
        verdict=f"the L1 penalty leaves {sparse:.0%} of code values active against {dense:.0%} "
        f"without it ({listed})",
        measured={"val_mse": errors, "active_fraction": active, "threshold": ACTIVE_THRESHOLD},
        answer=round(sparse, 2),
    )


CODES_LESSON = register(
    Lesson(
        name="autoencoder_codes",
        title="Undercomplete, stacked and sparse autoencoders",
        claim="An undercomplete autoencoder is forced through a narrow code; a stacked one adds "
        "depth to encode and decode; a sparse one may have a wide code, but an L1 penalty on it "
        "leaves only a few units active for any one image.",
        source="Goodfellow, Bengio, Courville, Deep Learning (2016), sec. 14.1-14.2; G. Hinton "
        "and R. Salakhutdinov, Reducing the dimensionality of data with neural networks "
        "(Science 2006); A. Ng, Sparse autoencoder (CS294A lecture notes, 2011)",
        prediction=Prediction(
            "number",
            "With the L1 penalty, about what fraction of the 128 code values are active (0-1)?",
            tolerance=0.5,
        ),
        judge=judge_codes,
        runs=code_runs,
        setup={
            "arch": "sparse_autoencoder",
            "dataset": "mnist",
            "arch_config": {"sparsity": "l1"},
        },  # fmt: skip
        position=14,
    )
)

# ---- 15: denoising -------------------------------------------------------------------------

NOISE_STD = 0.5
# ci: one epoch (62 steps of 64; max_steps 80 had named more steps than the epoch holds).
DENOISE_STEPS = {"ci": 0, "full": 0}
DENOISE_EPOCHS = {"ci": 1, "full": 5}


def denoise_runs(budget: str) -> dict[str, TrainConfig]:
    shared = {"hidden_sizes": (256,), "code_size": 64, "code_activation": "identity"}
    train = {"epochs": DENOISE_EPOCHS[budget], "max_steps": DENOISE_STEPS[budget]}
    return {
        "denoising": train_config(
            "denoising_autoencoder", "mnist", {**shared, "noise_std": NOISE_STD}, **train
        ),
        "plain": train_config("autoencoder", "mnist", shared, **train),
    }


def judge_denoise(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(DENOISE_LESSON, problems)
    clean = load_dataset("mnist").x_val[:500]
    noisy = corrupt(clean, NOISE_STD, generator(3), clamp=True)
    on_noisy = {label: reconstruction_mse(job.model_copy(), noisy, clean)
                for label, job in jobs.items()}  # fmt: skip
    on_clean = {label: reconstruction_mse(job.model_copy(), clean, clean)
                for label, job in jobs.items()}  # fmt: skip
    noise_error = float(((noisy - clean) ** 2).mean())
    held = on_noisy["denoising"] < on_noisy["plain"]
    return Outcome(
        DENOISE_LESSON.name,
        held=held,
        verdict=f"on inputs with noise of std {NOISE_STD} the denoising autoencoder's error to "
        f"the clean image is {on_noisy['denoising']:.4f} and the plain one's "
        f"{on_noisy['plain']:.4f} (the noisy input itself: {noise_error:.4f}); on clean inputs "
        f"{on_clean['denoising']:.4f} and {on_clean['plain']:.4f}",
        measured={
            "noise_std": NOISE_STD,
            "noisy_input_mse": on_noisy,
            "clean_input_mse": on_clean,
            "noise_mse": noise_error,
        },  # fmt: skip
        answer="denoising" if held else "plain",
    )


DENOISE_LESSON = register(
    Lesson(
        name="denoising_autoencoder",
        title="Denoising",
        claim="Trained to rebuild the clean image from a corrupted one, a denoising autoencoder "
        "learns the structure of digits rather than a copy of its input, so on noisy inputs its "
        "output is closer to the clean image than a plain autoencoder's.",
        source="P. Vincent, H. Larochelle, Y. Bengio, P.-A. Manzagol, Extracting and composing "
        "robust features with denoising autoencoders (ICML 2008)",
        prediction=Prediction(
            "choice",
            "On noisy inputs, whose output is closer to the clean digit?",
            choices=("denoising", "plain"),
        ),
        judge=judge_denoise,
        runs=denoise_runs,
        setup={
            "arch": "denoising_autoencoder",
            "dataset": "mnist",
            "arch_config": {"noise_std": NOISE_STD},
        },  # fmt: skip
        position=15,
    )
)
