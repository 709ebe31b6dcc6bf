"""What a job holds in memory, in bytes, counted from its tensors, arrays and curves.

Used to size the ended runs a server keeps (the manager's byte budget), by the tests that check
an ended run holds only what its views need, and by scripts/memory_per_arch.py, which writes the
README's figures. Counts are of distinct storages: two tensors viewing one storage count once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

# A loss curve's point is a [step, value] list: the list (two slots) and two numbers.
BYTES_PER_CURVE_POINT = sys.getsizeof([0, 0.0]) + sys.getsizeof(0.0) + sys.getsizeof(0)


def storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    return (str(tensor.device), tensor.untyped_storage().data_ptr())


def tensor_bytes(tensors: Iterable[torch.Tensor], seen: set | None = None) -> int:
    """Bytes of the distinct storages of `tensors` not already in `seen` (which grows)."""
    seen = set() if seen is None else seen
    total = 0
    for tensor in tensors:
        if tensor is None or tensor.is_meta:
            continue
        key = storage_key(tensor)
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def payload_bytes(payload: Any, seen: set | None = None) -> int:
    """Bytes of a snapshot payload: its arrays and tensors, and its containers and numbers."""
    seen = set() if seen is None else seen
    if isinstance(payload, torch.Tensor):
        return tensor_bytes([payload], seen)
    if isinstance(payload, np.ndarray):
        owner = payload if payload.base is None else payload.base
        if id(owner) in seen:
            return 0
        seen.add(id(owner))
        return int(getattr(owner, "nbytes", payload.nbytes))
    if isinstance(payload, dict):
        inner = sum(payload_bytes(k, seen) + payload_bytes(v, seen) for k, v in payload.items())
        return sys.getsizeof(payload) + inner
    if isinstance(payload, (list, tuple)):
        return sys.getsizeof(payload) + sum(payload_bytes(item, seen) for item in payload)
    return sys.getsizeof(payload)


def curve_bytes(losses: dict[str, list]) -> int:
    """About the bytes of a job's loss curves (points as [step, value] lists)."""
    return sum(len(points) for points in losses.values()) * BYTES_PER_CURVE_POINT


def module_bytes(module: torch.nn.Module | None, seen: set | None = None) -> int:
    if module is None:
        return 0
    return tensor_bytes(module.state_dict(keep_vars=True).values(), seen)
