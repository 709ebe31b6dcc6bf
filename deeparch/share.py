"""Share links: a run's settings as URL query parameters, and back, saying what was not used.

A link holds `arch`, `dataset` and only the values that differ from the defaults, the
architecture's own training defaults counted as defaults (`?arch=cnn&dataset=mnist&epochs=2`).
A training field named like one of the architecture's fields travels as `train.<name>`.

Inspect's links use the same codec without training values (`?arch=cnn&channels=8,16`), and
name a torchvision model as `arch=torchvision:googlenet` (`num_classes` its only setting).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from deeparch.config import FieldSpec, check_value, coerce
from deeparch.data.catalogue import dataset_info, list_datasets
from deeparch.engine.config import train_defaults, train_field_specs
from deeparch.errors import ConfigError
from deeparch.introspection.table import TORCHVISION_PREFIX, torchvision_model_names
from deeparch.models import get_arch, list_archs
from deeparch.models.registry import ArchSpec, check_compatible, compatible_datasets

ARCH_KEY = "arch"
DATASET_KEY = "dataset"
TRAIN_KEY_PREFIX = "train."
TORCHVISION_CLASSES = 1000  # torchvision's classifiers default to ImageNet's classes
NUM_CLASSES = FieldSpec(
    name="num_classes",
    type=int,
    default=TORCHVISION_CLASSES,
    help="Classes of the final layer",
    min=1,
    max=100_000,
)


@dataclass
class SharedSettings:
    """What a link asks for: typed values only, and one sentence per parameter it could not use."""

    arch: str | None = None  # None: the link names no known architecture, nothing was used
    dataset: str | None = None  # None: the link names none, or one the architecture cannot use
    arch_values: dict[str, Any] = field(default_factory=dict)
    train_values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def encode(
    arch: str, dataset: str | None, arch_values: Mapping[str, Any], train_values: Mapping[str, Any]
) -> dict[str, str]:
    """The query parameters of a link to these settings: arch, dataset and the changed values."""
    spec = get_arch(arch)
    params = {ARCH_KEY: arch, DATASET_KEY: dataset or spec.default_dataset}
    for arch_field in spec.fields():
        value = arch_values.get(arch_field.name, arch_field.default)
        if value != arch_field.default:
            params[arch_field.name] = as_text(value)
    defaults = train_defaults(arch)
    for train_field in train_field_specs():
        value = train_values.get(train_field.name, defaults[train_field.name])
        if value != defaults[train_field.name]:
            params[train_key(spec, train_field.name)] = as_text(value)
    return params


def link(base_url: str, params: Mapping[str, str]) -> str:
    """The URL of a page with these query parameters (commas kept readable: hidden_sizes=64,32)."""
    return f"{base_url.split('?')[0]}?{urlencode(params, safe=',')}"


def train_key(spec: ArchSpec, name: str) -> str:
    """The parameter that carries training field `name` for this architecture."""
    clashes = name in {arch_field.name for arch_field in spec.fields()}
    return f"{TRAIN_KEY_PREFIX}{name}" if clashes else name


def as_text(value: Any) -> str:
    """A typed value as a link writes it: a tuple of widths as 256,64."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def decode(params: Mapping[str, str]) -> SharedSettings:
    """The settings a link asks for; whatever cannot be used is left out and said in `problems`."""
    params = dict(params)
    if not params:
        return SharedSettings()
    arch = params.pop(ARCH_KEY, None)
    if arch not in list_archs():
        return SharedSettings(problems=[_arch_problem(arch, params)])
    spec = get_arch(arch)
    shared = SharedSettings(arch=arch)
    dataset = params.pop(DATASET_KEY, None)
    if dataset is not None:
        problem = _dataset_problem(spec, dataset)
        if problem:
            shared.problems.append(problem)
        else:
            shared.dataset = dataset
    arch_fields = {arch_field.name: arch_field for arch_field in spec.fields()}
    train_fields = {train_field.name: train_field for train_field in train_field_specs()}
    for key, text in params.items():
        name = key.removeprefix(TRAIN_KEY_PREFIX)
        if key.startswith(TRAIN_KEY_PREFIX) and name in train_fields:
            values, field_spec = shared.train_values, train_fields[name]
        elif key in arch_fields:
            values, field_spec = shared.arch_values, arch_fields[key]
        elif key in train_fields:
            values, field_spec = shared.train_values, train_fields[key]
        else:
            shared.problems.append(_unknown_key_problem(spec, key, text, arch_fields, train_fields))
            continue
        if field_spec.name in values:
            shared.problems.append(
                f"{key}={text!r} sets {field_spec.name} a second time; the first value was used"
            )
            continue
        try:
            values[field_spec.name] = typed_value(field_spec, key, text)
        except ConfigError as error:
            shared.problems.append(str(error))
    return shared


def encode_inspect(
    arch: str, dataset: str | None, arch_values: Mapping[str, Any]
) -> dict[str, str]:
    """An Inspect link: the architecture, its dataset and changed values (no training values);
    a torchvision model as torchvision:<name> with num_classes where it differs from 1000."""
    if arch.startswith(TORCHVISION_PREFIX):
        params = {ARCH_KEY: arch}
        classes = arch_values.get(NUM_CLASSES.name, NUM_CLASSES.default)
        if classes != NUM_CLASSES.default:
            params[NUM_CLASSES.name] = as_text(classes)
        return params
    return encode(arch, dataset, arch_values, train_defaults(arch))


def decode_inspect(params: Mapping[str, str]) -> SharedSettings:
    """What an Inspect link asks for; a training value is said to be unused, like a wrong one."""
    params = dict(params)
    arch = params.get(ARCH_KEY) or ""
    if not arch.startswith(TORCHVISION_PREFIX):
        shared = decode(params)
        for name, value in shared.train_values.items():
            shared.problems.append(
                f"{name}={as_text(value)!r} is a training setting: Inspect shows the architecture "
                "alone (open the Train page to use it)"
            )
        shared.train_values = {}
        return shared
    params.pop(ARCH_KEY)
    model = arch.removeprefix(TORCHVISION_PREFIX)
    known = torchvision_model_names()
    if model not in known:
        problem = (
            f"torchvision model {model!r} is unknown{_did_you_mean(model, known)}; "
            f"torchvision builds {len(known)} classifiers, e.g. resnet18, googlenet, vgg16"
        )
        return SharedSettings(problems=[problem])
    shared = SharedSettings(arch=arch)
    for key, text in params.items():
        if key == NUM_CLASSES.name:
            try:
                shared.arch_values[key] = typed_value(NUM_CLASSES, key, text)
            except ConfigError as error:
                shared.problems.append(str(error))
        else:
            shared.problems.append(
                f"{key}={text!r} is not a setting of a torchvision model: only num_classes is"
            )
    return shared


def typed_value(field_spec: FieldSpec, key: str, text: str) -> Any:
    """A link's text as the field's type within its bounds; ConfigError quotes the key and text."""
    try:
        value = coerce(field_spec, text)
        check_value(field_spec, value)
    except ConfigError as error:
        raise ConfigError(key, text, error.allowed, error.hint) from None
    return value


def _arch_problem(arch: str | None, others: Mapping[str, str]) -> str:
    known = list_archs()
    if arch is None:
        problem = f"the link names no arch; add arch=<one of {', '.join(known)}>"
    else:
        problem = f"arch {arch!r} is unknown{_did_you_mean(arch, known)}; known: {', '.join(known)}"
    if others:
        problem += f"; the link's other settings were not used ({_listed(others)})"
    return problem


def _dataset_problem(spec: ArchSpec, dataset: str) -> str | None:
    usable = compatible_datasets(spec)
    if dataset in usable:
        return None
    choose = f"{spec.name} trains on: {', '.join(usable)}"
    if dataset not in list_datasets():
        return f"dataset {dataset!r} is unknown{_did_you_mean(dataset, usable)}; {choose}"
    try:
        check_compatible(spec, dataset_info(dataset))
    except ConfigError as error:
        return f"dataset {dataset!r} does not suit {spec.name} ({error.allowed}); {choose}"
    return f"dataset {dataset!r} does not suit {spec.name}; {choose}"


def _unknown_key_problem(
    spec: ArchSpec,
    key: str,
    text: str,
    arch_fields: Mapping[str, FieldSpec],
    train_fields: Mapping[str, FieldSpec],
) -> str:
    candidates = [*arch_fields, *train_fields]
    return (
        f"{key}={text!r} is not a setting{_did_you_mean(key, candidates)}: {spec.name} has "
        f"{', '.join(arch_fields) or 'no settings of its own'}; training has "
        f"{', '.join(train_fields)}"
    )


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listed(params: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={text!r}" for key, text in params.items())


# ---- lessons and comparisons ----------------------------------------------------------------

LESSON_KEY = "lesson"
RUN_PREFIX = "run"  # run1.arch=resnet&run1.blocks_per_stage=6&run2.arch=plainnet&...
MAX_SHARED_RUNS = 8


def encode_lesson(name: str) -> dict[str, str]:
    """The query parameters that open one lesson (?lesson=residual_learning)."""
    return {LESSON_KEY: name}


def decode_lesson(params: Mapping[str, str], known: list[str]) -> tuple[str | None, list[str]]:
    """The lesson a link names, if it is one of `known`; else None and a sentence saying why."""
    name = params.get(LESSON_KEY)
    if name is None:
        return None, []
    if name in known:
        return name, []
    return None, [
        f"lesson {name!r} is unknown{_did_you_mean(name, known)}; known: {', '.join(known)}"
    ]


def encode_runs(configs: list[Mapping[str, Any]]) -> dict[str, str]:
    """One link to several runs (TrainConfig dicts): each run's own link, keys prefixed runN."""
    if not 1 <= len(configs) <= MAX_SHARED_RUNS:
        raise ConfigError("runs", len(configs), f"from 1 to {MAX_SHARED_RUNS} runs in one link")
    params: dict[str, str] = {}
    for index, config in enumerate(configs, start=1):
        values = dict(config)
        arch, dataset = values.pop("arch"), values.pop("dataset", None)
        arch_values = values.pop("arch_config", {}) or {}
        one = encode(arch, dataset, arch_values, values)
        params.update({f"{RUN_PREFIX}{index}.{key}": text for key, text in one.items()})
    return params


def decode_runs(params: Mapping[str, str]) -> tuple[list[SharedSettings], list[str]]:
    """The runs a comparison link asks for, in order, each decoded as a one-run link; problems
    name the run they belong to. Keys that are not runN.<key> are left for others to read."""
    grouped: dict[int, dict[str, str]] = {}
    problems: list[str] = []
    for key, text in params.items():
        head, dot, rest = key.partition(".")
        number = head.removeprefix(RUN_PREFIX)
        if not (dot and head.startswith(RUN_PREFIX) and number.isdigit()):
            continue
        index = int(number)
        if not 1 <= index <= MAX_SHARED_RUNS:
            problems.append(f"{key}={text!r}: a link holds runs 1 to {MAX_SHARED_RUNS}")
            continue
        grouped.setdefault(index, {})[rest] = text
    runs = []
    for index in sorted(grouped):
        shared = decode(grouped[index])
        problems.extend(f"run {index}: {problem}" for problem in shared.problems)
        if shared.arch is not None:
            runs.append(shared)
    return runs, problems
