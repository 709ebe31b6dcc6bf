"""Register, list and run lessons by name: the course's claims as experiments that check
themselves (the registry after deeparch.models.registry, itself after timm's register_model).

A lesson is data (its claim in our words, a real source, the prediction a student makes first, a
one-click setup for Train) plus two small functions: `runs(budget)` names the training runs the
engine trains for it (TrainConfigs; none for an exact computation), and `judge(budget, jobs)`
measures what those runs (or a computation of its own) show and says whether the claim held. A
lesson may have a second stage, `second_stage(budget)`: runs the engine starts once the first
stage's have finished, which may start from a first-stage run's weights (StagedRun.weights_from),
as transfer learning does; the judge then sees the runs of both stages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.errors import ConfigError, UnknownNameError
from deeparch.settings import LESSON_BUDGETS

# How much a lesson's check may spend: "ci" runs in seconds (the test suite and `lesson run
# --budget ci`), "full" is what the page runs (unless the class's lesson_budget says ci), big
# enough to show the claim clearly.
BUDGETS = LESSON_BUDGETS
PREDICTION_KINDS = ("number", "shape", "choice")
LESSONS_PACKAGE = __name__.rpartition(".")[0]


@dataclass(frozen=True)
class Prediction:
    """What the student predicts before the experiment runs, and how the guess is judged.

    number: a count or size, right within `tolerance` (relative; 0 means exactly);
    shape: a tensor shape such as (1, 32, 64), right when every size matches;
    choice: one of `choices`. `answer` None: the experiment measures the answer (which optimiser
    ends lowest, say) and the outcome carries it.
    """

    kind: str
    question: str
    answer: Any = None
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in PREDICTION_KINDS:
            raise ValueError(f"prediction kind {self.kind!r}: one of {PREDICTION_KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice prediction needs its choices")

    def right_answer(self, outcome: Outcome | None = None) -> Any:
        """The fixed answer, or the one the experiment measured."""
        if self.answer is not None:
            return self.answer
        return None if outcome is None else outcome.answer

    def is_right(self, guess: Any, outcome: Outcome | None = None) -> bool | None:
        """Whether a guess is right; None while the answer is not yet measured."""
        answer = self.right_answer(outcome)
        if answer is None:
            return None
        if self.kind == "number":
            guess_value = parse_number(guess)
            return math.isclose(guess_value, float(answer), rel_tol=self.tolerance, abs_tol=1e-9)
        if self.kind == "shape":
            return parse_shape(guess) == tuple(int(n) for n in answer)
        return str(guess) == str(answer)


def parse_number(text: Any) -> float:
    """A student's number: 93,322 or 93322 or 1e-3; ConfigError names what was typed."""
    if isinstance(text, int | float):
        return float(text)
    cleaned = str(text).replace(",", "").replace("_", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        raise ConfigError("prediction", text, "a number such as 93,322 or 0.5") from None


SHAPE_SEPARATORS = re.compile(r"[\s,x×*]+")


def parse_shape(text: Any) -> tuple[int, ...]:
    """A student's shape: (1, 32, 64), 1x32x64 or [1, 32, 64]."""
    if isinstance(text, tuple | list):
        return tuple(int(n) for n in text)
    inner = str(text).strip().strip("()[]torch.Size")
    parts = [part for part in SHAPE_SEPARATORS.split(inner) if part]
    if not parts or not all(part.isdigit() for part in parts):
        raise ConfigError("prediction", text, "a shape such as (1, 32, 64) or 1x32x64")
    return tuple(int(part) for part in parts)


@dataclass
class Outcome:
    """What a lesson's experiment measured here, and whether the claim held.

    `measured` holds JSON-ready numbers; `series` curves to draw (a title -> {label: values});
    `series_x` each series' x-axis title (step, epoch, time step, ...): where the series holds a
    curve under that name, those are the x values, else the points are numbered from 1;
    `images` small image grids (a title -> array (n, C, H, W) in [0, 1]), for the page only.
    """

    lesson: str
    held: bool
    verdict: str  # one sentence with the numbers
    measured: dict[str, Any] = field(default_factory=dict)
    answer: Any = None  # the prediction's answer, where the experiment measures it
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    series_x: dict[str, str] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    # Each engine run behind it, by label: its stage, state, steps and final metrics (the runner
    # fills it in, so the CLI prints every stage's runs).
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        untitled = sorted(set(self.series) - set(self.series_x))
        if untitled:  # a chart's x axis says what it counts, never "index"
            raise ValueError(f"lesson {self.lesson}: series {untitled} have no series_x title")

    def to_json_dict(self, lesson: Lesson) -> dict[str, Any]:
        return {
            "lesson": self.lesson,
            "title": lesson.title,
            "claim": lesson.claim,
            "source": lesson.source,
            "held": self.held,
            "verdict": self.verdict,
            "measured": self.measured,
            "answer": lesson.prediction.right_answer(self),
            "series": self.series,
            "series_x": self.series_x,
            "runs": self.runs,
        }


@dataclass(frozen=True)
class StagedRun:
    """A second-stage run: its config, and what it takes from a finished first-stage run.

    weights_from: (the first-stage run's label, the parts to take, comma-separated as
    deeparch.engine.checkpointing.WeightsFrom reads them), or None to start from the seed alone.
    """

    config: TrainConfig
    weights_from: tuple[str, str] | None = None


Runs = Callable[[str], dict[str, TrainConfig]]
StagedRuns = Callable[[str], dict[str, StagedRun]]
Judge = Callable[[str, Mapping[str, JobHandle]], Outcome]


def no_runs(budget: str) -> dict[str, TrainConfig]:
    """An exact computation trains nothing through the engine."""
    return {}


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    claim: str  # the claim in our words
    source: str  # a paper, a standard text or the PyTorch documentation
    prediction: Prediction
    judge: Judge
    runs: Runs = no_runs
    # Runs the engine starts once every run of `runs` has finished (None: one stage).
    second_stage: StagedRuns | None = None
    # The one-click run on Train: a TrainConfig's dict (arch, arch_config, training fields).
    setup: dict[str, Any] | None = None
    # An exact computation: the same numbers for everyone, so computed once per server.
    exact: bool = False
    # The Train views the page draws from the lesson's runs beside the verdict
    # (deeparch.lessons.present.VIEWS: weight_histograms, each run's weights over time).
    views: tuple[str, ...] = ()
    # What training this lesson does outside the engine, said plainly (empty: none).
    note: str = ""
    # Where the lesson sits in the course (the numbering); list_lessons() sorts by it.
    position: float = math.inf

    @property
    def family(self) -> str:
        """The module that defines the lesson's judge (counting, convolution, recurrent, ...)."""
        return self.judge.__module__.rpartition(".")[2]

    def setup_config(self) -> TrainConfig | None:
        return None if self.setup is None else TrainConfig.from_dict(self.setup)


_REGISTRY: dict[str, Lesson] = {}


def register(lesson: Lesson) -> Lesson:
    """Add a lesson under its name; its family is the module that defines its judge."""
    if lesson.name in _REGISTRY:
        raise ValueError(f"lesson {lesson.name!r} is registered twice")
    module = lesson.judge.__module__
    if module.rpartition(".")[0] != LESSONS_PACKAGE:
        raise ValueError(f"lesson {lesson.name!r}: define its judge in a {LESSONS_PACKAGE} module")
    _REGISTRY[lesson.name] = lesson
    return lesson


def list_lessons() -> list[str]:
    """Every lesson in course order (its position; ties in registration order)."""
    return sorted(_REGISTRY, key=lambda name: _REGISTRY[name].position)


def get_lesson(name: str) -> Lesson:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("lesson", name, list(_REGISTRY)) from None


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ConfigError("budget", budget, "one of " + ", ".join(BUDGETS))
    return budget
