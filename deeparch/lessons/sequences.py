"""Lessons on sequence tasks trained by the engine: a forecaster against simple forecasts along
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

# ---- 25: a forecaster against the naive and mean forecasts over its horizon -----------------

FORECAST_HORIZON = 16
# ci: 100 steps (measured: 0.046 at the first step against 0.081 naive and 0.549 mean, 0.969 at
# the last, behind the mean from step 6; load 23); full: the registry's 10 epochs (370 steps:
# 0.039 and 1.016).
FORECAST_BUDGETS = {"ci": {"max_steps": 100, "epochs": 10}, "full": {"max_steps": 0, "epochs": 10}}
TRAINED, NAIVE, MEAN = "the trained forecaster", "repeating the last value", "the context's mean"
EVERY_STEP, FIRST_STEPS, NO_STEP = "every step", "only the first steps", "no step"


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
    context, truth = windows[:, :-FORECAST_HORIZON], windows[:, -FORECAST_HORIZON:]
    # The average method (Hyndman & Athanasopoulos, sec. 5.2): every step forecast by the mean
    # of the context, the forecast a model that has learned nothing of the dynamics falls back on.
    mean = ((context.mean(dim=1, keepdim=True) - truth) ** 2).mean(dim=(0, 2))
    curves = {TRAINED: error.tolist(), NAIVE: naive.tolist(), MEAN: mean.tolist()}
    best_baseline = [min(n, m) for n, m in zip(curves[NAIVE], curves[MEAN])]
    beats = [e < b for e, b in zip(curves[TRAINED], best_baseline)]
    # The first horizon step at which the model no longer beats both baselines (None: never).
    crossover = next((step for step, ahead in enumerate(beats, start=1) if not ahead), None)
    first, last = curves[TRAINED][0], curves[TRAINED][-1]
    growth = last / max(first, 1e-30)
    # The claim: ahead of both one step out, the error compounding along the rollout (the last
    # step's several times the first's), and a step from which a simple forecast is as good.
    held = beats[0] and growth > 2.0 and crossover is not None
    answer = EVERY_STEP if all(beats) else (FIRST_STEPS if beats[0] else NO_STEP)
    means = {label: sum(values) / len(values) for label, values in curves.items()}
    steps = jobs["forecaster"].snapshot().get("step", 0)
    lead = (
        f"it beats both at every one of the {FORECAST_HORIZON} steps"
        if crossover is None
        else f"it stops beating both at step {crossover} of {FORECAST_HORIZON}"
    )
    return Outcome(
        FORECAST_LESSON.name,
        held=held,
        verdict=f"after {steps} steps, rolled out from its own predictions on {len(windows)} "
        f"validation windows, the forecaster's squared error one step out is {first:.3f} "
        f"(repeating the last value {curves[NAIVE][0]:.3f}, the context's mean "
        f"{curves[MEAN][0]:.3f}) and grows to {last:.3f} at step {FORECAST_HORIZON} "
        f"({growth:.0f} times); {lead}; over the whole horizon {means[TRAINED]:.3f} against "
        f"{means[NAIVE]:.3f} and {means[MEAN]:.3f}",
        measured={
            "horizon_mse": means,
            "first_step_mse": first,
            "last_step_mse": last,
            "first_step_baseline": best_baseline[0],
            "growth": growth,
            "crossover_step": crossover,
            "horizon": FORECAST_HORIZON,
            "steps": steps,
        },
        series={"squared error per horizon step": curves},
        series_x={"squared error per horizon step": "steps ahead"},
        answer=answer,
    )


FORECAST_LESSON = register(
    Lesson(
        name="forecast_horizon",
        title="Forecasting beyond the next step",
        claim="A recurrent forecaster trained only to predict the next value forecasts a whole "
        "horizon by feeding its predictions back in. One step out it is better than the "
        "simple forecasts (repeat the last value; the mean of the context), but each step "
        "inherits the errors of the steps before, so its error grows along the horizon, and "
        "far enough out the simple mean can be as good.",
        source="A. Graves, Generating sequences with recurrent neural networks (arXiv:1308.0850, "
        "2013), sec. 2; R. J. Hyndman and G. Athanasopoulos, Forecasting: principles and "
        "practice (3rd ed., OTexts 2021), sec. 5.2 (the naive and average methods)",
        prediction=Prediction(
            "choice",
            f"Over a {FORECAST_HORIZON}-step horizon on noisy sines with a trend, at which steps "
            "does the trained forecaster beat both repeating the last value and the context's "
            "mean?",
            choices=(EVERY_STEP, FIRST_STEPS, NO_STEP),
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
        series_x={"accuracy per output position": "output position"},
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
