"""The note shown when a run's loss exploded on the way (without reaching NaN)."""

from deeparch.engine.divergence import loss_explosion_note


def test_loss_explosion_note_names_the_peak_and_its_step():
    exploded = {"loss": [[1, 2.3], [2, 40.0], [7, 2.77e18], [8, 2.9]]}
    note = loss_explosion_note(exploded, lr=10.0)
    assert note is not None
    assert "from 2.3 to 2.77e+18 at step 7" in note and "learning rate of 10" in note
    calm = {"loss": [[1, 2.3], [2, 1.1], [3, 0.4]]}
    assert loss_explosion_note(calm, lr=1e-3) is None
    assert loss_explosion_note({}, lr=1.0) is None
