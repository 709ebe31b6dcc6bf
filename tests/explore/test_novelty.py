"""Inputs unlike the training data are flagged (random noise); real digits are not."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import get_manager
from deeparch.explore.images import class_probabilities, decode_upload, preprocess_image
from deeparch.explore.novelty import (
    REFERENCE_SAMPLES,
    input_reference,
    model_reference,
    novelty,
    pixel_statistics,
)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def as_upload(pixels: np.ndarray) -> torch.Tensor:
    """A picture as the feature-map page prepares an upload of it: (1, 28, 28)."""
    return preprocess_image(decode_upload(png(pixels)), (1, 28, 28))


def noise(kind: str, side: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    if kind == "binary":
        return ((rng.random((side, side)) < 0.5) * 255).astype(np.uint8)
    return np.clip(rng.normal(128, 50, (side, side)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained():
    config = TrainConfig(arch="cnn", dataset="mnist", max_steps=100, batch_size=64)
    job = get_manager().submit(config)
    assert job.wait(300) and job.state == "finished", job.reason
    model = job.model_copy()
    return model, model_reference(model, "mnist")


def test_pixel_statistics_match_a_direct_computation():
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 1, 1:3] = 1.0  # two bright pixels
    image[0, 0, 2, 1] = 0.5  # one grey pixel
    mean, bright, grey, variation = pixel_statistics(image)[0]
    assert mean == pytest.approx(2.5 / 16)
    assert bright == pytest.approx(2 / 16) and grey == pytest.approx(1 / 16)
    # |changes| down the columns: 1 + 1 (rows 0-1), 0.5 + 1 (rows 1-2), 0.5 (rows 2-3) over 12
    # pairs; across the rows: 1 + 1 (row 1), 0.5 + 0.5 (row 2) over 12 pairs.
    assert variation == pytest.approx(4 / 12 + 3 / 12)
    pixels = image[0, 0].numpy()
    direct = np.abs(np.diff(pixels, axis=0)).mean() + np.abs(np.diff(pixels, axis=1)).mean()
    assert variation == pytest.approx(direct)


def test_the_reference_range_holds_every_training_image_it_was_made_of():
    reference = input_reference("mnist")
    assert reference.images.shape == (REFERENCE_SAMPLES, 1, 28, 28)
    statistics = pixel_statistics(reference.images)
    assert (statistics >= reference.low).all() and (statistics <= reference.high).all()
    assert input_reference("mnist") is reference  # once per dataset


@pytest.mark.parametrize("kind", ["uniform", "binary", "gauss"])
@pytest.mark.parametrize("side", [28, 64, 300])
def test_random_noise_is_flagged_as_unlike_the_training_data(trained, kind, side):
    model, reference = trained
    rng = np.random.default_rng(side)
    for _ in range(3):
        image = as_upload(noise(kind, side, rng))
        found = novelty(reference, image, class_probabilities(model, image[None])[0])
        assert found.flagged and found.unlike_training, found


def test_uniform_noise_makes_the_model_unsure(trained):
    model, reference = trained
    image = as_upload(noise("uniform", 64, np.random.default_rng(0)))
    probabilities = class_probabilities(model, image[None])[0]
    assert probabilities.max() < reference.confidence_floor
    assert novelty(reference, image, probabilities).unsure.startswith(
        f"the model gives its answer {probabilities.max():.0%}, less than on 99% of training"
    )


def test_real_test_digits_are_not_flagged(trained):
    model, reference = trained
    data = load_dataset("mnist")
    flagged = []
    for index in range(60):  # validation digits the model never trained on, uploaded as PNG
        pixels = (data.x_val[index, 0].numpy() * 255).round().astype(np.uint8)
        image = as_upload(pixels)
        found = novelty(reference, image, class_probabilities(model, image[None])[0])
        if found.flagged:
            flagged.append(index)
    assert len(flagged) <= 1, flagged  # an odd digit may be (1 in 100 here); noise always is
    pixels = (data.x_val[0, 0].numpy() * 255).round().astype(np.uint8)
    image = as_upload(pixels)
    assert not novelty(reference, image, class_probabilities(model, image[None])[0]).flagged
