"""A checkpoint's optimizer state: written as tensors plus JSON, read back only once all of it is
checked, because PyTorch believes what it is given.

torch.optim.Optimizer.load_state_dict maps saved state onto parameters through the saved `params`
numbers and casts each state tensor to its parameter's dtype; a fused kernel then updates parameter
and state element by element. An edited number or shape makes it read and write past the end of a
tensor (the process crashes, or memory is silently overwritten), so nothing reaches PyTorch
unchecked:

- reading the file (`check_optimizer_tensors`, with checkpoint.meta for the JSON): each state
  tensor named for an optimizer and a parameter the description has, of a numeric dtype, step
  counts whole numbers from 0 to the run's step, running squares never negative;
- restoring into a built model's optimizers (`restore_optimizers`): as many groups and parameters,
  each state tensor of its parameter's shape and dtype, each parameter's state with exactly the
  entries this optimizer keeps. The optimizer keeps the hyperparameters it was built with (the
  run's TrainConfig) and the saved parameter numbering is never used, so `--resume CKPT --lr 0.01`
  trains on at lr 0.01 with the checkpoint's moments.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeparch.errors import DeeparchError

OPTIMIZER_PREFIX = "optimizer/"
# Optimizer state entries that hold one number for a whole parameter tensor, not one per element.
SCALAR_STATE_KEYS = ("step",)
# Running averages of squared gradients (Adam, RMSprop, Adadelta), of squared updates (Adadelta's
# acc_delta) and their sums (Adagrad): square-rooted in every step, so a negative one turns the
# update into NaN. A real run never has one.
NON_NEGATIVE_STATE_KEYS = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "acc_delta", "sum")
EDITED = "the optimizer state was edited or damaged"


class CheckpointMismatchError(DeeparchError):
    """A checkpoint that does not fit the model and optimizers it is restored into.

    Raised after the file was read, where its path is no longer known: the command line and the
    upload put the file's name in front of the message.
    """


def optimizer_state(
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as (tensors for safetensors, JSON-ready scalars and parameter groups)."""
    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, Any] = {}
    for name, optimizer in optimizers.items():
        state_dict = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entries in state_dict["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{OPTIMIZER_PREFIX}{name}/{index}/{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        groups = [
            {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
            for group in state_dict["param_groups"]
        ]
        described[name] = {"param_groups": groups, "scalars": scalars}
    return tensors, described


def parameter_count(described: dict[str, Any]) -> int:
    """How many parameters an optimizer's description numbers (checkpoint.meta checked them)."""
    return sum(len(group["params"]) for group in described["param_groups"])


def _damaged(source: Path, problem: str) -> DeeparchError:
    return DeeparchError(f"{source} is damaged: {problem}; save or download it again")


def _split_key(key: str, source: Path) -> tuple[str, int, str]:
    """(optimizer name, parameter index, entry) of `optimizer/<name>/<index>/<entry>`."""
    name, _, rest = key[len(OPTIMIZER_PREFIX) :].partition("/")
    index_text, _, entry = rest.partition("/")
    if not name or not index_text.isdigit() or not entry or "/" in entry:
        raise _damaged(
            source,
            f"its tensor {key!r} is not named {OPTIMIZER_PREFIX}<optimizer>/<parameter index>/"
            "<entry>",
        )
    return name, int(index_text), entry


def _check_step(where: str, value: float, last_step: int, source: Path) -> None:
    if not math.isfinite(value) or value < 0 or value != int(value) or value > last_step:
        raise _damaged(
            source,
            f"{where} counts {value:g} steps, not a whole number from 0 to {last_step:,}, the "
            "step the run reached",
        )


def _check_state_tensor(key: str, entry: str, value: torch.Tensor, last: int, source: Path) -> None:
    dtype = value.dtype
    if entry in SCALAR_STATE_KEYS:
        numeric = not (dtype == torch.bool or dtype.is_complex)
        if not numeric or value.dim() != 0:
            raise _damaged(
                source,
                f"its tensor {key!r} is {_described(value)}, not a single number",
            )
        _check_step(f"its tensor {key!r}", float(value), last, source)
        return
    if not dtype.is_floating_point:
        raise _damaged(source, f"its tensor {key!r} is {_described(value)}, not floating point")
    if entry in NON_NEGATIVE_STATE_KEYS and bool((value < 0).any()):
        raise _damaged(
            source,
            f"its tensor {key!r} holds negative numbers ({float(value.min()):g}), but it is a "
            "running average of squares",
        )


def _described(value: torch.Tensor) -> str:
    dtype = str(value.dtype).removeprefix("torch.")
    return f"of dtype {dtype} and shape {tuple(value.shape)}"


def check_optimizer_tensors(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: Path
) -> None:
    """Raise DeeparchError naming `source` unless every optimizer tensor and JSON scalar belongs
    to an optimizer and parameter the description numbers and holds a sensible value.

    `meta` has passed checkpoint.meta.check_description (the JSON's structure and the parameter
    numbering), so only what needs the tensors is left.
    """
    described = meta.get("optimizer") or {}
    counts = {name: parameter_count(entry) for name, entry in described.items()}
    last_step = int(meta["progress"]["step"])
    for key, value in tensors.items():
        if not key.startswith(OPTIMIZER_PREFIX):
            continue
        name, index, entry = _split_key(key, source)
        if name not in counts:
            known = ", ".join(repr(n) for n in counts) or "none"
            raise _damaged(
                source,
                f"its tensor {key!r} belongs to optimizer {name!r}, which its metadata does not "
                f"describe (it describes {known})",
            )
        if index >= counts[name]:
            raise _damaged(
                source,
                f"its tensor {key!r} belongs to parameter {index}, but optimizer {name!r} has "
                f"{counts[name]} parameters",
            )
        _check_state_tensor(key, entry, value, last_step, source)
    for name, entry in described.items():
        for index, scalars in entry["scalars"].items():
            where = f"optimizer.{name}.scalars.{index}"
            if int(index) >= counts[name]:
                raise _damaged(
                    source,
                    f"{where} belongs to parameter {index}, but optimizer {name!r} has "
                    f"{counts[name]} parameters",
                )
            for key, value in scalars.items():
                if key in SCALAR_STATE_KEYS:
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise _damaged(source, f"{where}.{key} is {value!r}, not a number")
                    _check_step(f"{where}.{key}", float(value), last_step, source)


# ---- restoring into a built optimizer --------------------------------------------------------


def kept_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What this optimizer keeps per parameter after a step, found by stepping a copy of it (the
    same class and settings) on a two-element parameter: entry -> an example value."""
    device = optimizer.param_groups[0]["params"][0].device
    probe = torch.zeros(2, device=device, requires_grad=True)
    copy = type(optimizer)([probe], **optimizer.defaults)
    probe.grad = torch.ones_like(probe)
    copy.step()
    return dict(copy.state[probe])


def _entry_kind(example: Any) -> str:
    if isinstance(example, torch.Tensor):
        return "a single number" if example.dim() == 0 else "a tensor like its parameter"
    return "null" if example is None else "a number"


def _check_entry(key: str, value: Any, example: Any, param: nn.Parameter, param_name: str) -> None:
    """One saved state entry against the value the optimizer would keep for `param` itself."""
    if isinstance(example, torch.Tensor) and example.dim() == 0:
        ok = isinstance(value, torch.Tensor | int | float) and not isinstance(value, bool)
        shape_ok = not isinstance(value, torch.Tensor) or value.dim() == 0
        if not (ok and shape_ok):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer state {key!r} should be {_entry_kind(example)}; "
                f"{EDITED}"
            )
        return
    if isinstance(example, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer state {key!r} is {value!r}, not a tensor like "
                f"parameter {param_name}; {EDITED}"
            )
        if tuple(value.shape) != tuple(param.shape):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer tensor {key!r} has shape {tuple(value.shape)} but "
                f"should have shape {tuple(param.shape)}, like parameter {param_name}; {EDITED}"
            )
        if value.dtype != param.dtype:
            dtype, wanted = (str(d).removeprefix("torch.") for d in (value.dtype, param.dtype))
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer tensor {key!r} is {dtype}, but parameter "
                f"{param_name} is {wanted}; {EDITED}"
            )
        return
    if (example is None) != (value is None):
        raise CheckpointMismatchError(
            f"the checkpoint's optimizer state {key!r} should be {_entry_kind(example)}; {EDITED}"
        )


def _saved_state(
    name: str, parameters: list[nn.Parameter], tensors: dict[str, torch.Tensor], scalars: dict
) -> dict[int, dict[str, tuple[str, Any]]]:
    """index -> entry -> (the name to show, the saved value), from tensors and JSON scalars."""
    state: dict[int, dict[str, tuple[str, Any]]] = {}
    prefix = f"{OPTIMIZER_PREFIX}{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            index_text, _, entry = key[len(prefix) :].partition("/")
            state.setdefault(int(index_text), {})[entry] = (key, value)
    for index, entries in scalars.items():
        for entry, value in entries.items():
            shown = f"optimizer.{name}.scalars.{index}.{entry}"
            state.setdefault(int(index), {})[entry] = (shown, value)
    for index in state:
        if index >= len(parameters):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer {name!r} has state for parameter {index}, but it "
                f"has {len(parameters)} parameters here; {EDITED}"
            )
    return state


def _checked_state(
    name: str,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    scalars: dict,
    names: dict[int, str],
) -> dict[int, dict[str, Any]]:
    """The saved state of optimizer `name` by parameter index, every entry checked."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    saved = _saved_state(name, parameters, tensors, scalars)
    kept = kept_state(optimizer)
    state: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(parameters):
        param_name = names.get(id(param), str(index))
        entries = saved.get(index, {})
        # Before the first step no parameter has state (unless the optimizer makes it when it is
        # built: Adagrad's sums); after it every one has, and a fused step over some parameters
        # with state and some without fails.
        if not saved and not optimizer.state.get(param):
            continue
        if set(entries) != set(kept):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer {name!r} keeps {sorted(entries) or 'nothing'} for "
                f"parameter {param_name}, but {type(optimizer).__name__} keeps "
                f"{sorted(kept)}; {EDITED}"
            )
        for entry, (key, value) in entries.items():
            _check_entry(key, value, kept[entry], param, param_name)
        state[index] = {entry: value for entry, (_, value) in entries.items()}
    return state


def _kind(value: Any) -> str:
    """A parameter group setting's kind, as a student reads it."""
    if value is None or isinstance(value, bool):
        return "true, false or null"  # PyTorch's flags (foreach, fused) are None until chosen
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} numbers"
    return type(value).__name__


def _check_group_kinds(name: str, index: int, saved: dict, current: dict, kind: str) -> None:
    """Each saved setting of a parameter group of the kind this optimizer keeps there; a setting
    this PyTorch does not know (a newer one's) or lacks (an older one's) is left alone."""
    for key, value in saved.items():
        if key == "params" or key not in current:
            continue
        if _kind(value) != _kind(current[key]):
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer.{name}.param_groups[{index}].{key} is {value!r}, "
                f"but {kind}'s {key} is {_kind(current[key])}; {EDITED}"
            )


def restore_optimizers(
    optimizers: dict[str, torch.optim.Optimizer],
    tensors: dict[str, torch.Tensor],
    described: dict[str, Any],
    model: nn.Module | None = None,
) -> None:
    """Load the state written by `optimizer_state` into freshly built optimizers.

    `tensors` and `described` come from checkpoint.read_checkpoint, which has checked them on
    their own; here they are checked against these optimizers' parameters (`model` names them in
    messages). The optimizers keep their own hyperparameters (learning rate, weight decay, betas):
    those of the run being restored, which may differ from the checkpoint's.
    """
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    for name, optimizer in optimizers.items():
        if name not in described:
            raise CheckpointMismatchError(f"the checkpoint has no state for optimizer {name!r}")
        saved_groups = described[name]["param_groups"]
        current = optimizer.state_dict()["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in current]:
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer {name!r} has parameter groups of "
                f"{[len(g['params']) for g in saved_groups]} parameters, but here they have "
                f"{[len(g['params']) for g in current]}; {EDITED}"
            )
        for index, (saved, group) in enumerate(zip(saved_groups, current)):
            _check_group_kinds(name, index, saved, group, type(optimizer).__name__)
        state = _checked_state(name, optimizer, tensors, described[name]["scalars"], names)
        # The optimizer's own groups: its hyperparameters and its numbering of the parameters.
        optimizer.load_state_dict({"state": state, "param_groups": current})
