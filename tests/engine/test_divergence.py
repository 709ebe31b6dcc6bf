"""The note shown when a run's loss exploded on the way (without reaching NaN), the layer
whose output overflowed, and the advice a diverged run gets (gradient clipping for RNNs)."""

import pytest
import torch
from torch import nn

from deeparch.data import dataset_info
from deeparch.engine.config import TrainConfig
from deeparch.engine.divergence import (
    HELPFUL_GRAD_CLIP,
    first_nonfinite_output,
    is_recurrent,
    loss_explosion_note,
    remedy,
)
from deeparch.engine.manager import JobManager
from deeparch.models import create_model, get_arch, list_archs


def test_loss_explosion_note_names_the_peak_and_its_step():
    exploded = {"loss": [[1, 2.3], [2, 40.0], [7, 2.77e18], [8, 2.9]]}
    note = loss_explosion_note(exploded, lr=10.0)
    assert note is not None
    assert "from 2.3 to 2.77e+18 at step 7" in note and "learning rate of 10" in note
    calm = {"loss": [[1, 2.3], [2, 1.1], [3, 0.4]]}
    assert loss_explosion_note(calm, lr=1e-3) is None
    assert loss_explosion_note({}, lr=1.0) is None


def test_the_first_layer_whose_output_overflows_is_named():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.fill_(1e38)
    inputs = torch.ones(1, 2) * 1e3

    def run_and_fail():
        model(inputs)
        raise RuntimeError("a loss that refuses NaN")

    assert first_nonfinite_output(model, run_and_fail) == "1"
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    assert first_nonfinite_output(model, lambda: model(inputs)) is None


def test_a_recurrent_model_is_also_advised_gradient_clipping():
    assert remedy(0.5) == "try a learning rate below 0.5"
    rnn = remedy(0.5, recurrent=True)
    assert rnn.startswith("try a learning rate below 0.5, or set grad_clip to 1 ")
    assert remedy(0.5, recurrent=True, grad_clip=5.0).startswith(
        "try a learning rate below 0.5, or lower grad_clip from 5 to 1 "
    )
    # Clipped at the helpful value or tighter already: only the learning rate is left to try.
    assert remedy(0.5, recurrent=True, grad_clip=HELPFUL_GRAD_CLIP) == remedy(0.5)


@pytest.mark.parametrize("arch", list_archs())
def test_recurrent_means_a_torch_recurrent_layer_inside(arch):
    spec = get_arch(arch)
    if spec.family == "transfer":
        pytest.skip("torchvision's classifiers: convolutions, and large to build")
    model, _ = create_model(arch, {}, dataset_info(spec.default_dataset))
    recurrent_layers = [m for m in model.modules() if isinstance(m, nn.RNN | nn.LSTM | nn.GRU)]
    assert is_recurrent(model) == bool(recurrent_layers)
    if arch in ("rnn", "lstm", "gru"):
        assert is_recurrent(model)
    if arch in ("mlp", "cnn"):
        assert not is_recurrent(model)


def test_a_diverged_rnn_is_told_to_clip_its_gradient():
    # The exploding-gradients lesson's unclipped run: a relu RNN whose recurrent matrix starts at
    # twice an orthogonal one, trained with SGD on mnist_rows.
    config = TrainConfig(
        arch="rnn",
        dataset="mnist_rows",
        arch_config={"hidden_size": 32, "nonlinearity": "relu", "recurrent_init_scale": 2.0},
        optimizer="sgd",
        lr=0.01,
        batch_size=64,
        max_steps=200,
    )
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(300)
    assert job.state == "diverged", job.reason
    assert "try a learning rate below 0.01, or set grad_clip to 1 " in job.reason
