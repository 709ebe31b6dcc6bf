"""Errors meant for a student: each names the field, the value and what is allowed."""

from __future__ import annotations


class DeeparchError(ValueError):
    """Base class for every error deeparch reports to a person rather than a traceback."""


class ConfigError(DeeparchError):
    """A hyperparameter, or a combination of them, that cannot work.

    `field` is the config field to point a widget at; `value` what was given; `allowed` a short
    phrase for what would work. The message reads as one sentence a student can act on.
    """

    def __init__(self, field: str, value: object, allowed: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.hint = hint
        message = f"{field}={value!r} is not allowed: {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class UnknownNameError(DeeparchError):
    """A name (architecture, dataset, optimizer, ...) that is not in its registry."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        self.what = what
        self.name = name
        self.known = list(known)
        super().__init__(f"unknown {what} {name!r}; known {what}s: {', '.join(self.known)}")


class DatasetUnavailableError(DeeparchError):
    """A dataset whose files are missing and cannot be downloaded here."""
