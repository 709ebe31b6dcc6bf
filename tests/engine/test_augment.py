"""The augmenter's flip is torchvision's horizontal_flip, done without importing torchvision."""

import torch
from torchvision.transforms.v2 import functional as TF

from deeparch.engine.augment import AugmentPolicy, ImageAugmenter


def test_the_flip_is_torchvisions_horizontal_flip_of_the_chosen_samples():
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    flipping = ImageAugmenter(AugmentPolicy(0.0, 0.0, True), 0, torch.device("cpu"))
    out = flipping.transform(x)
    mirrored = TF.horizontal_flip(x)
    flipped = [torch.allclose(o, m, atol=1e-6) for o, m in zip(out, mirrored, strict=True)]
    kept = [torch.allclose(o, i, atol=1e-6) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < len(x)  # some samples mirrored, some not (32 draws of p = 0.5)
