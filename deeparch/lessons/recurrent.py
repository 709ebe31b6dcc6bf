"""Lessons on recurrent networks: which axis is time, the LSTM's two states, vanishing and
exploding gradients through time.

Which axis is time and exploding gradients train the registry's gru and rnn through the engine
(their batch_first and recurrent_init_scale options); the LSTM's states are an exact computation
on the registry's lstm; vanishing gradients trains small PyTorch models with a plain loop
(deeparch.lessons.measure.fit) on a synthetic task whose answer sits at t = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.divergence import HELPFUL_GRAD_CLIP
from deeparch.engine.handle import JobHandle
from deeparch.engine.state import JobState
from deeparch.lessons.measure import (
    accuracy,
    chance_level,
    fit,
    generator,
    seeded_model,
    seeded_module,
)
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.lessons.runner import failed_outcome, unfinished

PLAIN_LOOP_NOTE = (
    "Trained with a plain PyTorch loop inside the lesson (Adam, random batches from the lesson's "
    "own generator), not as an engine job: the engine's architectures do not expose this setting."
)


class LastStepClassifier(nn.Module):
    """A recurrent layer, then a linear head on the output of the last time step.

    `batch_first` says how the layer reads its input: True, (N, T, F); False, (T, N, F). The
    forward pass always indexes output[:, -1], which is the last step only when batch_first.
    """

    def __init__(
        self, cell: str, hidden: int, batch_first: bool = True, features: int = 1,
        classes: int = 2, **cell_args,
    ) -> None:  # fmt: skip
        super().__init__()
        recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = recurrent(features, hidden, batch_first=batch_first, **cell_args)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _state = self.rnn(x)
        return self.head(output[:, -1])  # batch_first=False: the last *example*, every step


MARKED_LENGTH = 60
# Measured at 16 hidden units, Adam 1e-2, batches of 32: the LSTM and the GRU reach 98.6% and
# 97.2% of the validation set at 200 steps, the plain cells stay at chance (README, Lessons).
VANISHING_STEPS = {"ci": 200, "full": 500}
# Gated cells start out remembering: the LSTM's forget gate and the GRU's update gate get a bias
# of 4 (sigmoid(4) = 0.98, so a value survives 60 steps at about 0.3 of its size rather than
# 0.5^60), as Jozefowicz et al. 2015 and Tallec & Ollivier 2018 ("chrono" initialisation)
# recommend for long dependencies; the LSTM's input gate gets -4, as chrono initialisation sets
# it, so the 59 noise values after the first are not written into the cell at half strength each
# (with the input gate at its default the LSTM needed twice the steps here). PyTorch orders the
# gates (i, f, g, o) and (r, z, n).
REMEMBER_BIAS = 4.0


def marked_first(size: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(size, length, 2): channel 0 is N(0, 1) noise, channel 1 marks t = 0; the label is the
    sign of the marked value (the marker of Hochreiter & Schmidhuber's 1997 adding problem
    tells a gate when to write)."""
    x = torch.randn(size, length, 2, generator=generator(seed))
    x[:, :, 1] = 0.0
    x[:, 0, 1] = 1.0
    return x, (x[:, 0, 0] > 0).long()


def remember_gate_bias(model: LastStepClassifier, cell: str, value: float) -> None:
    """Bias the gate that keeps the state (LSTM forget, GRU update: rows H..2H) to `value`, and
    the LSTM's input gate (rows 0..H) to -`value`."""
    if cell not in ("lstm", "gru"):
        return
    size = model.rnn.hidden_size
    with torch.no_grad():
        model.rnn.bias_ih_l0[size : 2 * size] = value
        model.rnn.bias_hh_l0[size : 2 * size] = 0.0
        if cell == "lstm":
            model.rnn.bias_ih_l0[:size] = -value
            model.rnn.bias_hh_l0[:size] = 0.0


# ---- 8: which axis is time --------------------------------------------------------------------

AXES_HIDDEN = 32
AXES_BATCH = 64
AXES_STEPS = {"ci": 100, "full": 600}
AXES_RUNS = {"batch_first=True": True, "batch_first=False": False}


def axes_runs(budget: str) -> dict[str, TrainConfig]:
    """The same GRU on mnist_rows (28 rows of 28 pixels, read top to bottom), once built the
    right way round and once with batch_first=False, fed the same (batch, time, feature) data."""
    return {
        label: TrainConfig.from_dict(
            {
                "arch": "gru",
                "dataset": "mnist_rows",
                "arch_config": {"hidden_size": AXES_HIDDEN, "batch_first": batch_first},
                "epochs": 1,
                "max_steps": AXES_STEPS[budget],
                "batch_size": AXES_BATCH,
                "lr": 1e-2,
                "seed": 0,
            }
        )
        for label, batch_first in AXES_RUNS.items()
    }


def judge_axes(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    problems = unfinished(jobs)
    if problems:
        return failed_outcome(AXES_LESSON, problems)
    data = load_dataset("mnist_rows")
    batch = data.x_val[:AXES_BATCH]  # (64, 28, 28): batch, time, feature
    results, shapes = {}, {}
    for label, job in jobs.items():
        model = job.model_copy()
        with torch.no_grad():
            output, state = model.rnn(model.embed(batch))
        shapes[label] = {"output": list(output.shape), "state": list(state.shape)}
        results[label] = accuracy(model, data.x_val, data.y_val)
    chance = chance_level(data.y_val)
    right, wrong = results["batch_first=True"], results["batch_first=False"]
    held = right > chance + 0.3 and wrong < chance + 0.1
    steps = AXES_STEPS[budget]
    return Outcome(
        AXES_LESSON.name,
        held=held,
        verdict=f"a {tuple(batch.shape)} batch runs through both without an error; read as "
        f"(batch, time, feature) the GRU reaches {right:.0%} on the validation set after "
        f"{steps} steps, read as (time, batch, feature) {wrong:.0%} (chance {chance:.0%}): it "
        f"learned across examples, and its state has shape "
        f"{tuple(shapes['batch_first=False']['state'])}, a state per row of the image instead "
        f"of per example",
        measured={
            "val_accuracy": results,
            "chance": chance,
            "shapes": shapes,
            "input_shape": list(batch.shape),
            "steps": steps,
        },
        answer=tuple(shapes["batch_first=False"]["state"]),
    )


# ---- 9: the LSTM's two states -----------------------------------------------------------------


def judge_lstm_states(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    model = seeded_model("lstm", None, "mnist1d", seed=0)
    lstm: nn.LSTM = model.rnn
    example = load_dataset("mnist1d").x_val[:1]  # (1, 40, 1)
    with torch.no_grad():
        e = model.embed(example)
        output, (h_last, c_last) = lstm(e)
        # One step at a time, the two states carried by hand: the same outputs, and c_t on the way.
        h = torch.zeros_like(h_last)
        c = torch.zeros_like(c_last)
        cells, stepped = [], []
        for t in range(e.shape[1]):
            out_t, (h, c) = lstm(e[:, t : t + 1], (h, c))
            stepped.append(out_t)
            cells.append(c[-1, 0])
    stepped_output = torch.cat(stepped, dim=1)
    c_over_time = torch.stack(cells)  # (T, H)
    step_difference = float((stepped_output - output).abs().max())
    readout_difference = float((output[:, -1] - h_last[-1]).abs().max())
    held = (
        step_difference <= 1e-6
        and readout_difference == 0.0
        and tuple(h_last.shape) == tuple(c_last.shape) == (1, 1, lstm.hidden_size)
    )
    units = list(range(min(4, lstm.hidden_size)))
    return Outcome(
        "lstm_states",
        held=held,
        verdict=f"h_T and c_T both have shape {tuple(h_last.shape)} (layers, batch, hidden); "
        f"output[:, -1] equals h_T (difference {readout_difference:g}), while c_T appears in no "
        f"output; stepping the cell by hand with (h, c) carried gives the same outputs "
        f"(difference {step_difference:.1g})",
        measured={
            "h_T_shape": list(h_last.shape),
            "c_T_shape": list(c_last.shape),
            "output_shape": list(output.shape),
            "readout_difference": readout_difference,
            "stepped_difference": step_difference,
            "max_abs_h": float(output.abs().max()),
            "max_abs_c": float(c_over_time.abs().max()),
        },
        series={
            "c_t over time (first units)": {f"unit {u}": c_over_time[:, u].tolist() for u in units}
        },
        series_x={"c_t over time (first units)": "time step t"},
        answer=tuple(c_last.shape),
    )


# ---- 10: vanishing gradients ---------------------------------------------------------------

CELLS = {
    "rnn (tanh)": ("rnn", {"nonlinearity": "tanh"}),
    "rnn (relu)": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
}


def gradient_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Mean over the batch of || d loss / d x[:, t] || for each time step t."""
    inputs = x.clone().requires_grad_(True)
    model.eval()
    loss = nn.functional.cross_entropy(model(inputs), y, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, inputs)
    return gradient.norm(dim=2).mean(dim=0).tolist()


DECAY_SPAN = 10  # the last steps over which the per-step decay of the gradient is measured


def decay_per_step(norms: list[float], span: int = DECAY_SPAN) -> float:
    """The factor the gradient shrinks by per step back in time, over the last `span` steps
    (geometric mean: (||g_{T-1-span}|| / ||g_{T-1}||) ** (1 / span))."""
    return (norms[-1 - span] / max(norms[-1], 1e-30)) ** (1 / span)


def steps_back_to_zero(norms: list[float]) -> int | None:
    """How many steps back from the last the gradient is first exactly zero (a relu path that
    every unit cuts); None when it never is."""
    zeros = [back for back, norm in enumerate(reversed(norms)) if norm == 0.0]
    return zeros[0] if zeros else None


def judge_vanishing(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    x_train, y_train = marked_first(2000, MARKED_LENGTH, seed=1)
    x_val, y_val = marked_first(500, MARKED_LENGTH, seed=2)
    steps = VANISHING_STEPS[budget]
    val_accuracy, norms, first_over_last, decay, dead = {}, {}, {}, {}, {}
    for label, (cell, args) in CELLS.items():
        model = seeded_module(lambda c=cell, a=args: LastStepClassifier(c, 16, features=2, **a))
        remember_gate_bias(model, cell, REMEMBER_BIAS)
        # At initialisation, before training changes the weights: what the cell itself does.
        initial = gradient_per_step(model, x_val[:64], y_val[:64])
        decay[label], dead[label] = decay_per_step(initial), steps_back_to_zero(initial)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, x_train, y_train, nn.functional.cross_entropy, optimizer, steps, 32, seed=0)
        val_accuracy[label] = accuracy(model, x_val, y_val)
        norms[label] = gradient_per_step(model, x_val[:64], y_val[:64])
        first_over_last[label] = norms[label][0] / max(norms[label][-1], 1e-30)
    chance = chance_level(y_val)
    plain_labels, gated_labels = ("rnn (tanh)", "rnn (relu)"), ("lstm", "gru")
    # The gradient reaching t = 0 is what the claim is about: each gated cell's must exceed
    # both plain RNNs' by a factor of 1,000 at least; and both gated cells learn the task (35
    # points above chance) while neither plain one leaves chance (within 10 points).
    gradient_gap = min(first_over_last[label] for label in gated_labels) > 1e3 * max(
        max(first_over_last[label] for label in plain_labels), 1e-30
    )
    gated_learn = min(val_accuracy[label] for label in gated_labels) > chance + 0.35
    plain_fail = max(val_accuracy[label] for label in plain_labels) < chance + 0.1
    held = gradient_gap and gated_learn and plain_fail
    listed = ", ".join(f"{label} {value:.0%}" for label, value in val_accuracy.items())
    ratios = ", ".join(f"{label} {value:.1e}" for label, value in first_over_last.items())
    relu_dead = dead["rnn (relu)"]
    relu_note = (
        f"the relu RNN's is exactly zero from {relu_dead} steps back (every path crosses a relu "
        "that is off)"
        if relu_dead is not None
        else "the relu RNN's never reaches exactly zero"
    )
    return Outcome(
        "vanishing_gradients",
        held=held,
        verdict=f"after {steps} steps on sequences of {MARKED_LENGTH} whose label is the sign of "
        f"the first value: {listed} (chance {chance:.0%}); the gradient reaching t = 0, relative "
        f"to the last step's: {ratios}. At initialisation the gradient shrinks per step back by "
        f"{decay['rnn (tanh)']:.2f} in the tanh RNN, {decay['rnn (relu)']:.2f} in the relu RNN, "
        f"{decay['lstm']:.2f} in the LSTM and {decay['gru']:.2f} in the GRU (over the last "
        f"{DECAY_SPAN} steps); {relu_note}",
        measured={
            "val_accuracy": val_accuracy,
            "chance": chance,
            "steps": steps,
            "first_over_last_gradient": first_over_last,
            "initial_decay_per_step": decay,
            "initial_steps_back_to_zero": dead,
            "length": MARKED_LENGTH,
        },  # fmt: skip
        series={"gradient norm per input time step (after training)": norms},
        series_x={"gradient norm per input time step (after training)": "input time step"},
        answer="only the gated cells",
    )


# ---- 11: exploding gradients and clipping --------------------------------------------------

# The recurrent matrix starts as 2 x a random orthogonal matrix (recurrent_init_scale): a relu
# unit passes about half of it, so activity grows by about 1.4 a step, 28 steps: the first loss
# is already in the thousands. mnist_rows, where a plain RNN learns (on mnist1d it stays at chance).
RECURRENT_SCALE = 2.0
EXPLODING_STEPS = {"ci": 200, "full": 1000}
CLIP = HELPFUL_GRAD_CLIP  # the value a diverged recurrent run is advised: checked here
CLIPPING = {"no clipping": 0.0, f"grad_clip {CLIP:g}": CLIP}


def exploding_runs(budget: str) -> dict[str, TrainConfig]:
    return {
        label: TrainConfig.from_dict(
            {
                "arch": "rnn",
                "dataset": "mnist_rows",
                "arch_config": {
                    "hidden_size": 32,
                    "nonlinearity": "relu",
                    "recurrent_init_scale": RECURRENT_SCALE,
                },
                "optimizer": "sgd",
                "lr": 0.01,
                "grad_clip": clip,
                "epochs": 5,
                "max_steps": EXPLODING_STEPS[budget],
                "batch_size": 64,
                "seed": 0,
            }
        )
        for label, clip in CLIPPING.items()
    }


def judge_exploding(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    clipped_label = f"grad_clip {CLIP:g}"
    # The unclipped run may end diverged (the claim) or finished (the claim failed): both judged.
    unclipped_state = jobs["no clipping"].state
    problems = unfinished({clipped_label: jobs[clipped_label]})
    if unclipped_state not in (JobState.FINISHED, JobState.DIVERGED):
        problems += unfinished({"no clipping": jobs["no clipping"]})
    if problems:
        return failed_outcome(EXPLODING_LESSON, problems)
    curves = {
        label: [float(value) for _step, value in job.snapshot()["losses"]["loss"]]
        for label, job in jobs.items()
    }
    ended = {label: losses[-1] for label, losses in curves.items()}
    unclipped = ended["no clipping"]
    first = curves["no clipping"][0]
    diverged = (
        unclipped_state is JobState.DIVERGED
        or not math.isfinite(unclipped)
        or unclipped > 10 * first
    )
    clipped_tail = sum(curves[clipped_label][-10:]) / 10
    val_accuracy = jobs[clipped_label].snapshot()["final_metrics"].get("val_accuracy")
    chance = chance_level(load_dataset("mnist_rows").y_val)
    trained = math.isfinite(clipped_tail) and clipped_tail < first and val_accuracy > chance + 0.1
    held = diverged and trained
    return Outcome(
        EXPLODING_LESSON.name,
        held=held,
        verdict=f"a relu RNN whose recurrent matrix starts at {RECURRENT_SCALE:g} x an "
        f"orthogonal matrix, trained with SGD on mnist_rows from a first loss of {first:.3g}: "
        f"without clipping the run ends {unclipped_state} after {len(curves['no clipping'])} "
        f"steps (loss {unclipped:.3g}: {jobs['no clipping'].reason}); with the gradient norm "
        f"clipped to {CLIP:g} the loss falls to {clipped_tail:.3g} and the validation accuracy "
        f"is {val_accuracy:.0%} after {len(curves[clipped_label])} steps (chance {chance:.0%})",
        measured={
            "first_loss": first,
            "final_loss": ended,
            "clipped_final_loss": clipped_tail,
            "clipped_val_accuracy": val_accuracy,
            "chance": chance,
            "unclipped_state": str(unclipped_state),
            "steps": EXPLODING_STEPS[budget],
            "steps_run": {k: len(v) for k, v in curves.items()},
        },  # fmt: skip
        series={"training loss per step": curves},
        series_x={"training loss per step": "step"},
        answer="it diverges",
    )


AXES_LESSON = register(
    Lesson(
        name="rnn_axes",
        title="Which axis is time?",
        claim="PyTorch's recurrent layers read (time, batch, feature) unless built with "
        "batch_first=True. A (batch, time, feature) tensor fed to one built without it runs "
        "without an error, treats the batch as time and learns the wrong thing.",
        source="PyTorch documentation, torch.nn.RNN / torch.nn.GRU (batch_first); A. Graves, "
        "Supervised Sequence Labelling with Recurrent Neural Networks (Springer 2012), ch. 3",
        prediction=Prediction(
            "shape",
            "A (64, 28, 28) batch of mnist_rows (64 images of 28 rows of 28 pixels) goes into a "
            "GRU(28, 32) built with batch_first=False: what is the shape of its final state h_n?",
            answer=(1, 28, AXES_HIDDEN),
        ),
        judge=judge_axes,
        runs=axes_runs,
        setup={
            "arch": "gru",
            "dataset": "mnist_rows",
            "arch_config": {"hidden_size": AXES_HIDDEN, "batch_first": False},
        },
        position=8,
    )
)
register(
    Lesson(
        name="vanishing_gradients",
        title="Vanishing gradients",
        claim="Back through time, a plain RNN multiplies the gradient by its recurrent Jacobian "
        "once per step, so what reaches a step 60 steps back is vanishingly small and it cannot "
        "learn a dependency that long (with tanh it shrinks by a steady factor per step; with "
        "relu it is cut to exactly zero where every path crosses a unit that is off). Gated "
        "cells (LSTM, GRU) whose keep-gate is open carry the state and its gradient almost "
        "unchanged, and learn it.",
        source="Y. Bengio, P. Simard, P. Frasconi, Learning long-term dependencies with gradient "
        "descent is difficult (IEEE TNN 1994); S. Hochreiter and J. Schmidhuber 1997; R. "
        "Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent neural "
        "networks (ICML 2013)",
        prediction=Prediction(
            "choice",
            "Which cells learn to recall the first of 60 values?",
            choices=("all four", "only the gated cells", "only the plain RNNs", "none"),
        ),  # fmt: skip
        judge=judge_vanishing,
        note=PLAIN_LOOP_NOTE,
        setup={"arch": "lstm", "dataset": "mnist1d"},
        position=10,
    )
)
EXPLODING_LESSON = register(
    Lesson(
        name="exploding_gradients",
        title="Exploding gradients and clipping",
        claim="When the recurrent weights are large, the gradient grows with every step back "
        "through time and one SGD step throws the weights far away: the loss blows up. Clipping "
        "the gradient's norm keeps each step bounded and the same network trains.",
        source="R. Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent "
        "neural networks (ICML 2013), sec. 3.2; Q. Le, N. Jaitly, G. Hinton, A simple way to "
        "initialize recurrent networks of rectified linear units (arXiv:1504.00941, 2015)",
        prediction=Prediction(
            "choice",
            "Without clipping, the loss of this RNN...",
            choices=("it diverges", "it trains slowly", "it trains as well"),
            answer="it diverges",
        ),  # fmt: skip
        judge=judge_exploding,
        runs=exploding_runs,
        setup={
            "arch": "rnn",
            "dataset": "mnist_rows",
            "arch_config": {"nonlinearity": "relu", "recurrent_init_scale": RECURRENT_SCALE},
            "optimizer": "sgd",
            "lr": 0.01,
            "grad_clip": CLIP,
        },  # fmt: skip
        position=11,
    )
)
register(
    Lesson(
        name="lstm_states",
        title="The LSTM's two states",
        claim="An LSTM carries two states: the cell c_t, only scaled and added to, and the "
        "output h_t = o_t * tanh(c_t). nn.LSTM returns both at the end, each of shape (layers, "
        "batch, hidden); its output sequence holds only the h_t.",
        source="S. Hochreiter and J. Schmidhuber, Long short-term memory (Neural Computation "
        "1997); PyTorch documentation, torch.nn.LSTM",
        prediction=Prediction(
            "shape",
            "One sequence through nn.LSTM(1, 64) with one layer: the shape of c_T?",
            answer=(1, 1, 64),
        ),
        judge=judge_lstm_states,
        setup={"arch": "lstm", "dataset": "mnist1d"},
        exact=True,
        position=9,
    )
)
