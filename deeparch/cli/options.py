"""Command-line values checked before use, so an empty one is refused rather than read as unset."""

from __future__ import annotations

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
