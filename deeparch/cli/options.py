"""Command-line options shared by the commands that describe a run (`train`, `export`), and
values checked before use, so an empty one is refused rather than read as unset."""

from __future__ import annotations

import argparse

from deeparch.data import list_datasets
from deeparch.errors import ConfigError


def name_option(flag: str, value: str | None) -> str | None:
    """A --dataset NAME as given (None when the flag is absent); an empty or blank name is an error.

    `--dataset ""` (a shell variable that was not set) would otherwise train on the default set
    without a word.
    """
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(flag, value, "a dataset name: one of " + ", ".join(list_datasets()))
    return value


def add_run_arguments(parser: argparse.ArgumentParser, set_help: str) -> None:
    """ARCH, --dataset and --set KEY=VALUE: what names a run's TrainConfig on any command.

    `set_help` gives examples that fit the command (export takes its training fields as --set
    only, so its examples show some).
    """
    parser.add_argument("arch", metavar="ARCH")
    parser.add_argument("--dataset", default=None, help="default: the architecture's own")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
