"""The note shown when a run's loss exploded on the way (without reaching NaN), and the layer
whose output overflowed."""

import torch
from torch import nn

from deeparch.engine.divergence import first_nonfinite_output, loss_explosion_note


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
