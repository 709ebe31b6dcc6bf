"""Walk latent spaces: VAE decodes (grid, point, interpolation, PCA of means) and GAN samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeparch.errors import ConfigError
from deeparch.explore.payload import to_uint8
from deeparch.figures.explore import CLASS_COLOURS
from deeparch.tasks import evaluation_mode

MAX_GRID_SIDE = 40  # 1,600 decodes: beyond that the picture is too fine to read anyway
DEFAULT_GRID_RANGE = (-1.5, 1.5)  # where the prior N(0, 1) puts 87% of each coordinate
GRID_MIN_SPAN = 1.0  # a narrower grid shows the same digit 400 times
GRID_BOUND = 6.0  # the grid's range control runs over [-GRID_BOUND, GRID_BOUND]


def latent_grid_points(
    low: float = -1.5,
    high: float = 1.5,
    side: int = 20,
    z2_range: tuple[float, float] | None = None,
    max_side: int = MAX_GRID_SIDE,
) -> np.ndarray:
    """The (side*side, 2) latent points of a grid, row-major with z2 decreasing down the rows.

    z1 runs over [low, high]; z2 over z2_range, or the same [low, high] without one. Row r,
    column c holds (z1 = x_c, z2 = y_{side-1-r}) so the picture reads like a plot: z1 grows to
    the right and z2 grows upwards.
    """
    if not 2 <= side <= max_side:
        raise ConfigError("grid_side", side, f"an integer from 2 to {max_side}")
    z2_low, z2_high = (low, high) if z2_range is None else z2_range
    for name, (start, stop) in (("z1 range", (low, high)), ("z2 range", (z2_low, z2_high))):
        if not stop > start:
            raise ConfigError(name, (start, stop), "a range whose high end exceeds its low end")
    xs = np.linspace(low, high, side, dtype=np.float32)
    ys = np.linspace(z2_low, z2_high, side, dtype=np.float32)[::-1]
    z1, z2 = np.meshgrid(xs, ys)  # (side, side) each
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def grid_range(
    means: np.ndarray,
    percentiles: tuple[float, float] = (2.0, 98.0),
    widen: float = 0.1,
    min_span: float = GRID_MIN_SPAN,
    bound: float = GRID_BOUND,
    step: float = 0.1,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The z1 and z2 ranges of a latent grid that cover where a 2-D VAE puts its data.

    Per axis: the given percentiles of the validation means (outliers left out), widened by
    `widen` of that span on each side, at least `min_span` wide around its centre, rounded
    outwards to `step` (the range slider's step) and kept inside [-bound, bound]. The fixed
    -1.5..1.5 it replaces decoded noise where no data lies and one blob where all of it did.
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != 2:
        raise ConfigError("means", tuple(means.shape), "(N, 2) means of a 2-D latent")
    ranges = []
    for axis in range(2):
        values = means[np.isfinite(means[:, axis]), axis]
        if len(values) == 0:
            ranges.append(DEFAULT_GRID_RANGE)
            continue
        low, high = np.percentile(values, percentiles)
        margin = widen * (high - low)
        low, high = low - margin, high + margin
        if high - low < min_span:
            centre = (low + high) / 2
            low, high = centre - min_span / 2, centre + min_span / 2
        low = np.floor(round(low / step, 6)) * step
        high = np.ceil(round(high / step, 6)) * step
        span = min(high - low, 2 * bound)
        # Shifted, not cut, where it sticks out of the control, so it keeps its width.
        low = min(max(low, -bound), bound - span)
        ranges.append((round(float(low), 6), round(float(low + span), 6)))
    return ranges[0], ranges[1]


def decode(model: nn.Module, z: np.ndarray | torch.Tensor) -> np.ndarray:
    """Decode latent vectors (N, latent_dim) or one (latent_dim,) to images (N, C, H, W), [0, 1]."""
    z_tensor = torch.as_tensor(np.asarray(z, dtype=np.float32))
    if z_tensor.dim() == 1:
        z_tensor = z_tensor.unsqueeze(0)
    latent_dim = int(getattr(model, "latent_dim", z_tensor.shape[1]))
    if z_tensor.shape[1] != latent_dim:
        raise ConfigError("z", tuple(z_tensor.shape), f"vectors of {latent_dim} latent values")
    with evaluation_mode(model):
        return model.decode(z_tensor).cpu().float().numpy()


def decode_grid(
    model: nn.Module,
    low: float = -1.5,
    high: float = 1.5,
    side: int = 20,
    z2_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Decode a side x side grid of a 2-D latent, z1 over [low, high], z2 over z2_range (or the
    same): (side, side, C, H, W), laid out as latent_grid_points."""
    if int(getattr(model, "latent_dim", 2)) != 2:
        raise ConfigError("latent_dim", model.latent_dim, "2 for a latent grid", "use the sliders")
    images = decode(model, latent_grid_points(low, high, side, z2_range))  # (side*side, C, H, W)
    return images.reshape(side, side, *images.shape[1:])


def slider_start(means: np.ndarray, step: float = 0.05) -> np.ndarray:
    """Where the z sliders start: each dimension's median validation mean, on the slider's step.

    z = 0 can lie outside every mean (a VAE whose means sit at z2 = 1..4 decodes noise there).
    """
    return np.round(np.median(np.asarray(means), axis=0) / step) * step


def encode_means(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Latent means mu (N, latent_dim) of a VAE for a batch of images, computed in chunks."""
    chunks = []
    with evaluation_mode(model):
        for start in range(0, len(images), batch_size):
            mu, _logvar = model.encode(images[start : start + batch_size])
            chunks.append(mu.cpu().float().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, getattr(model, "latent_dim", 2)))


def interpolate_latents(z_from: np.ndarray, z_to: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Points (1 - lambda) * z_from + lambda * z_to for each lambda: (len(lambdas), latent_dim)."""
    lambdas = np.asarray(lambdas, dtype=np.float32)[:, None]
    return (1.0 - lambdas) * np.asarray(z_from, np.float32)[None] + lambdas * np.asarray(
        z_to, np.float32
    )[None]


def interpolate_images(
    model: nn.Module, image_from: torch.Tensor, image_to: torch.Tensor, steps: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the straight line between two images' latent means.

    Returns (lambdas (steps,), images (steps, C, H, W)); lambda 0 is image_from, 1 is image_to.
    """
    if not 2 <= steps <= 50:
        raise ConfigError("steps", steps, "an integer from 2 to 50")
    means = encode_means(model, torch.stack([image_from, image_to]))  # (2, latent_dim)
    lambdas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    return lambdas, decode(model, interpolate_latents(means[0], means[1], lambdas))


def latent_space_heading(latent_dim: int) -> str:
    """ "The 2-D latent space" (the one a grid can show), else "A 4-D ..." / "An 8-D ..."."""
    if latent_dim == 2:
        return "The 2-D latent space"
    digits = str(int(latent_dim))
    # Spoken, a number starts with a vowel when it starts with 8 (eight, eighty, eight hundred)
    # or its leading group of thousands is 11 or 18 (eleven, eighteen thousand).
    leading = digits[: len(digits) % 3 or 3]
    article = "An" if digits.startswith("8") or leading in ("11", "18") else "A"
    return f"{article} {digits}-D latent space"


@dataclass
class MeanProjection:
    """A 2-D view of latent means: PCA axes for a latent of more than two dimensions."""

    points: np.ndarray  # (N, 2) the projected means
    explained: np.ndarray  # (2,) fraction of the means' variance along each axis
    center: np.ndarray  # (latent_dim,)
    axes: np.ndarray  # (2, latent_dim) orthonormal rows; the identity for a 2-D latent

    def project(self, z: np.ndarray) -> np.ndarray:
        """Where latent vectors (N, latent_dim) or one (latent_dim,) fall in this view."""
        z = np.asarray(z, dtype=np.float64)
        return (z @ self.axes.T).astype(np.float32)  # (N, latent_dim) -> (N, 2)


def project_means(means: np.ndarray) -> MeanProjection:
    """PCA of latent means onto their two main axes (a 2-D latent is shown as it is).

    Coordinates are z's components along the axes (not centred), so a 2-D latent shows z itself.
    """
    means = np.asarray(means, dtype=np.float64)
    latent_dim = means.shape[1]
    center = means.mean(axis=0)
    centred = means - center
    if latent_dim <= 2:
        axes = np.eye(2, latent_dim)
        variance = centred.var(axis=0)
        explained = variance / max(float(variance.sum()), 1e-12)
    else:
        # The right singular vectors of the centred means are the principal axes.
        _u, singular, vt = np.linalg.svd(centred, full_matrices=False)
        axes = vt[:2]
        explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
    projection = MeanProjection(np.zeros((0, 2)), explained.astype(np.float32), center, axes)
    projection.points = projection.project(means)
    return projection


def fixed_noise(model: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """n noise vectors for a GAN's generator, the same for the same seed."""
    generator = torch.Generator().manual_seed(int(seed))
    return model.sample_noise(n, generator=generator)


def generate(
    model: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None = None
) -> np.ndarray:
    """Generator images (N, C, H, W) mapped from [-1, 1] to [0, 1] for display."""
    with evaluation_mode(model):
        if getattr(model, "conditional", False):
            if labels is None:
                raise ConfigError("class", None, "a class for a conditional GAN")
            fake = model.generator(noise, labels)
        else:
            fake = model.generator(noise)
    return ((fake.cpu().float().numpy() + 1.0) / 2.0).clip(0.0, 1.0)


def samples_of_class(model: nn.Module, class_index: int, n: int = 16, seed: int = 0) -> np.ndarray:
    """n samples of one class from a conditional GAN (fixed noise, so only the class changes)."""
    num_classes = int(getattr(model, "num_classes", 0))
    if not getattr(model, "conditional", False):
        raise ConfigError("class", class_index, "only for a conditional GAN (conditional=True)")
    if not 0 <= class_index < num_classes:
        raise ConfigError("class", class_index, f"a class from 0 to {num_classes - 1}")
    labels = torch.full((n,), int(class_index), dtype=torch.long)
    return generate(model, fixed_noise(model, n, seed), labels)


def interpolate_noise(
    model: nn.Module,
    seed_from: int,
    seed_to: int,
    steps: int = 10,
    class_index: int | None = None,
) -> np.ndarray:
    """Generator images along the line between two seeds' noise vectors: (steps, C, H, W)."""
    if not 2 <= steps <= 50:
        raise ConfigError("steps", steps, "an integer from 2 to 50")
    return noise_line(model, seed_from, seed_to, steps, class_index)


def noise_line(
    model: nn.Module, seed_from: int, seed_to: int, steps: int, class_index: int | None = None
) -> np.ndarray:
    """interpolate_noise without its bound on steps (the browser's walk takes WALK_FRAMES)."""
    z_from, z_to = fixed_noise(model, 1, seed_from), fixed_noise(model, 1, seed_to)
    lambdas = torch.linspace(0.0, 1.0, steps).view(-1, *([1] * (z_from.dim() - 1)))
    noise = (1 - lambdas) * z_from + lambdas * z_to  # (steps, *noise_shape)
    labels = None
    if getattr(model, "conditional", False):
        labels = torch.full((steps,), int(class_index or 0), dtype=torch.long)
    return generate(model, noise, labels)


# ---------------------------------------------------------------- payloads for the browser

EXPLORER_SIDE = 64  # decodes per axis of the explorer's grid: 4,096 images, 3.2 MB for MNIST
# A decoder of at most this many weights goes to the browser itself (4 MB of float32), which then
# decodes any z exactly; one decode is that many multiply-adds, well under a millisecond there.
MAX_MLP_PARAMETERS = 1_000_000
MLP_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
SCRUB_FRAMES = 101  # decodes along an interpolation: lambda in steps of 0.01
WALK_FRAMES = 65  # generator images along a noise walk, per class
Z_BOUND = 4.0  # the z sliders run over [-Z_BOUND, Z_BOUND]: all but 0.006% of the N(0, 1) prior


def explorer_step(snapshot: dict, active: bool) -> int:
    """The step whose weights the browser explorers use: the newest snapshot while training.

    A running job's step changes every second; its snapshots come every snapshot_every steps,
    so the megabytes of a decode grid are computed and sent once per snapshot, not per second.
    A job that no longer trains keeps its step.
    """
    if not active:
        return int(snapshot.get("step", 0))
    steps = [int(s["step"]) for s in snapshot.get("snapshots") or []]
    return max(steps, default=0)


def mlp_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """A VAE decoder as (weight (out, in), bias (out,), activation) layers the browser can run.

    Only a Sequential of Linear layers, each followed by at most one ReLU, Sigmoid or Tanh, and a
    final Unflatten, with at most MAX_MLP_PARAMETERS numbers; None for anything else (convolution).
    """
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, nn.Sequential):
        return None
    layers: list[list] = []
    modules = list(decoder)
    for position, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().float().numpy()
            bias = module.bias.detach().cpu().float().numpy() if module.bias is not None else None
            layers.append(
                [
                    weight,
                    np.zeros(weight.shape[0], np.float32) if bias is None else bias,
                    "identity",
                ]
            )
        elif type(module) in MLP_ACTIVATIONS and layers and layers[-1][2] == "identity":
            layers[-1][2] = MLP_ACTIVATIONS[type(module)]
        elif isinstance(module, nn.Unflatten) and position == len(modules) - 1:
            continue
        else:
            return None
    if not layers or sum(w.size + b.size for w, b, _ in layers) > MAX_MLP_PARAMETERS:
        return None
    return [(w, b, act) for w, b, act in layers]


def _class_colours(count: int) -> list[str]:
    return [CLASS_COLOURS[index % len(CLASS_COLOURS)] for index in range(count)]


def explorer_payload(
    model: nn.Module,
    means: np.ndarray,
    labels: np.ndarray,
    class_names: tuple | list,
    image_shape: tuple[int, ...],
    job: str,
    step: int,
    side: int = EXPLORER_SIDE,
) -> tuple[dict, dict[str, np.ndarray]] | None:
    """Everything the latent explorer needs to answer every move in the browser, or None.

    mode "mlp": the decoder's weights (any latent size); mode "grid": a side x side grid of decodes
    (uint8) over where the validation means lie (latent.grid_range), for a 2-D latent whose decoder
    is not a small MLP. None for a larger latent with such a decoder (the page's sliders remain).
    The scatter shows the means (PCA axes above two dimensions, as project_means); `job` and
    `step` (of the weights) name the payload, so a browser can tell one from the next.
    """
    means = np.asarray(means, dtype=np.float32)
    latent_dim = int(means.shape[1])
    layers = mlp_layers(model)
    if layers is None and latent_dim != 2:
        return None
    projection = project_means(means)
    view = grid_range(projection.points, bound=GRID_BOUND)
    header: dict = {
        "kind": "latent",
        "name": f"{job}@{step}",
        "step": int(step),
        "latent_dim": latent_dim,
        "image": [int(n) for n in image_shape],
        "view": [list(view[0]), list(view[1])],
        "axis_titles": ["z1", "z2"]
        if latent_dim == 2
        else [f"PC{i + 1} ({share:.0%})" for i, share in enumerate(projection.explained)],
        "class_names": [str(n) for n in class_names],
        "colours": _class_colours(max(len(class_names), int(labels.max(initial=0)) + 1)),
        "z_bound": Z_BOUND,
        "start": [float(v) for v in slider_start(means)],
    }
    arrays = {
        "points": projection.points.astype(np.float32),
        "labels": np.asarray(labels, dtype=np.int32),
        "means": means,
        "axes": projection.axes.astype(np.float32),
    }
    if layers is not None:
        header["mode"] = "mlp"
        header["layers"] = [
            {"in": int(w.shape[1]), "out": int(w.shape[0]), "activation": act}
            for w, _, act in layers
        ]
        arrays["weights"] = np.concatenate([np.concatenate([w.ravel(), b]) for w, b, _ in layers])
    else:
        header["mode"] = "grid"
        header["grid"] = {"side": side, "z1": list(view[0]), "z2": list(view[1])}
        images = decode(model, latent_grid_points(*view[0], side, view[1], max_side=side))
        arrays["grid"] = to_uint8(images)  # (side*side, H, W, C), rows of z2 from the top
    return header, arrays


def interpolation_payload(
    model: nn.Module, image_from: torch.Tensor, image_to: torch.Tensor, job: str, step: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """The interpolation strip for the browser: SCRUB_FRAMES decodes between the two means.

    The browser draws the strip's thumbnails from them (lambda to 0.01) with the two images at
    its ends, and the decode at any lambda the student points at.
    """
    means = encode_means(model, torch.stack([image_from, image_to]))  # (2, latent_dim)
    lambdas = np.linspace(0.0, 1.0, SCRUB_FRAMES, dtype=np.float32)
    frames = decode(model, interpolate_latents(means[0], means[1], lambdas))
    ends = torch.stack([image_from, image_to]).cpu().float().numpy()
    header = {
        "kind": "scrubber", "name": f"{job}@{step}", "step": int(step), "sets": [],
        "lambdas": [round(float(v), 4) for v in lambdas],
        "title": "decode((1 - lambda) mu_from + lambda mu_to)",
    }  # fmt: skip
    arrays = {"frames": to_uint8(frames)[None], "ends": to_uint8(ends)}
    return header, arrays


def gan_payload(
    model: nn.Module,
    class_names: list,
    seed: int,
    seed_from: int,
    seed_to: int,
    job: str,
    step: int,
    samples: int = 16,
) -> tuple[dict, dict[str, np.ndarray]]:
    """The GAN studio's class samples and noise walk, for every class at once (a cGAN).

    frames (classes, WALK_FRAMES, H, W, C): the generator along the line between two seeds' noise,
    one row per class; samples (classes, samples, H, W, C): fixed noise of `seed`, per class. An
    unconditional GAN has one "class" and no samples.
    """
    conditional = bool(getattr(model, "conditional", False))
    classes = int(getattr(model, "num_classes", 0)) if conditional else 1
    names = [str(n) for n in class_names][:classes] if conditional else []
    if conditional and len(names) < classes:
        names += [str(i) for i in range(len(names), classes)]
    walks = [noise_line(model, seed_from, seed_to, WALK_FRAMES, c) for c in range(classes)]
    arrays = {"frames": np.stack([to_uint8(w) for w in walks])}
    if conditional:
        arrays["samples"] = np.stack(
            [to_uint8(samples_of_class(model, c, samples, seed)) for c in range(classes)]
        )
    header = {
        "kind": "scrubber", "name": f"{job}@{step}", "step": int(step), "sets": names,
        "lambdas": [round(float(v), 4) for v in np.linspace(0.0, 1.0, WALK_FRAMES)],
        "title": f"G((1 - lambda) z_a + lambda z_b) (weights of step {step})",
        "samples_title": f"{samples} samples of class {{set}} (weights of step {step})",
    }  # fmt: skip
    return header, arrays
