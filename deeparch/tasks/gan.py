"""The GAN task: one discriminator step and one generator step per batch (Goodfellow et al. 2014).

The model offers generator(z[, labels]) -> images in [-1, 1], discriminator(x[, labels]) -> logits
(N,), latent_dim, conditional, num_classes (0 when unconditional) and sample_noise(n, generator).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import Task, evaluation_mode, to_numpy

GAN_GRID_SAMPLES = 20  # two rows of ten: one column per class for a 10-class conditional GAN


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), Goodfellow et al. 2014, eq. 1, on logits (BCEWithLogits)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z)) (Goodfellow et al. 2014, section 3)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class GanTask(Task):
    """GANs: alternate one discriminator step and one generator step per batch (DCGAN).

    Data in [0, 1] is mapped to [-1, 1], the range of the generator's tanh output.
    """

    name = "gan"
    summary_metrics = ("val_d_x", "val_d_g_z", "val_d_loss", "val_g_loss")
    # Neither player's loss ranks a GAN's samples (Goodfellow 2016, NIPS tutorial section 3): no
    # epoch is "best" by them.
    best_by = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fixed = torch.Generator().manual_seed(int(self.config.seed))
        self.fixed_z = self.model.sample_noise(GAN_GRID_SAMPLES, generator=fixed).to(self.device)
        classes = max(1, int(self.model.num_classes))
        self.fixed_labels = (torch.arange(GAN_GRID_SAMPLES) % classes).to(self.device)

    def param_groups(self) -> dict[str, list[dict[str, Any]]]:
        generator = {"params": list(self.model.generator.parameters())}
        discriminator = {"params": list(self.model.discriminator.parameters())}
        if self.config.optimizer in ("adam", "adamw"):
            # beta1 = 0.5 steadies the adversarial game (Radford et al. 2016, DCGAN, section 4).
            generator["betas"] = discriminator["betas"] = (0.5, 0.999)
        return {"generator": [generator], "discriminator": [discriminator]}

    def _labels(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (y,) if self.model.conditional else ()

    def _fake(self, n: int, y: torch.Tensor) -> torch.Tensor:
        z = self.model.sample_noise(n, generator=self.noise).to(self.device)
        return self.model.generator(z, *self._labels(y))

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        real = x * 2 - 1
        fake = self._fake(len(x), y)
        real_logits = self.model.discriminator(real, *self._labels(y))
        fake_logits = self.model.discriminator(fake, *self._labels(y))
        d_loss = discriminator_loss(real_logits, fake_logits)
        g_loss = generator_loss(fake_logits)
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_x": torch.sigmoid(real_logits).mean(),
            "d_g_z": torch.sigmoid(fake_logits).mean(),
        }

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        labels = self._labels(y)
        real = x * 2 - 1  # [0, 1] -> [-1, 1]
        fake = self._fake(len(x), y)
        # Discriminator: real up, fake down; the fake is detached so G gets no gradient here.
        real_logits = self.model.discriminator(real, *labels)
        fake_logits = self.model.discriminator(fake.detach(), *labels)
        penalties: dict[str, torch.Tensor] = {}
        d_loss = discriminator_loss(real_logits, fake_logits)
        d_total = self.regularized(d_loss, penalties, list(self.model.discriminator.parameters()))
        self.update(self.optimizers["discriminator"], d_total)
        # Generator: make the updated discriminator call the same fakes real.
        g_loss = generator_loss(self.model.discriminator(fake, *labels))
        g_total = self.regularized(g_loss, penalties, list(self.model.generator.parameters()))
        self.update(self.optimizers["generator"], g_total)
        losses = {
            "loss": float(d_total.detach()) + float(g_total.detach()),
            "d_loss": float(d_loss.detach()),
            "g_loss": float(g_loss.detach()),
            "d_x": float(torch.sigmoid(real_logits.detach()).mean()),
            "d_g_z": float(torch.sigmoid(fake_logits.detach()).mean()),
        }
        if "l1" in penalties:
            losses["l1"] = float(penalties["l1"])
        return losses

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        labels = (self.fixed_labels,) if self.model.conditional else ()
        real = x[:GAN_GRID_SAMPLES] * 2 - 1
        real_labels = (y[:GAN_GRID_SAMPLES],) if self.model.conditional else ()
        with evaluation_mode(self.model):
            fake = self.model.generator(self.fixed_z, *labels)
            d_real = torch.sigmoid(self.model.discriminator(real, *real_labels)).mean()
            d_fake = torch.sigmoid(self.model.discriminator(fake, *labels)).mean()
        return {
            "grid": to_numpy(((fake + 1) / 2).clamp(0, 1)),  # [-1, 1] -> [0, 1]
            "labels": to_numpy(self.fixed_labels),
            "d_real": float(d_real),
            "d_fake": float(d_fake),
        }
