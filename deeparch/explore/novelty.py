"""Is a drawn or uploaded picture like the training data? A classifier answers every input with
some class ("8 (44%)" for random noise); this says when that answer should not be trusted.

Two scores, each compared with the range it takes on training images prepared the same way
(preprocess_image: ink stretched on black, the digit cropped and centred like MNIST):

- pixel statistics of the input itself (brightness, share of bright and of mid-grey pixels,
  total variation), which depend only on the dataset, so they are computed once per dataset;
- the model's maximum softmax probability (Hendrycks & Gimpel 2017, "A baseline for detecting
  misclassified and out-of-distribution examples"), computed once per model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from deeparch.data import load_dataset
from deeparch.errors import DeeparchError
from deeparch.explore.images import class_probabilities, preprocess_image

REFERENCE_SAMPLES = 500  # training images prepared as an upload is (about 0.8 s, once a dataset)
# The allowed range of a statistic is the training images' own, widened by this share of it on
# each side: a digit as unusual as the most unusual of 500 training digits still passes.
RANGE_MARGIN = 0.1
# The model is "unsure" below the confidence that all but this share of training images reach.
CONFIDENCE_QUANTILE = 0.01
BRIGHT, GREY = 0.5, (0.2, 0.8)  # a pixel brighter than BRIGHT is ink; one within GREY is a blur

STATISTICS = {
    "mean brightness": "the mean pixel value",
    "bright pixels": "the share of pixels brighter than 0.5",
    "grey pixels": "the share of pixels between 0.2 and 0.8",
    "total variation": "the mean change between neighbouring pixels",
}


def pixel_statistics(images: torch.Tensor) -> np.ndarray:
    """(N, len(STATISTICS)) for images (N, C, H, W) in [0, 1], channels averaged."""
    gray = images.float().mean(dim=1)  # (N, H, W)
    down = (gray[:, 1:, :] - gray[:, :-1, :]).abs().flatten(1).mean(dim=1)
    across = (gray[:, :, 1:] - gray[:, :, :-1]).abs().flatten(1).mean(dim=1)
    flat = gray.flatten(1)
    columns = [
        flat.mean(dim=1),
        (flat > BRIGHT).float().mean(dim=1),
        ((flat > GREY[0]) & (flat < GREY[1])).float().mean(dim=1),
        down + across,
    ]
    return torch.stack(columns, dim=1).cpu().numpy().astype(np.float64)


@dataclass(frozen=True)
class InputReference:
    """The training images' range of each pixel statistic, and the images themselves, prepared."""

    dataset: str
    low: np.ndarray  # (len(STATISTICS),), widened by RANGE_MARGIN
    high: np.ndarray
    images: torch.Tensor  # (REFERENCE_SAMPLES, C, H, W), for the model's confidence reference


@functools.lru_cache(maxsize=8)
def input_reference(dataset: str) -> InputReference:
    """The first REFERENCE_SAMPLES training images of an image dataset, prepared as a drawing or
    an upload is, and their statistics' range (cached: the same for every model and session)."""
    data = load_dataset(dataset)
    if data.info.kind != "image":
        raise DeeparchError(f"{dataset} holds {data.info.kind}, not images")
    prepared = []
    for image in data.x_train[:REFERENCE_SAMPLES]:
        # As an upload arrives: 8-bit pixels, (C, H, W) -> (H, W[, 3])
        pixels = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
        try:
            prepared.append(preprocess_image(picture, data.info.input_shape, invert="no"))
        except DeeparchError:  # a blank training image has no digit to fit
            continue
    images = torch.stack(prepared)
    statistics = pixel_statistics(images)
    low, high = statistics.min(axis=0), statistics.max(axis=0)
    margin = RANGE_MARGIN * (high - low)
    return InputReference(dataset, low - margin, high + margin, images)


@dataclass(frozen=True)
class ModelReference:
    """A model's confidence on the reference images: the CONFIDENCE_QUANTILE of its max softmax."""

    inputs: InputReference
    confidence_floor: float


def model_reference(model: nn.Module, dataset: str) -> ModelReference:
    """The confidence floor of one model (once per model: callers cache it by weights)."""
    inputs = input_reference(dataset)
    probabilities = class_probabilities(model, inputs.images)
    floor = float(np.quantile(probabilities.max(axis=1), CONFIDENCE_QUANTILE))
    return ModelReference(inputs, floor)


@dataclass(frozen=True)
class Novelty:
    """What is unusual about one input; empty lists when nothing is."""

    unlike_training: list[str]  # statistics outside the training images' range, in words
    unsure: str  # why the model's answer is less confident than usual, or ""

    @property
    def flagged(self) -> bool:
        return bool(self.unlike_training or self.unsure)


def novelty(reference: ModelReference, image: torch.Tensor, probabilities: np.ndarray) -> Novelty:
    """How one prepared input (C, H, W) and the model's probabilities for it compare with the
    training images."""
    values = pixel_statistics(image[None] if image.dim() == 3 else image)[0]
    unlike = []
    for (name, _), value, low, high in zip(
        STATISTICS.items(), values, reference.inputs.low, reference.inputs.high
    ):
        if not low <= value <= high:
            unlike.append(
                f"{name} {value:.3f}, where training images have {max(low, 0.0):.3f} to {high:.3f}"
            )
    confidence = float(np.max(probabilities))
    unsure = ""
    if confidence < reference.confidence_floor:
        unsure = (
            f"the model gives its answer {confidence:.0%}, less than on "
            f"{1 - CONFIDENCE_QUANTILE:.0%} of training images (at least "
            f"{reference.confidence_floor:.0%})"
        )
    return Novelty(unlike, unsure)
