"""Checkpoints as safetensors weights plus JSON, written atomically; nothing is ever unpickled.

<stem>.safetensors holds the model's tensors under their state_dict names and the optimizer's tensor
state under `optimizer/<name>/<param index>/<key>`; its header metadata holds the JSON description
(architecture, configs, dataset, metrics, versions), so the one file is complete on its own.
<stem>.json repeats that description for people and tools that read JSON.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

import deeparch
from deeparch.errors import DeeparchError

SUFFIX = ".safetensors"
METADATA_KEY = "deeparch"
OPTIMIZER_PREFIX = "optimizer/"
# A safetensors header is JSON of at most 100 MB (the format's own limit).
MAX_HEADER_BYTES = 100_000_000


def library_versions() -> dict[str, str]:
    return {
        "deeparch": deeparch.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights file, JSON file) for a path given as <stem>, <stem>.safetensors or <stem>.json."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(SUFFIX)
    elif path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX) if not path.suffix else path
    return path, path.with_suffix(".json")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(final: Path, write: Any) -> None:
    """Write to a temporary file beside `final`, fsync it, then rename it over `final`.

    A crash at any point leaves either the old file or the new one, never a torn mix.
    """
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        if temporary.exists():
            temporary.unlink()
    _fsync_dir(final.parent)


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write tensors and their JSON description atomically; returns the .safetensors path."""
    weights_path, json_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "library_versions": library_versions()}
    meta_text = json.dumps(meta)
    # safetensors wants contiguous tensors that share no memory: copy each one.
    prepared = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    _atomic_write(
        weights_path,
        lambda tmp: safetensors.torch.save_file(prepared, str(tmp), {METADATA_KEY: meta_text}),
    )
    _atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return weights_path


def _check_is_safetensors(path: Path) -> None:
    """Refuse anything but a safetensors file by reading its first bytes; never unpickle."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    size = path.stat().st_size
    header_ok = len(head) == 9 and head[8:9] == b"{"
    if header_ok:
        (header_length,) = struct.unpack("<Q", head[:8])
        header_ok = 0 < header_length <= min(MAX_HEADER_BYTES, size - 8)
    if not header_ok:
        looks_pickled = head[:2] == b"PK" or head[:1] == b"\x80"
        kind = "a pickled PyTorch file" if looks_pickled else "not a safetensors file"
        raise DeeparchError(
            f"{path} is {kind}; deeparch loads only .safetensors checkpoints and never unpickles "
            "a file, because unpickling runs any code stored in it. Re-save the weights with "
            "safetensors.torch.save_file, or train with deeparch to get a checkpoint."
        )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, description) of a checkpoint; a pickle or a foreign file is rejected unread."""
    # A foreign suffix (.pt, .pth, .bin) is kept, so its first bytes are checked and it is refused.
    weights_path, json_path = checkpoint_paths(path)
    if not weights_path.exists():
        raise DeeparchError(f"no checkpoint at {weights_path}")
    _check_is_safetensors(weights_path)
    with safetensors.safe_open(str(weights_path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY in metadata:
        meta = json.loads(metadata[METADATA_KEY])
    elif json_path.exists():
        meta = json.loads(json_path.read_text())
    else:
        raise DeeparchError(
            f"{weights_path} holds tensors but no deeparch description (architecture, configs); "
            "it was not written by deeparch"
        )
    return safetensors.torch.load_file(str(weights_path)), meta


def split_tensors(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model state, optimizer tensors) from a checkpoint's tensors."""
    model_state = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    return model_state, optimizer_tensors


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """Load weights into a model after checking every name and shape, explaining a mismatch."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:5])}")
        raise DeeparchError(
            f"the checkpoint's tensors do not match architecture {arch!r}: {'; '.join(detail)}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise DeeparchError(
                f"tensor {name!r} has shape {tuple(state[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in architecture {arch!r} as configured; use the same "
                "architecture settings the checkpoint was trained with"
            )
    model.load_state_dict(state)


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


def restore_optimizers(
    optimizers: dict[str, torch.optim.Optimizer],
    tensors: dict[str, torch.Tensor],
    described: dict[str, Any],
) -> None:
    """Load the state written by `optimizer_state` back into freshly built optimizers."""
    for name, optimizer in optimizers.items():
        if name not in described:
            raise DeeparchError(f"the checkpoint has no state for optimizer {name!r}")
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{OPTIMIZER_PREFIX}{name}/"
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, entry = key[len(prefix) :].split("/", 1)
                state.setdefault(int(index), {})[entry] = value
        for index, entries in described[name]["scalars"].items():
            state.setdefault(int(index), {}).update(entries)
        current_groups = optimizer.state_dict()["param_groups"]
        groups = []
        for saved, current in zip(described[name]["param_groups"], current_groups):
            # JSON turned tuples (Adam's betas) into lists; give them back their type.
            groups.append(
                {
                    k: tuple(v) if isinstance(current.get(k), tuple) and isinstance(v, list) else v
                    for k, v in saved.items()
                }
            )
        if len(groups) != len(current_groups):
            raise DeeparchError(f"the checkpoint's optimizer {name!r} has a different layout")
        optimizer.load_state_dict({"state": state, "param_groups": groups})
