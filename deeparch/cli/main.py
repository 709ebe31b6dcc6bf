"""The command line: list architectures and datasets, summarise a model layer by layer."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from deeparch.cli import export as export_commands
from deeparch.cli import lessons as lesson_commands
from deeparch.cli import train as train_commands
from deeparch.cli.options import name_option
from deeparch.cli.render import print_table, table
from deeparch.config import parse_assignments
from deeparch.data import dataset_info, list_datasets
from deeparch.errors import DeeparchError
from deeparch.introspection.table import dataset_info_for, summarize
from deeparch.models.registry import create_model, get_arch, list_archs

logger = logging.getLogger(__name__)

USAGE_ERROR = 2  # argparse's exit code for bad input; every DeeparchError exits with it too


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _shape_text(shape: Sequence[int] | None) -> str:
    return "" if shape is None else "x".join(str(n) for n in shape)


def _catalogue() -> dict[str, list[dict[str, Any]]]:
    """Every architecture (with its parameter count at defaults) and every dataset."""

    architectures = []
    for name in list_archs():
        spec = get_arch(name)
        try:
            model, _ = create_model(name, None, dataset_info_for(name))
            parameters: int | None = sum(p.numel() for p in model.parameters())
        except DeeparchError as error:
            logger.warning("%s does not build at its defaults: %s", name, error)
            parameters = None
        architectures.append(
            {
                "name": name,
                "family": spec.family,
                "task": spec.task,
                "parameters": parameters,
                "default_dataset": spec.default_dataset,
                "data_kinds": list(spec.data_kinds),
                "description": spec.description,
            }
        )
    datasets = []
    for name in list_datasets():
        info = dataset_info(name)
        datasets.append(
            {
                "name": name,
                "kind": info.kind,
                "shape": list(info.input_shape),
                "classes": info.num_classes,
                "description": info.description,
            }
        )
    return {"architectures": architectures, "datasets": datasets}


def _list_command(args: argparse.Namespace) -> int:
    catalogue = _catalogue()
    if args.format == "json":
        print(json.dumps(catalogue, indent=2))
        return 0
    arch_rows = [
        (
            a["name"],
            a["family"],
            a["task"],
            f"{a['parameters']:,}" if a["parameters"] is not None else "does not build",
            a["default_dataset"],
        )
        for a in catalogue["architectures"]
    ]
    data_rows = [
        (d["name"], d["kind"], _shape_text(d["shape"]), d["classes"]) for d in catalogue["datasets"]
    ]
    print("Architectures")
    print_table(table(("name", "family", "task", "parameters", "default dataset"), arch_rows, {3}))
    print()
    print("Datasets")
    print_table(table(("name", "kind", "shape", "classes"), data_rows, {3}))
    return 0


def _print_summary(summary: Any) -> None:
    # The trainable column only when some parameters are frozen (else it repeats params).
    frozen = summary.trainable_params != summary.total_params
    rows = [
        (
            row.name,
            row.type,
            _shape_text(row.output_shape),
            f"{row.params:,}",
            *((f"{row.trainable:,}",) if frozen else ()),
            f"{row.mult_adds:,}",
            row.formula,
        )
        for row in summary.rows
    ]
    headers = ("layer", "type", "output shape", "params")
    headers += ("trainable",) if frozen else ()
    headers += ("mult-adds", "formula")
    inputs = ", ".join(_shape_text(shape) for shape in summary.input_shapes)
    print(f"{summary.title} on {summary.dataset} (input {inputs}; batch dimension 1)")
    print_table(table(headers, rows, {3, 4, 5} if frozen else {3, 4}))
    print()
    if summary.has_parts:
        # Parts without parameters (flatten, pooling) would only add noise to this line.
        parts = "; ".join(f"{part} {count:,}" for part, count in summary.subtotals.items() if count)
        print(f"parameters per part: {parts}")
    print(
        f"total parameters: {summary.total_params:,} (trainable {summary.trainable_params:,}); "
        f"mult-adds per sample: {summary.total_mult_adds:,}"
    )


def _summary_command(args: argparse.Namespace) -> int:
    overrides = parse_assignments(args.set)
    summary = summarize(
        args.arch, overrides or None, name_option("--dataset", args.dataset), args.freeze or ()
    )
    if args.format == "json":
        print(json.dumps(summary.to_json_dict(), indent=2))
    elif args.format == "csv":
        sys.stdout.write(summary.to_dataframe().to_csv(index=False))
    else:
        _print_summary(summary)
    return 0


# Modules that add commands of their own: each has add_commands(subparsers).
COMMAND_MODULES: tuple = (train_commands, lesson_commands, export_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="deeparch",
        description="Deep architectures to build, inspect and train (the playground's core).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    list_parser = subparsers.add_parser("list", help="architectures and datasets")
    list_parser.add_argument("--format", choices=("table", "json"), default="table")
    list_parser.set_defaults(func=_list_command)

    summary_parser = subparsers.add_parser(
        "summary",
        help="a model layer by layer: shapes, parameters and how they are counted",
        description='ARCH is a registered architecture or "torchvision:<name>", e.g. '
        "torchvision:resnet18 (untrained, on a 3x224x224 image).",
    )
    summary_parser.add_argument("arch", metavar="ARCH")
    summary_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter, e.g. --set channels=16,32 (repeatable)",
    )
    summary_parser.add_argument("--dataset", default=None, help="build for this dataset's shapes")
    summary_parser.add_argument(
        "--freeze",
        default=None,
        metavar="PARTS",
        help="parts counted as frozen (not trainable), comma-separated, e.g. --freeze features",
    )
    summary_parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    summary_parser.set_defaults(func=_summary_command)

    for module in COMMAND_MODULES:
        module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (2 for bad input, with one line on stderr)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a usage error (2), already printed
        code = exit_request.code
        return code if isinstance(code, int) else (0 if code is None else USAGE_ERROR)
    try:
        return int(args.func(args) or 0)
    except DeeparchError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        print(f"deeparch: error: {message}", file=sys.stderr)
        return USAGE_ERROR
