"""Data augmentation of image batches on tensors: random shifts, small rotations, and flips where
the dataset's pictures allow them (Simard et al. 2003 for distorted digits; Krizhevsky et al.
2012 for flipped photos).

Every sample gets its own shift and angle in one batched resampling (affine_grid + grid_sample):
torchvision's v2.RandomAffine draws one set of parameters per call, so on a batch tensor it would
move all 64 images together. Flips mirror the chosen samples' last axis, as
torchvision.transforms.v2's horizontal_flip does to a tensor, without importing torchvision here:
its import also imports torch._dynamo, and took as long as torch's own, which every page of the
app then waited for. The draws come from a generator of the augmenter's own, seeded from (seed,
step), so a run is the same run again and the task's noise (denoising, GAN latents) is not
shifted by it.
Labels are untouched: a shifted 3 is still a 3, a mirrored shoe still a shoe; digits and
characters are never mirrored (a mirrored 2 is no digit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deeparch.data.info import DataInfo
from deeparch.randomness import step_seed

# Datasets whose pictures mean the same mirrored left to right: clothes and photos of objects.
# Digits (mnist, digits, mnist_full) and characters (kmnist) are not among them.
FLIPPABLE_DATASETS = frozenset({"fashion_mnist", "cifar10"})
AUGMENT_SEED_OFFSET = 104_729  # the augmenter's draws apart from the steps' own (any offset)


@dataclass(frozen=True)
class AugmentPolicy:
    """How far an image may move: a fraction of its side, degrees, and whether to flip."""

    max_shift: float = 0.1  # 10% of the side: about 3 pixels of 28
    max_degrees: float = 10.0
    flip: bool = False


def policy_for(info: DataInfo) -> AugmentPolicy:
    """The augmentation that suits a dataset (flips only where they keep the meaning)."""
    return AugmentPolicy(flip=info.name in FLIPPABLE_DATASETS)


def augments(info: DataInfo) -> bool:
    """Whether augmentation applies to a dataset: images only."""
    return info.kind == "image"


class ImageAugmenter:
    """Moves each image of a batch at random; the batch's labels come back unchanged."""

    def __init__(self, policy: AugmentPolicy, seed: int, device: torch.device) -> None:
        self.policy = policy
        self.seed = seed
        self.generator = torch.Generator(device=device)

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> tuple:
        x, y = batch
        self.generator.manual_seed(step_seed(self.seed + AUGMENT_SEED_OFFSET, step))
        return self.transform(x), y

    def uniform(self, n: int, limit: float, like: torch.Tensor) -> torch.Tensor:
        draw = torch.rand(n, generator=self.generator, device=like.device, dtype=like.dtype)
        return (2.0 * draw - 1.0) * limit

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W): each image rotated and shifted by its own draw."""
        n, policy = x.shape[0], self.policy
        angle = self.uniform(n, math.radians(policy.max_degrees), x)
        # affine_grid works in [-1, 1] coordinates: a shift of a fraction f of the side is 2f.
        shift = self.uniform(2 * n, 2.0 * policy.max_shift, x).reshape(n, 2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)],
            dim=1,
        )  # (N, 2, 3): where each output pixel samples the input
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if policy.flip:
            flip = torch.rand(n, generator=self.generator, device=x.device) < 0.5
            moved = torch.where(flip[:, None, None, None], moved.flip(-1), moved)
        return moved
