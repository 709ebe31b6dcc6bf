"""Lesson 22's check on made-up discriminator outputs: its margin is the run's own noise, so the
same game is judged the same whatever the noise level, and a game that settles is not a drift."""

import numpy as np
import pytest

from deeparch.engine.state import JobState
from deeparch.lessons import generative

STEPS = 1000


class RecordedGan:
    """A finished GAN job as the judge reads it: its D(x) and D(G(z)) per step, no snapshots."""

    state, reason = JobState.FINISHED, "reached max_steps 1000"

    def __init__(self, d_x: np.ndarray, d_g_z: np.ndarray) -> None:
        steps = range(1, len(d_x) + 1)
        self.losses = {"d_x": list(zip(steps, d_x.tolist())),
                       "d_g_z": list(zip(steps, d_g_z.tolist()))}  # fmt: skip

    def snapshot(self):
        return {"losses": self.losses, "snapshots": []}


def game(drift: float, noise: float, lead: float = 0.12, seed: int = 0) -> RecordedGan:
    """The discriminator's lead (`lead` from 0.5 at step 60), the return to 0.5 by step 200,
    then a drift to `drift` at the end; each step's outputs with normal noise of sd `noise`."""
    t = np.arange(1, STEPS + 1, dtype=float)
    leading = np.interp(t, [1, 60, 200], [0.0, lead, 0.0])
    away = np.interp(t, [1, 500, STEPS], [0.0, 0.0, drift])
    rng = np.random.default_rng(seed)
    d_x = 0.5 + leading + away + rng.normal(0, noise, STEPS)
    d_g_z = 0.5 - leading - away + rng.normal(0, noise, STEPS)
    return RecordedGan(d_x, d_g_z)


@pytest.mark.parametrize("noise", [0.02, 0.05])
def test_a_lead_a_return_and_a_drift_hold_at_any_noise_level(noise):
    outcome = generative.judge_gan("ci", {"gan": game(drift=0.3, noise=noise)})
    measured = outcome.measured
    assert outcome.held, outcome.verdict
    # The margin follows the noise: a moving average of 25 steps has sd noise / 5.
    assert measured["noise"] == pytest.approx(noise / 5, rel=0.15)
    assert measured["margin"] == generative.NOISE_MARGIN * measured["noise"]
    assert 40 <= measured["lead_step"] <= 90 and 200 <= measured["closest_step"] <= 530
    assert measured["lead"] == pytest.approx(0.12, abs=0.03)
    assert measured["final_distance_from_half"] == pytest.approx(0.3, abs=0.03)
    assert f"{measured['margin']:.3f}" in outcome.verdict and "then drifted away" in outcome.verdict


def test_a_game_that_settles_at_one_half_is_not_a_drift():
    outcome = generative.judge_gan("ci", {"gan": game(drift=0.0, noise=0.05)})
    assert not outcome.held
    assert "stayed within the margin" in outcome.verdict
    measured = outcome.measured
    assert measured["final_distance_from_half"] - measured["closest_to_half"] <= measured["margin"]


def test_outputs_that_only_wander_by_chance_are_no_game():
    outcome = generative.judge_gan("ci", {"gan": game(drift=0.0, noise=0.05, lead=0.0)})
    assert not outcome.held and outcome.measured["steps"] == STEPS
    assert f"counts from {outcome.measured['margin']:.3f}" in outcome.verdict
