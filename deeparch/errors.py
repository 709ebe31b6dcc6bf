"""Errors meant for a student: each names the field, the value and what is allowed."""

from __future__ import annotations


class DeeparchError(ValueError):
    """Base class for every error deeparch reports to a person rather than a traceback."""

    def __reduce__(self) -> tuple:
        # Pickled as its class, message and attributes rather than by calling __init__ again (whose
        # arguments differ per subclass), so it crosses into another process (a Ray worker's
        # answer) as the same error with the same field, value and message.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type, args: tuple, attributes: dict) -> DeeparchError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error


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
        message = f"unknown {what} {name!r}"
        if self.known:
            message += f"; known {what}s: {', '.join(self.known)}"
        super().__init__(message)


class UnknownJobError(UnknownNameError):
    """A job id that is not in memory: never started here, or ended and left memory. The ids
    of the jobs that are there are not listed (they belong to other students)."""

    def __init__(self, job_id: str) -> None:
        super().__init__("job", job_id, [])
        self.args = (
            f"unknown job {job_id!r}: no job with this id is in memory (it never ran on this "
            "server, or it ended and left memory; an ended run may be in the run store)",
        )


class DatasetUnavailableError(DeeparchError):
    """A dataset whose files are missing and cannot be downloaded here."""
