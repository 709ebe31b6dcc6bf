"""Lessons on sequence tasks trained by the engine: a forecaster against the naive forecast over
its horizon, and an encoder-decoder's accuracy at each output position (the fixed vector that
everything the decoder knows of the input passes through)."""

from __future__ import annotations

from collections.abc import Mapping

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import engine_run, failed_outcome, unfinished
from deeparch.tasks import evaluation_mode
from deeparch.tasks.forecast import horizon_errors

# ---- 25: a forecaster beats the naive forecast, and its error grows with the horizon ----------

FORECAST_HORIZON = 16
# ci: 100 steps (measured: the MSE ratio is 0.58 after 100 steps and 0.58 after 300, load 13-15).
FORECAST_BUDGETS = {"ci": {"max_steps": 100, "epochs": 10}, "full": {"max_steps": 0, "epochs": 10}}
TRAINED, NAIVE = "the trained forecaster", "repeating the last value"


def forecast_runs(budget: str) -> dict[str, TrainConfig]:
    arch_config = {"cell": "gru", "horizon": FORECAST_HORIZON}
    return {"forecaster": engine_run("forecaster", "sines", FORECAST_BUDGETS[budget], arch_config)}


def judge_forecast(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(FORECAST_LESSON, problems)
    model = jobs["forecaster"].model_copy()
    windows = load_dataset("sines").x_val
    with evaluation_mode(model):
        _forecast, error, naive = horizon_errors(model, windows, FORECAST_HORIZON)
    error, naive = error.tolist(), naive.tolist()
    model_mse, naive_mse = sum(error) / len(error), sum(naive) / len(naive)
    ratio = model_mse / naive_mse
    # Each step of the rollout reads the previous predictions, so their errors compound: the last
    # step's error is several times the first's (both forecasts; the claim is about the model's).
    growth = error[-1] / max(error[0], 1e-30)
    held = ratio < 1.0 and growth > 2.0
    steps = jobs["forecaster"].snapshot().get("step", 0)
    return Outcome(
        FORECAST_LESSON.name,
        held=held,
        verdict=f"after {steps} steps, rolled out {FORECAST_HORIZON} steps from its own "
        f"predictions on {len(windows)} validation windows, the forecaster's mean squared error "
        f"is {model_mse:.3f} against {naive_mse:.3f} for repeating the last value (a ratio of "
        f"{ratio:.2f}); its error grows from {error[0]:.3f} at the first step to {error[-1]:.3f} "
        f"at the last ({growth:.0f} times)",
        measured={
            "horizon_mse": {TRAINED: model_mse, NAIVE: naive_mse},
            "mse_ratio": ratio,
            "first_step_mse": error[0],
            "last_step_mse": error[-1],
            "growth": growth,
            "horizon": FORECAST_HORIZON,
            "steps": steps,
        },
        series={"squared error per horizon step": {TRAINED: error, NAIVE: naive}},
        answer=TRAINED if model_mse < naive_mse else NAIVE,
    )


FORECAST_LESSON = register(
    Lesson(
        name="forecast_horizon",
        title="Forecasting beyond the next step",
        claim="A recurrent forecaster trained only to predict the next value can forecast a "
        "whole horizon by feeding its predictions back in. It beats the naive forecast "
        "(repeat the last value), and its error grows with every step it predicts from its "
        "own outputs, because each step inherits the errors of the steps before.",
        source="A. Graves, Generating sequences with recurrent neural networks (arXiv:1308.0850, "
        "2013), sec. 2; R. J. Hyndman and G. Athanasopoulos, Forecasting: principles and "
        "practice (3rd ed., OTexts 2021), sec. 5.2 (the naive method) and 5.8 (multi-step "
        "errors)",
        prediction=Prediction(
            "choice",
            f"Over a {FORECAST_HORIZON}-step horizon on noisy sines with a trend, which forecast "
            "has the lower mean squared error?",
            choices=(TRAINED, NAIVE),
        ),
        judge=judge_forecast,
        runs=forecast_runs,
        setup={"arch": "forecaster", "dataset": "sines", "arch_config": {"cell": "gru"}},
        position=25,
    )
)


# ---- 26: the encoder-decoder's bottleneck, position by position --------------------------------

# ci: 150 steps (measured: per-position accuracy from 78% down to 26%, load 16); full: the
# registry's 15 epochs.
SEQ2SEQ_BUDGETS = {"ci": {"max_steps": 150, "epochs": 15}, "full": {"max_steps": 0, "epochs": 15}}
SEQ2SEQ_HIDDEN = 64
FIRST, LAST = "the first output digit", "the last output digit"


def seq2seq_runs(budget: str) -> dict[str, TrainConfig]:
    arch_config = {"cell": "gru", "hidden_size": SEQ2SEQ_HIDDEN}
    return {
        "seq2seq": engine_run("seq2seq", "reverse_digits", SEQ2SEQ_BUDGETS[budget], arch_config)
    }


def judge_seq2seq(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(SEQ2SEQ_LESSON, problems)
    model = jobs["seq2seq"].model_copy()
    data = load_dataset("reverse_digits")
    with evaluation_mode(model):
        decoded = model(data.x_val).argmax(dim=2)  # greedy, from its own previous choices
    per_position = (decoded == data.y_val).float().mean(dim=0).tolist()
    sequence_accuracy = float((decoded == data.y_val).all(dim=1).float().mean())
    first, last = per_position[0], per_position[-1]
    held = first > last + 0.1
    length = len(per_position)
    steps = jobs["seq2seq"].snapshot().get("step", 0)
    return Outcome(
        SEQ2SEQ_LESSON.name,
        held=held,
        verdict=f"after {steps} steps reversing {length}-digit strings through one "
        f"{SEQ2SEQ_HIDDEN}-number vector, the first output digit (the input's last, read just "
        f"before the summary) is right {first:.0%} of the time, the last output digit (the "
        f"input's first, read {length - 1} steps earlier) {last:.0%}; whole strings "
        f"{sequence_accuracy:.0%}",
        measured={
            "position_accuracy": per_position,
            "first_position": first,
            "last_position": last,
            "sequence_accuracy": sequence_accuracy,
            "hidden_size": SEQ2SEQ_HIDDEN,
            "steps": steps,
        },
        series={"accuracy per output position": {"greedy decoding": per_position}},
        answer=FIRST if first >= last else LAST,
    )


SEQ2SEQ_LESSON = register(
    Lesson(
        name="seq2seq_bottleneck",
        title="The encoder-decoder's bottleneck, position by position",
        claim="An encoder-decoder squeezes the whole input into one fixed vector. Reversing a "
        "digit string, the decoder's first output is the digit the encoder read last, still "
        "fresh in the vector; its last output is the digit read first, which had to survive "
        "every later step. So accuracy falls along the output; attention (Bahdanau et al. "
        "2015) was invented to remove that bottleneck.",
        source="I. Sutskever, O. Vinyals, Q. V. Le, Sequence to sequence learning with neural "
        "networks (NeurIPS 2014), sec. 3.3 (reversing the source); K. Cho et al., On the "
        "properties of neural machine translation: encoder-decoder approaches (SSST-8, 2014); "
        "D. Bahdanau, K. Cho, Y. Bengio, Neural machine translation by jointly learning to "
        "align and translate (ICLR 2015)",
        prediction=Prediction(
            "choice",
            "Reversing 8-digit strings, which output position is right more often?",
            choices=(FIRST, LAST),
        ),
        judge=judge_seq2seq,
        runs=seq2seq_runs,
        setup={"arch": "seq2seq", "dataset": "reverse_digits"},
        position=26,
    )
)
