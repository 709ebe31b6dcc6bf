"""Lessons on generative models, each trained by the engine: the VAE's two losses under beta,
latent interpolation and the 2-D grid, and how fleeting a GAN's equilibrium is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.explore.latent import decode_grid, encode_means, grid_range, interpolate_images
from deeparch.explore.views import smooth
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished
from deeparch.tasks import evaluation_mode
from deeparch.tasks.vae import bernoulli_reconstruction, kl_divergence

VAE_SOURCE = (
    "D. P. Kingma and M. Welling, Auto-encoding variational Bayes (ICLR 2014); I. Higgins et "
    "al., beta-VAE: learning basic visual concepts with a constrained variational framework "
    "(ICLR 2017)"
)
VAE_STEPS = {"ci": 60, "full": 0}
VAE_EPOCHS = {"ci": 1, "full": 10}
GRID_SIDE = 12


def vae_config(beta: float, budget: str) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "arch": "vae",
            "dataset": "mnist",
            "arch_config": {"latent_dim": 2, "beta": beta},
            "epochs": VAE_EPOCHS[budget],
            "max_steps": VAE_STEPS[budget],
            "seed": 0,
        }  # fmt: skip
    )


def latent_grid(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """The decoded grid over where the validation means lie: (side * side, C, H, W)."""
    z1, z2 = grid_range(encode_means(model, images))
    grid = decode_grid(model, z1[0], z1[1], GRID_SIDE, z2)
    return grid.reshape(GRID_SIDE * GRID_SIDE, *grid.shape[2:])


# ---- 20: the two losses under beta ------------------------------------------------------------


def vae_terms(model: torch.nn.Module, images: torch.Tensor) -> tuple[float, float]:
    """(KL, reconstruction) per image of the validation images, the KL unweighted by beta (the
    engine logs beta * KL, which is 0 at beta 0 whatever the code)."""
    with evaluation_mode(model):
        recon, mu, logvar = model(images)
        return float(kl_divergence(mu, logvar)), float(bernoulli_reconstruction(recon, images))


BETAS = (0.0, 1.0, 4.0)


def beta_runs(budget: str) -> dict[str, TrainConfig]:
    return {f"beta {beta:g}": vae_config(beta, budget) for beta in BETAS}


def judge_beta(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(BETA_LESSON, problems)
    images = load_dataset("mnist").x_val[:500]
    kl, recon = {}, {}
    for label, job in jobs.items():
        kl[label], recon[label] = vae_terms(job.model_copy(), images)
    labels = list(jobs)
    kl_falls = all(kl[a] > kl[b] for a, b in zip(labels, labels[1:]))
    # The trade-off is judged at its ends: the largest beta reconstructs worse than the smaller
    # ones. Between beta 0 and 1 the order can go either way (at the full budget, 10 epochs,
    # beta 1 came out at 163.6 against beta 0's 164.8): an unregularised 2-D code trains no better.
    recon_rises = all(recon[labels[-1]] > recon[label] for label in labels[:-1])
    best = min(labels, key=recon.__getitem__)
    grids = {f"latent grid, {label}": latent_grid(job.model_copy(), images)
             for label, job in jobs.items()}  # fmt: skip
    listed = "; ".join(f"{label}: KL {kl[label]:.2f}, reconstruction {recon[label]:.1f}"
                       for label in labels)  # fmt: skip
    return Outcome(
        BETA_LESSON.name,
        held=kl_falls and recon_rises,
        verdict=f"validation losses per image ({listed}): a larger beta buys a code closer to "
        f"the prior; the best reconstructions here at {best}, the worst at {labels[-1]}",
        measured={"val_kl": kl, "val_reconstruction": recon},
        images=grids,
        answer=best,
    )


BETA_LESSON = register(
    Lesson(
        name="vae_beta",
        title="The VAE's two losses",
        claim="A VAE's loss is a reconstruction term plus beta times the KL divergence of the "
        "code from N(0, I). Beta 0 is a plain autoencoder with noise: the best reconstructions, "
        "a code far from the prior. Raising beta to 1 and 4 lowers the KL, and the largest beta "
        "reconstructs the worst (between beta 0 and 1 a short run may order them either way).",
        source=VAE_SOURCE,
        prediction=Prediction(
            "choice",
            "Which beta gives the lowest reconstruction error?",
            choices=tuple(f"beta {beta:g}" for beta in BETAS),
        ),  # fmt: skip
        judge=judge_beta,
        runs=beta_runs,
        setup={"arch": "vae", "dataset": "mnist", "arch_config": {"latent_dim": 2, "beta": 4.0}},
        position=20,
    )
)

# ---- 21: interpolation and the 2-D grid ------------------------------------------------------

FRAMES = 9


def interpolation_runs(budget: str) -> dict[str, TrainConfig]:
    return {"vae": vae_config(1.0, budget)}


def judge_interpolation(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(INTERPOLATION_LESSON, problems)
    data = load_dataset("mnist")
    model = jobs["vae"].model_copy()
    first = {int(label): index for index, label in reversed(list(enumerate(data.y_val.tolist())))}
    image_from, image_to = data.x_val[first[0]], data.x_val[first[1]]
    _lambdas, frames = interpolate_images(model, image_from, image_to, FRAMES)
    flat = frames.reshape(FRAMES, -1)
    steps = np.sqrt(((flat[1:] - flat[:-1]) ** 2).sum(axis=1))  # distance between neighbours
    ends = float(np.sqrt(((flat[-1] - flat[0]) ** 2).sum()))
    originals = torch.stack([image_from, image_to]).reshape(2, -1).numpy()
    # Each end frame decodes nearer its own digit than the other one.
    own = [float(np.sqrt(((flat[i] - originals[j]) ** 2).sum())) for i, j in ((0, 0), (-1, 1))]
    other = [float(np.sqrt(((flat[i] - originals[j]) ** 2).sum())) for i, j in ((0, 1), (-1, 0))]
    largest_step = float(steps.max())
    held = largest_step < 0.5 * ends and all(a < b for a, b in zip(own, other))
    return Outcome(
        INTERPOLATION_LESSON.name,
        held=held,
        verdict=f"the {FRAMES} decodes from a 0 to a 1 change gradually: the largest step between "
        f"neighbours is {largest_step:.2f}, against {ends:.2f} between the ends, and each end "
        f"decodes nearer its own digit ({own[0]:.2f} < {other[0]:.2f}, {own[1]:.2f} < "
        f"{other[1]:.2f})",
        measured={
            "step_distances": [round(float(s), 3) for s in steps],
            "end_distance": ends,
            "own_distance": own,
            "other_distance": other,
        },  # fmt: skip
        images={
            "interpolation from 0 to 1": frames,
            "latent grid": latent_grid(model, data.x_val[:500]),
        },  # fmt: skip
        answer="gradually",
    )


INTERPOLATION_LESSON = register(
    Lesson(
        name="latent_interpolation",
        title="Latent interpolation and the 2-D grid",
        claim="Because the KL term packs the codes around the prior, the straight line between "
        "two digits' codes decodes to a gradual morph, and a grid over a 2-D latent shows every "
        "digit in a region of its own with smooth borders.",
        source=VAE_SOURCE + "; Kingma & Welling 2014, Fig. 4 (the learned MNIST manifold)",
        prediction=Prediction(
            "choice",
            "Decoding the line from a 0's code to a 1's, the images change...",
            choices=("gradually", "in one jump halfway", "into noise halfway"),
            answer="gradually",
        ),  # fmt: skip
        judge=judge_interpolation,
        runs=interpolation_runs,
        setup={"arch": "vae", "dataset": "mnist", "arch_config": {"latent_dim": 2}},
        position=21,
    )
)

# ---- 22: a GAN's fleeting equilibrium --------------------------------------------------------

# A small fully connected GAN (Goodfellow et al. 2014's setup) on a small set of the 8x8 digits,
# so the whole game plays out in seconds: the discriminator's early lead, the generator catching
# up until D says about 0.5 to both, then the discriminator memorising the few real images it
# sees over and over, so D(x) rises and D(G(z)) falls again (the overfitting discriminator of
# Karras et al. 2020, Fig. 1). On all 1,797 digits or on MNIST the drift takes far longer.
GAN_SIZES = {"hidden_sizes": (64, 256), "latent_dim": 16, "dropout": 0.0}
GAN_BUDGETS = {
    "ci": {"train_subset": 96, "max_steps": 1000},
    "full": {"train_subset": 96, "max_steps": 1200},  # 200 epochs: the class's epoch cap
}
GAN_BATCH = 16
SMOOTHING = 25  # steps in the moving average of D(x) and D(G(z)): one step's batch is noisy
# The check's margin is the run's own noise, not a distance tuned on one machine (a GAN's path
# changes with the float rounding of another thread count): the standard error of the smoothed
# curves (the spread of single steps about the moving average, over sqrt(SMOOTHING)), times
# NOISE_MARGIN. A move of the smoothed curves larger than that is the game's, not the batches'.
NOISE_MARGIN = 4.0


def gan_runs(budget: str) -> dict[str, TrainConfig]:
    settings = GAN_BUDGETS[budget]
    return {
        "gan": TrainConfig.from_dict(
            {
                "arch": "mlp_gan",
                "dataset": "digits",
                "arch_config": GAN_SIZES,
                "train_subset": settings["train_subset"],
                "batch_size": GAN_BATCH,
                "epochs": 200,
                "max_steps": settings["max_steps"],
                "lr": 2e-3,
                "seed": 0,
                "snapshot_every": settings["max_steps"] // 8,
            }
        )  # fmt: skip
    }


def first_index(condition: np.ndarray, start: int | None) -> int | None:
    """The first index from `start` on where `condition` holds; None when none (or no start)."""
    if start is None:
        return None
    found = np.nonzero(condition[start:])[0]
    return start + int(found[0]) if len(found) else None


def smoothed_noise(raw: np.ndarray, smoothed: np.ndarray) -> float:
    """The standard error of a moving average of SMOOTHING steps: how far it wanders by chance."""
    return float(np.std(raw[SMOOTHING:] - smoothed[SMOOTHING:]) / np.sqrt(SMOOTHING))


def equilibrium_phases(d_x: np.ndarray, d_g_z: np.ndarray, margin: float) -> dict[str, Any]:
    """The game's phases in the smoothed outputs' distance from 0.5 (the larger of the two):
    the discriminator's lead (the first step a margin away, an untrained one saying 0.5 to
    all), the closest approach after it, the largest distance between them, and the end."""
    distance = np.maximum(np.abs(d_x - 0.5), np.abs(d_g_z - 0.5))
    apart = first_index(distance > margin, SMOOTHING)
    if apart is None:
        return {"distance": distance, "apart": None}
    closest = apart + int(np.argmin(distance[apart:]))
    lead = apart + int(np.argmax(distance[apart : closest + 1]))
    return {"distance": distance, "apart": apart, "lead": lead, "closest": closest,
            "end": len(distance) - 1}  # fmt: skip


def judge_gan(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(GAN_LESSON, problems)
    snapshot = jobs["gan"].snapshot()
    raw = {term: np.array([v for _s, v in snapshot["losses"][term]]) for term in ("d_x", "d_g_z")}
    steps = [int(step) for step, _v in snapshot["losses"]["d_x"]]
    d_x, d_g_z = smooth(raw["d_x"], SMOOTHING), smooth(raw["d_g_z"], SMOOTHING)
    noise = max(smoothed_noise(raw["d_x"], d_x), smoothed_noise(raw["d_g_z"], d_g_z))
    margin = NOISE_MARGIN * noise
    phases = equilibrium_phases(d_x, d_g_z, margin)
    distance = phases["distance"]

    def outputs(i: int) -> str:
        return f"step {steps[i]}: D(x) {d_x[i]:.2f}, D(G(z)) {d_g_z[i]:.2f}"

    measured: dict[str, Any] = {"steps": len(d_x), "noise": noise, "margin": margin,
                                "real_images": GAN_BUDGETS[budget]["train_subset"]}  # fmt: skip
    noise_said = (
        f"D(x) and D(G(z)), averaged over {SMOOTHING} steps, wander {noise:.3f} by chance, so a "
        f"change counts from {margin:.3f} ({NOISE_MARGIN:g} times that)"
    )
    if phases["apart"] is None:
        held = False
        verdict = f"{noise_said}; in {len(d_x)} steps neither left 0.5 by as much"
    else:
        apart, lead, closest, end = (phases[key] for key in ("apart", "lead", "closest", "end"))
        lead_d, closest_d, end_d = (float(distance[i]) for i in (lead, closest, end))
        approached = lead_d - closest_d > margin
        drifted = end_d - closest_d > margin
        held = bool(approached and drifted)
        measured.update({
            "first_apart_step": steps[apart], "lead_step": steps[lead], "lead": lead_d,
            "closest_step": steps[closest], "closest_to_half": closest_d,
            "final_distance_from_half": end_d, "final_d_x": float(d_x[end]),
            "final_d_g_z": float(d_g_z[end]),
        })  # fmt: skip
        came = "came back" if approached else "came no closer, within the margin,"
        ended = "then drifted away" if drifted else "and stayed within the margin of that"
        verdict = (
            f"{noise_said}: the discriminator led first, {lead_d:.3f} from 0.5 ({outputs(lead)}); "
            f"both {came} to {closest_d:.3f} from 0.5 ({outputs(closest)}), {ended}: "
            f"{end_d:.3f} away at the end ({outputs(end)})"
        )
    samples = {f"samples at step {s['step']}": s["grid"][:16] for s in snapshot["snapshots"]}
    return Outcome(
        GAN_LESSON.name,
        held=held,
        verdict=verdict,
        measured=measured,
        series={
            "discriminator outputs (smoothed)": {"D(x)": d_x.tolist(), "D(G(z))": d_g_z.tolist()}
        },  # fmt: skip
        series_x={"discriminator outputs (smoothed)": "step"},
        images=samples,
        answer="they drift away again",
    )


GAN_LESSON = register(
    Lesson(
        name="gan_equilibrium",
        title="GAN convergence is fleeting",
        claim="At the game's equilibrium the discriminator cannot tell real from fake and says "
        "0.5 to both. Trained by alternating gradient steps, D(x) and D(G(z)) come near 0.5 and "
        "then drift away again: the equilibrium is passed through, not settled in. Here a small "
        "GAN learns 96 of the 8x8 digits, so the drift comes within a thousand steps: the "
        "discriminator ends up memorising the few real images it sees again and again.",
        source="I. Goodfellow et al., Generative adversarial nets (NeurIPS 2014), sec. 4; I. "
        "Goodfellow, NIPS 2016 tutorial: generative adversarial networks (arXiv:1701.00160), "
        "sec. 5.1; T. Karras et al., Training generative adversarial networks with limited data "
        "(NeurIPS 2020), Fig. 1",
        prediction=Prediction(
            "choice",
            "Once D(x) and D(G(z)) reach about 0.5, they...",
            choices=("stay there", "they drift away again"),
            answer="they drift away again",
        ),  # fmt: skip
        judge=judge_gan,
        runs=gan_runs,
        setup={
            "arch": "mlp_gan",
            "dataset": "digits",
            "arch_config": GAN_SIZES,
            "train_subset": GAN_BUDGETS["full"]["train_subset"],
            "batch_size": GAN_BATCH,
            "epochs": 200,
            "lr": 2e-3,
        },  # fmt: skip
        position=22,
    )
)
