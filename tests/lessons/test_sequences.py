"""The engine-trained lessons' judges can say no: an untrained model (a finished job that has not
learned) does not make the claim hold, and a run that failed is reported, not judged."""

import pytest

from deeparch.engine.state import JobState
from deeparch.lessons import get_lesson
from deeparch.lessons.measure import seeded_model


class UntrainedJob:
    """A finished job whose model is still its initial weights (seed 0)."""

    def __init__(self, arch: str, dataset: str, arch_config: dict, state=JobState.FINISHED):
        self.model = seeded_model(arch, arch_config, dataset, seed=0)
        self.state, self.reason = state, "reached max_steps 0"

    def model_copy(self):
        return self.model.eval()

    def snapshot(self, owner=None):
        return {"step": 0}


def untrained_jobs(name: str, state=JobState.FINISHED) -> dict:
    return {
        label: UntrainedJob(config.arch, config.dataset, config.arch_config, state)
        for label, config in get_lesson(name).runs("ci").items()
    }


@pytest.mark.slow  # the rollout over 600 windows: 29 s at load 22
def test_an_untrained_forecaster_is_not_ahead_one_step_out():
    outcome = get_lesson("forecast_horizon").judge("ci", untrained_jobs("forecast_horizon"))
    assert not outcome.held
    assert outcome.measured["first_step_mse"] > outcome.measured["first_step_baseline"]


def test_an_untrained_encoder_decoder_is_near_chance_at_every_position():
    outcome = get_lesson("seq2seq_bottleneck").judge("ci", untrained_jobs("seq2seq_bottleneck"))
    accuracy = outcome.measured["position_accuracy"]
    assert len(accuracy) == 8 and max(accuracy) < 0.2  # ten digits: chance is 10%
    assert not outcome.held


def test_untrained_word_vectors_have_neighbours_no_closer_in_context_than_any_word():
    outcome = get_lesson("word2vec_neighbours").judge("ci", untrained_jobs("word2vec_neighbours"))
    similarity = outcome.measured["context_similarity"]
    assert not outcome.held
    assert similarity["skipgram"] < similarity["any word"] + 0.03


@pytest.mark.parametrize(
    "name", ["forecast_horizon", "seq2seq_bottleneck", "sampling_temperature", "surname_inputs"]
)
def test_a_failed_run_is_reported_not_judged(name):
    outcome = get_lesson(name).judge("ci", untrained_jobs(name, JobState.FAILED))
    assert not outcome.held
    assert outcome.verdict.startswith("The experiment did not complete")
