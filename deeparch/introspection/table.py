"""Per-layer tables of any model: shapes, parameter counts and their formulas, mult-adds, fields."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import nn

from deeparch.config import config_to_dict
from deeparch.data import dataset_info
from deeparch.data.info import TOKEN_KINDS, DataInfo
from deeparch.errors import ConfigError, UnknownNameError
from deeparch.introspection import formulas
from deeparch.introspection.convmath import receptive_field
from deeparch.models.parts import freeze_parts
from deeparch.models.registry import create_model, get_arch

logger = logging.getLogger(__name__)

TORCHVISION_PREFIX = "torchvision:"
TORCHVISION_INPUT_SHAPE = (3, 224, 224)
ROOT_LABEL = "(model)"  # name and part of parameters held by the model object itself

# The columns of a table row (to_dicts, to_dataframe); the detail panel's data stays out of them.
ROW_FIELDS = "name type output_shape params trainable mult_adds formula part depth".split()

# One forward pass to record: takes the model, runs (part of) it on an example input.
Run = Callable[[nn.Module], object]


@dataclass
class LayerRow:
    """One layer as the table shows it. Shapes include the batch dimension, which is 1."""

    name: str  # module path, e.g. "encoder.0" or "conv1"
    type: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...] | None  # None: the layer never ran in the dry run
    params: int  # its own parameters (children have their own rows), each counted once
    trainable: int
    mult_adds: int  # per sample, summed over every call (a cell called T times counts T times)
    formula: str  # how `params` arises, e.g. "32x(1x3x3)+32 = 320"
    part: str  # top-level child it belongs to (generator, encoder, conv1, ...)
    depth: int  # 1 for top-level children, 2 for their children, ...
    detail: dict[str, Any] = field(default_factory=dict)  # the layer-detail panel

    def to_dict(self, detail: bool = False) -> dict[str, Any]:
        row = {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "trainable": self.trainable,
            "mult_adds": self.mult_adds,
            "formula": self.formula,
            "part": self.part,
            "depth": self.depth,
        }
        if detail:
            row["detail"] = self.detail
        return row


@dataclass
class LayerTable:
    """The rows of a model plus totals; `total_params` equals sum(p.numel()) over the model."""

    title: str
    rows: list[LayerRow]
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  # one per dry-run pass
    dataset: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a reader of the counts should know

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(row.trainable for row in self.rows)

    @property
    def total_mult_adds(self) -> int:
        return sum(row.mult_adds for row in self.rows)

    @property
    def parts(self) -> list[str]:
        return list(dict.fromkeys(row.part for row in self.rows))

    @property
    def subtotals(self) -> dict[str, int]:
        """Parameters per part, in the order the parts first run; they sum to total_params."""
        totals = dict.fromkeys(self.parts, 0)
        for row in self.rows:
            totals[row.part] += row.params
        return totals

    @property
    def has_parts(self) -> bool:
        """Whether parts group several layers (encoder/decoder), so subtotals are worth showing."""
        return any(row.depth > 1 for row in self.rows)

    def to_dicts(self, detail: bool = False) -> list[dict[str, Any]]:
        return [row.to_dict(detail) for row in self.rows]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per layer, shapes as text (so it displays anywhere)."""
        import pandas as pd

        records = self.to_dicts()
        for record in records:
            shape = record["output_shape"]
            record["output_shape"] = "" if shape is None else "x".join(str(n) for n in shape)
        return pd.DataFrame.from_records(records, columns=ROW_FIELDS)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "arch": self.title,
            "dataset": self.dataset,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_mult_adds": self.total_mult_adds,
            "subtotals": self.subtotals,
            "layers": [
                {key: value for key, value in row.items() if key != "depth"}
                for row in self.to_dicts()
            ],
        }


@dataclass
class _Seen:
    """What the hooks saw of one module over the dry run."""

    order: int
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    output_shapes: object
    calls: int = 0
    mult_adds: float = 0.0
    field_path: formulas.FieldState = None
    shape_changed: bool = False  # a later call gave another shape (a decoder's growing output)


class _Recorder:
    """Hooks on every module: shapes, calls and mult-adds of the row candidates, and fields."""

    def __init__(self, model: nn.Module) -> None:
        self.seen: dict[str, _Seen] = {}
        self.batch_size = 1
        self.run_input_shapes: list[tuple[int, ...]] = []  # the outermost input of each pass
        self._run_input_seen = False
        self._fields = formulas.FieldTracker()
        self._handles = []
        for name, module in model.named_modules():
            is_leaf = next(module.children(), None) is None
            # Rows: leaves, and containers that hold parameters themselves.
            is_row = is_leaf or next(module.parameters(recurse=False), None) is not None
            self._handles.append(module.register_forward_pre_hook(self._pre_hook))
            self._handles.append(
                module.register_forward_hook(self._make_hook(name, is_leaf, is_row))
            )

    def start_run(self, batch_size: int) -> None:
        # Each pass (a GAN's generator, then its discriminator) starts from a fresh input.
        self.batch_size = batch_size
        self._fields.reset()
        self._run_input_seen = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre_hook(self, module: nn.Module, inputs: tuple) -> None:
        tensor = formulas.first_tensor(inputs[0] if inputs else None)
        if tensor is not None and not self._run_input_seen:
            self._run_input_seen = True
            self.run_input_shapes.append(tuple(tensor.shape))
        self._fields.enter(inputs)

    def _make_hook(self, name: str, is_leaf: bool, is_row: bool) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            state = self._fields.leave(module, inputs, output, is_leaf)
            if not is_row:
                return
            input_tensor = formulas.first_tensor(inputs[0] if inputs else None)
            output_tensor = formulas.first_tensor(output)
            input_shape = tuple(input_tensor.shape) if input_tensor is not None else None
            output_shape = tuple(output_tensor.shape) if output_tensor is not None else None
            seen = self.seen.get(name)
            if seen is None:
                seen = self.seen[name] = _Seen(
                    order=len(self.seen),
                    input_shape=input_shape,
                    output_shape=output_shape,
                    output_shapes=formulas.tensor_shapes(output),
                    field_path=state,
                )
            elif output_shape != seen.output_shape:
                # The last call's shapes: a greedy decoder re-reads all its tokens on each step,
                # so its last call is the whole output sequence, not the first step's token.
                seen.input_shape, seen.output_shape = input_shape, output_shape
                seen.output_shapes = formulas.tensor_shapes(output)
                seen.shape_changed = True
            seen.calls += 1
            seen.mult_adds += formulas.mult_adds(module, inputs, output) / self.batch_size

        return hook


def _pytorch_line(module: nn.Module) -> str:
    text = repr(module)
    if "\n" in text:  # a module with children: its constructor line alone
        text = f"{type(module).__name__}(...)"
    if type(module).__module__.startswith("torch.nn"):
        text = "nn." + text
    return text


def _detail(module: nn.Module, seen: _Seen | None) -> dict[str, Any]:
    shapes = {name: list(p.shape) for name, p in module.named_parameters(recurse=False)}
    detail: dict[str, Any] = {
        "code": _pytorch_line(module),
        "parameter_shapes": shapes,
        "weight_shape": shapes.get("weight"),
        "bias_shape": shapes.get("bias"),
        "input_shape": list(seen.input_shape) if seen and seen.input_shape else None,
        "output_shapes": seen.output_shapes if seen else None,
        "calls": seen.calls if seen else 0,
    }
    if isinstance(module, nn.modules.conv._ConvNd):
        for key in ("kernel_size", "stride", "padding", "dilation", "groups"):
            value = getattr(module, key)
            detail[key] = list(value) if isinstance(value, tuple) else value
    if formulas.is_windowed(module):
        path = seen.field_path if seen else None
        # None: the field is the whole input (after a dense or recurrent layer) or is not modelled.
        fields = [receptive_field(axis) for axis in path] if path else None
        detail["receptive_field"] = [size for size, _ in fields] if fields else None
        detail["jump"] = [jump for _, jump in fields] if fields else None
    legend = formulas.recurrent_legend(module)
    if legend:
        detail["formula_legend"] = legend
    return detail


def layer_table(
    model: nn.Module,
    example: torch.Tensor | Sequence[int] | Sequence[Run],
    title: str = "",
) -> LayerTable:
    """Dry-run a model under no_grad with hooks and tabulate its layers.

    `example` is an input tensor (batch included), a sample shape (a float batch of 1 is made), or
    a list of runs `run(model)`, each a separate forward pass on a batch of 1 (a GAN's generator
    and discriminator). The model's train/eval modes are restored afterwards.
    """
    runs: list[tuple[Run, int]]
    if isinstance(example, torch.Tensor):
        runs = [(lambda m, x=example: m(x), example.shape[0])]
    elif len(example) > 0 and all(isinstance(n, int) for n in example):
        device = next(model.parameters(), torch.empty(0)).device
        batch = torch.rand(1, *example, device=device)
        runs = [(lambda m, x=batch: m(x), 1)]
    else:
        runs = [(run, 1) for run in example]

    modes = {module: module.training for module in model.modules()}
    recorder = _Recorder(model)
    try:
        model.eval()  # BatchNorm in training mode refuses a batch of 1; dropout would be random
        with torch.no_grad():
            for run, batch_size in runs:
                recorder.start_run(batch_size)
                run(model)
    finally:
        recorder.remove()
        for module, training in modes.items():
            module.training = training
    rows = _rows(model, recorder.seen)
    table = LayerTable(
        title=title or type(model).__name__, rows=rows, input_shapes=recorder.run_input_shapes
    )
    changed = [
        f"{name} ({seen.calls} calls)" for name, seen in recorder.seen.items() if seen.shape_changed
    ]
    if changed:
        table.notes.append(
            "Called more than once in one forward pass with growing input: "
            + ", ".join(changed)
            + ". Their shapes are their last call's (the whole output sequence); their "
            "mult-adds add up every call."
        )
    return table


def _part(model: nn.Module, name: str) -> str:
    """The part a layer belongs to: its top-level child, or the group the model names for it.

    A model may set `inspector_parts` ({child: part}) so that, e.g., a VAE's mu and logvar
    heads count towards its encoder.
    """
    if not name:
        return ROOT_LABEL
    top = name.split(".")[0]
    return getattr(model, "inspector_parts", {}).get(top, top)


def _rows(model: nn.Module, seen: dict[str, _Seen]) -> list[LayerRow]:
    modules = dict(model.named_modules())
    ran = sorted(seen, key=lambda name: seen[name].order)
    never_ran = [
        name
        for name, module in modules.items()
        if name not in seen and next(module.parameters(recurse=False), None) is not None
    ]
    counted: set[int] = set()
    rows = []
    for name in ran + never_ran:
        module = modules[name]
        params = trainable = 0
        shared = []
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in counted:
                shared.append(param_name)  # tied weights: counted at the layer that came first
                continue
            counted.add(id(param))
            params += param.numel()
            trainable += param.numel() if param.requires_grad else 0
        formula = formulas.parameter_formula(module)
        if shared:
            formula += f" (shares {', '.join(shared)} with an earlier layer; counted there)"
        record = seen.get(name)
        rows.append(
            LayerRow(
                name=name or ROOT_LABEL,
                type=type(module).__name__,
                output_shape=record.output_shape if record else None,
                params=params,
                trainable=trainable,
                mult_adds=round(record.mult_adds) if record else 0,
                formula=formula,
                part=_part(model, name),
                depth=name.count(".") + 1 if name else 0,
                detail=_detail(module, record),
            )
        )
    return rows


def dataset_info_for(arch_name: str, dataset: str | None = None) -> DataInfo:
    """The DataInfo an architecture is built for (its default dataset unless named); no loading."""
    return dataset_info(dataset or get_arch(arch_name).default_dataset)


def example_input(info: DataInfo, batch_size: int = 1) -> torch.Tensor:
    """A deterministic input batch of the dataset's kind: floats, or long token ids."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, *info.input_shape)
    if info.kind in TOKEN_KINDS:
        return torch.randint(0, max(info.vocab_size, 1), shape, generator=generator)
    if info.kind == "image":
        return torch.rand(shape, generator=generator)
    return torch.randn(shape, generator=generator)


def gan_example_inputs(model: nn.Module, info: DataInfo) -> dict[str, tuple[torch.Tensor, ...]]:
    """The inputs of each GAN part on its own: the generator's noise, the discriminator's images
    in [-1, 1] (the engine maps data [0, 1] there), each with a class label when conditional."""
    labels = (torch.zeros(1, dtype=torch.long),) if model.conditional else ()
    return {
        "generator": (model.sample_noise(1), *labels),
        "discriminator": (example_input(info) * 2 - 1, *labels),
    }


def _gan_runs(info: DataInfo) -> list[Run]:
    """The generator on noise, then the discriminator on an image in [-1, 1], each on its own."""

    def run_part(part: str) -> Run:
        def run(model: nn.Module) -> object:
            return getattr(model, part)(*gan_example_inputs(model, info)[part])

        return run

    return [run_part("generator"), run_part("discriminator")]


def summarize(
    arch_name: str,
    overrides: dict[str, Any] | None = None,
    dataset: str | None = None,
    freeze: str | Sequence[str] = (),
) -> LayerTable:
    """The layer table of a registered architecture, or of "torchvision:<name>"; the parts named
    in `freeze` count as not trainable (the trainable column and total)."""
    if arch_name.startswith(TORCHVISION_PREFIX):
        return summarize_torchvision(arch_name[len(TORCHVISION_PREFIX) :], overrides, dataset)
    spec = get_arch(arch_name)
    info = dataset_info_for(arch_name, dataset)
    model, config = create_model(arch_name, overrides, info)
    freeze_parts(model, freeze)
    runs = _gan_runs(info) if spec.task == "gan" else [example_input(info)]
    table = layer_table(model, runs[0] if len(runs) == 1 else runs, title=arch_name)
    table.dataset = info.name
    table.config = config_to_dict(config)
    return table


summarize_arch = summarize  # the name CONTRACTS.md uses


def torchvision_model_names() -> list[str]:
    """Classification models torchvision can build (weights are never downloaded here)."""
    from torchvision import models

    return sorted(models.list_models(module=models))


def torchvision_module(model_name: str) -> ModuleType:
    """The torchvision module whose code builds the model (its source is worth reading)."""
    from torchvision import models

    return sys.modules[models.get_model_builder(model_name).__module__]


def torchvision_published_params(model_name: str) -> int | None:
    """The parameter count torchvision publishes with the model's default weights (their
    metadata, read without downloading them); None for a model published without weights."""
    from torchvision import models

    try:
        weights = models.get_model_weights(model_name)
    except (KeyError, ValueError):
        return None
    return int(weights.DEFAULT.meta["num_params"])


def summarize_torchvision(
    model_name: str,
    overrides: dict[str, Any] | None = None,
    dataset: str | None = None,
    max_params: int | None = None,
) -> LayerTable:
    """A torchvision classification model, untrained (weights=None), on one 3x224x224 image.

    max_params refuses, before building, a model whose published count is larger (a shared
    server builds every student's choice in its own memory).
    """
    from torchvision import models

    known = torchvision_model_names()
    if model_name not in known:
        few = [
            n for n in ("alexnet", "resnet18", "resnet50", "vgg16", "mobilenet_v2") if n in known
        ]
        raise UnknownNameError(
            "torchvision model", model_name, few + [f"... ({len(known)} in all)"]
        )
    if dataset:
        raise ConfigError(
            "dataset", dataset, "none: torchvision models are summarised on ImageNet-sized input"
        )
    kwargs: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key != "num_classes":
            raise ConfigError(key, value, "only num_classes can be set for a torchvision model")
        try:
            kwargs["num_classes"] = int(value)
        except (TypeError, ValueError):
            kwargs["num_classes"] = 0
        if kwargs["num_classes"] < 1:
            raise ConfigError("num_classes", value, "an integer of at least 1")
    published = torchvision_published_params(model_name)
    if max_params is not None and published is not None and published > max_params:
        raise ConfigError(
            "torchvision model",
            model_name,
            f"a model of at most {max_params:,} parameters on this server",
            f"{model_name} has {published:,}",
        )
    model = models.get_model(model_name, weights=None, **kwargs)
    table = layer_table(model, TORCHVISION_INPUT_SHAPE, title=TORCHVISION_PREFIX + model_name)
    table.dataset = "imagenet-shaped input (3x224x224)"
    table.config = kwargs
    if published is not None and kwargs.get("num_classes", 1000) == 1000:
        note = builder_parts_note(table, model_name, published)
        if note:
            table.notes.append(note)
    return table


def builder_parts_note(table: LayerTable, model_name: str, published: int) -> str | None:
    """Why the count differs from torchvision's published one, where it does.

    Built without weights, some builders add parts their published weights leave out: googlenet
    keeps its two auxiliary classifiers (aux1, aux2), which only run in training. Such parts are
    top-level children the dry run never called.
    """
    total = table.total_params
    if total == published:
        return None
    called: dict[str, bool] = {}
    counts: dict[str, int] = {}
    for row in table.rows:
        called[row.part] = called.get(row.part, False) or bool(row.detail.get("calls"))
        counts[row.part] = counts.get(row.part, 0) + row.params
    unused = [part for part, ran in called.items() if not ran and counts[part]]
    extra = sum(counts[part] for part in unused)
    built = f"torchvision's {model_name} built without weights has {total:,} parameters"
    if unused and total - extra == published:
        return (
            f"{built}: it adds {', '.join(unused)} ({extra:,} parameters, used only in training),"
            f" which the published count of {published:,} leaves out"
        )
    return f"{built}; torchvision publishes {published:,} for its weights"
