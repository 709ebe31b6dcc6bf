"""Class settings: how one server shares itself among a class, in one documented place.

Read once at startup from, in order of precedence: environment variables (DEEPARCH_<NAME>, e.g.
DEEPARCH_MAX_RUNNING=4), the TOML file named by DEEPARCH_SETTINGS (a `[class]` table, keys as
the field names below), then the defaults. Every field is declared with hp(), so its bounds and
its reason live beside it; a bad value is one ConfigError naming the variable or file key, the
value and what is allowed, raised at startup, never a page failing later.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeparch.config import coerce, field_specs, hp, make_config
from deeparch.errors import ConfigError

ENV_PREFIX = "DEEPARCH_"
SETTINGS_FILE_VARIABLE = "DEEPARCH_SETTINGS"
TOML_TABLE = "class"
# Old names kept working: DEEPARCH_MAX_JOBS was the first name of max_running. It counted jobs
# (0 did not mean "automatic" then), so it must be 1 or more.
ENV_ALIASES = {"DEEPARCH_MAX_JOBS": "max_running"}
ALIAS_MINIMUM = {"DEEPARCH_MAX_JOBS": 1}
# A lesson's budgets (deeparch.lessons.registry.BUDGETS is this tuple; the lessons import the
# settings, never the other way round).
LESSON_BUDGETS = ("ci", "full")


@dataclass(frozen=True)
class ClassSettings:
    """What a teacher sets for a class on one server (or a cluster)."""

    backend: str = hp(
        "threads",
        "Where jobs train: threads of the web server's process, or actors on a Ray cluster",
        choices=("threads", "ray"),
    )
    max_running: int = hp(
        0,
        "Jobs admitted to train at once in the whole class (0: 32 taking turns on the thread "
        "backend; on Ray, the cluster's CPUs over ray_cpus_per_job, times ray_jobs_per_worker)",
        min=0,
        max=1024,
    )
    jobs_per_student: int = hp(
        1,
        "Jobs one browser session may have training at once; more wait behind its own",
        min=1,
        max=32,
    )
    queue_per_student: int = hp(
        2,
        "Jobs one browser session may have waiting besides those training; Start is refused beyond",
        min=0,
        max=32,
    )
    slice_s: float = hp(
        0.5,
        "Seconds a job trains before the next admitted job takes its turn on the cores "
        "(0: a job keeps the cores until it ends)",
        min=0.0,
        max=60.0,
    )
    heartbeat_s: float = hp(
        60.0,
        "Seconds without a look from its tab before a job is stopped (0: never)",
        min=0.0,
        max=86_400.0,
    )
    max_epochs: int = hp(200, "The most epochs a student may start", min=1, max=1000)
    max_width: int = hp(
        4096, "The widest layer (units or channels) a student may ask for", min=1, max=65_536
    )
    max_depth: int = hp(
        16, "The most entries in a list of layer widths (hidden_sizes, channels)", min=1, max=256
    )
    max_parameters: int = hp(
        30_000_000,
        "The most parameters one job's model may have (cgan at its defaults: 2,965,209)",
        min=1_000,
        max=2_000_000_000,
    )
    runs_in_memory: int = hp(
        3,
        "Ended runs per session kept in memory; older ones live only in the run store on disk",
        min=1,
        max=100,
    )
    ended_runs_mb: int = hp(
        100,
        "MB of ended runs (their snapshots and curves; weights stay in the run store) the server "
        "keeps in memory for all sessions together; the oldest leave first, each open session's "
        "newest stays",
        min=1,
        max=1_000_000,
    )
    run_store: str = hp("runs", "Folder of the run store (relative to the working directory)")
    lesson_budget: str = hp(
        "full",
        "The budget the Lessons page runs each lesson at: full shows the claim with a margin; "
        "ci is the test suite's, minutes shorter, for a slow machine or a short class",
        choices=LESSON_BUDGETS,
    )
    teacher_password: str = hp(
        "", "Shows the Teacher page to whoever enters it; empty: no Teacher page"
    )
    ray_address: str = hp("", "An existing Ray cluster to join (empty: start a local one)")
    ray_cpus_per_job: float = hp(
        1.0,
        "CPU cores Ray reserves for each worker, whose jobs take turns on them "
        "(ray_jobs_per_worker)",
        min=0.0,
        max=256.0,
    )
    ray_gpus_per_job: float = hp(
        0.0, "GPUs Ray reserves for each job (fractions share one)", min=0.0, max=16.0
    )
    # 16: measured on 2 cores (README, "Beyond one machine: Ray"), thirty students training on
    # two workers took turns at 1.12x one job alone, where one job a worker would queue 28.
    ray_jobs_per_worker: int = hp(
        16,
        "Jobs one Ray worker trains, taking turns of slice_s on the CPUs and GPUs it reserves "
        "(ray_cpus_per_job, ray_gpus_per_job); 1: one job a worker, the others queue",
        min=1,
        max=64,
    )

    def to_dict(self) -> dict[str, Any]:
        """Every setting; the password only as whether one is set."""
        values = dataclasses.asdict(self)
        values["teacher_password"] = "set" if self.teacher_password else ""
        return values


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            SETTINGS_FILE_VARIABLE, str(path), "the path of an existing TOML file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(SETTINGS_FILE_VARIABLE, str(path), "a TOML file, not a folder") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(
            SETTINGS_FILE_VARIABLE, str(path), f"a readable TOML file ({error})"
        ) from None
    table = document.get(TOML_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{TOML_TABLE}]", table, "a table of settings")
    return table


def load_settings(environ: dict[str, str] | None = None) -> ClassSettings:
    """The class settings from the environment and the settings file (see the module's doc)."""
    environ = dict(os.environ if environ is None else environ)
    specs = {spec.name: spec for spec in field_specs(ClassSettings)}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_name = environ.get(SETTINGS_FILE_VARIABLE)
    if file_name:
        path = Path(file_name).expanduser()
        for key, value in _from_file(path).items():
            if key not in specs:
                raise ConfigError(f"{path}: {key}", value, "a known setting: " + ", ".join(specs))
            values[key], sources[key] = value, f"{path}: {key}"
    variables = {env_name(name): name for name in specs} | ENV_ALIASES
    for variable, name in variables.items():
        if variable in environ:
            values[name], sources[name] = environ[variable], variable
    typed: dict[str, Any] = {}
    for name, value in values.items():
        minimum = ALIAS_MINIMUM.get(sources[name])
        # An old name allows less than its field (DEEPARCH_MAX_JOBS: not 0), and says so both
        # for a value out of its range and for one that is not a number at all.
        alias_allowed = (
            f"an integer from {minimum} to {specs[name].max} (or {env_name(name)}=0 for "
            "the automatic number)"
        )
        try:
            typed[name] = coerce(specs[name], value)
        except ConfigError as error:
            allowed = error.allowed if minimum is None else alias_allowed
            raise ConfigError(sources[name], value, allowed) from None
        if minimum is not None and typed[name] < minimum:
            raise ConfigError(sources[name], value, alias_allowed)
    try:
        return make_config(ClassSettings, typed)
    except ConfigError as error:
        source = sources.get(error.field, error.field)
        raise ConfigError(source, error.value, error.allowed, error.hint) from None
