"""The choice of reconstruction loss (TrainConfig.reconstruction_loss) for every autoencoder,
U-Net and VAE: each task computes the loss chosen, and BCE is refused where outputs leave [0, 1]."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from deeparch.engine.config import TrainConfig
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError
from deeparch.models import get_arch, list_archs
from deeparch.tasks.base import evaluation_mode
from deeparch.tasks.reconstruct import RECONSTRUCTION_LOSSES, RECONSTRUCTION_TASKS

RECONSTRUCTING = [name for name in list_archs() if get_arch(name).task in RECONSTRUCTION_TASKS]
CHOSEN = [loss for loss in RECONSTRUCTION_LOSSES if loss != "default"]
PER_VALUE = {"mse": F.mse_loss, "bce": F.binary_cross_entropy, "l1": F.l1_loss}


def config_for(arch, loss):
    return TrainConfig(arch=arch, batch_size=16, max_steps=1, reconstruction_loss=loss)


def expected_loss(task, x, kind):
    """The loss of the whole batch computed here, from the model's output in eval mode."""
    with evaluation_mode(task.model):
        if task.name == "vae":
            recon, mu, logvar = task.model(x)
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
            summed = PER_VALUE[kind](recon, x, reduction="sum") / len(x)
            return summed + float(task.settings.beta) * kl
        code = task.model.encode(x) if task.name == "reconstruct" else None
        out = task.model.decode(code) if code is not None else task.model(x)
        penalty = task.model.penalty(code) if code is not None else 0.0
        return PER_VALUE[kind](out, x) + penalty


@pytest.mark.parametrize("loss", CHOSEN)
@pytest.mark.parametrize("arch", RECONSTRUCTING)
def test_each_task_computes_the_chosen_reconstruction_loss(arch, loss):
    config = config_for(arch, loss)
    try:
        prepared = prepare(config)
    except ConfigError as error:
        assert (loss, error.field) == ("bce", "reconstruction_loss")
        assert "[0, 1]" in str(error)
        return
    task = prepared.task
    assert task.loss_kind == loss
    x = prepared.x_val[:16]
    task.settings = dataclasses.replace(task.settings, **noise_free(task.settings))
    with evaluation_mode(task.model):
        got = task.loss_terms(x, prepared.y_val[:16])["loss"]
    assert float(got) == pytest.approx(float(expected_loss(task, x, loss)), rel=1e-5)


def noise_free(settings):
    return {"noise_std": 0.0} if hasattr(settings, "noise_std") else {}


@pytest.mark.parametrize("arch", RECONSTRUCTING)
def test_the_default_loss_is_the_task_own(arch):
    prepared = prepare(config_for(arch, "default"), dry_run=False)
    assert prepared.task.loss_kind == ("bce" if get_arch(arch).task == "vae" else "mse")


def test_a_linear_output_refuses_bce_naming_the_field():
    config = dataclasses.replace(
        config_for("linear_autoencoder", "bce"), arch_config={"output": "linear"}
    )
    with pytest.raises(ConfigError) as raised:
        prepare(config)
    assert raised.value.field == "reconstruction_loss"


@pytest.mark.parametrize("arch", ["mlp", "cnn", "dcgan", "lstm"])
def test_a_model_without_reconstruction_keeps_the_default(arch):
    with pytest.raises(ConfigError) as raised:
        config_for(arch, "l1").validate()
    assert raised.value.field == "reconstruction_loss"
