"""The lesson commands of `python -m deeparch`: list the lessons, run one and print its outcome."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from deeparch.cli.render import print_table, table
from deeparch.lessons import get_lesson, list_lessons
from deeparch.lessons.registry import BUDGETS
from deeparch.lessons.runner import run_lesson

# Exit codes of `lesson run`: 0 the claim held here, 1 it did not (2 is bad input, as everywhere).
EXIT_NOT_HELD = 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    lesson = subparsers.add_parser(
        "lesson", help="the course's claims as experiments that check themselves"
    )
    commands = lesson.add_subparsers(dest="lesson_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every lesson with its claim and source")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=list_command)
    run = commands.add_parser(
        "run",
        help="run a lesson's experiment and print the outcome as JSON (exit 0: the claim held)",
    )
    run.add_argument("name", metavar="NAME")
    run.add_argument(
        "--budget", choices=BUDGETS, default="full",
        help="ci: seconds, as the tests run it; full: as the Lessons page runs it",
    )  # fmt: skip
    run.set_defaults(func=run_command)


def lesson_entry(name: str) -> dict[str, Any]:
    lesson = get_lesson(name)
    prediction = lesson.prediction
    return {
        "name": lesson.name,
        "position": None if math.isinf(lesson.position) else lesson.position,
        "family": lesson.family,
        "title": lesson.title,
        "claim": lesson.claim,
        "source": lesson.source,
        "prediction": {
            "kind": prediction.kind,
            "question": prediction.question,
            "choices": list(prediction.choices),
        },  # fmt: skip
        "trains_with_engine": bool(lesson.runs("ci")),
        "stages": 1 if lesson.second_stage is None else 2,
        "exact": lesson.exact,
        "setup": lesson.setup,
        "note": lesson.note,
    }


def list_command(args: argparse.Namespace) -> int:
    entries = [lesson_entry(name) for name in list_lessons()]
    if args.format == "json":
        print(json.dumps(entries, indent=2))
        return 0
    rows = [(e["position"] or "", e["name"], e["family"], e["title"]) for e in entries]
    print_table(table(("#", "name", "family", "title"), rows, {0}))
    return 0


def run_command(args: argparse.Namespace) -> int:
    lesson = get_lesson(args.name)
    outcome = run_lesson(lesson.name, args.budget)
    print(json.dumps(outcome.to_json_dict(lesson), indent=2, default=json_default))
    return 0 if outcome.held else EXIT_NOT_HELD


def json_default(value: Any) -> Any:
    """Tuples are lists already; numpy scalars and arrays become numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")
