"""An ended run kept in memory once it is in the run store: what its views read, and no weights.

A trained job held in memory keeps its weights, their untouched initial copy (the mould its
model copies are poured into) and, until it is released, gradients and optimizer state: for the
default MLP 2 MB each, for mlp_gan 11 MB each (README, Classroom: "Bounded memory"). Its views
(the Train page, the explore pages, Compare, the teacher's view) read its published snapshot
often and its weights seldom, so the manager replaces an ended, stored job by an EndedRun:

- its snapshot (curves, epoch metrics, the task's snapshots, counters), as the job published it;
- a weightless mould of its model (parameters and saved buffers on the meta device, so it holds
  no memory); model_copy() pours the weights from the run store into a copy of the mould;
- the path of its checkpoint in the store, which save_checkpoint copies.

It implements deeparch.engine.handle.JobHandle on any backend; its controls do nothing (it has
ended), as an ended job's do.
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

from torch import nn

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.footprint import curve_bytes, payload_bytes
from deeparch.engine.handle import JobHandle
from deeparch.engine.job import checkpoint_target
from deeparch.engine.mirror import SnapshotMirror, changes_since
from deeparch.engine.state import StateMachine, StateView


def weightless(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and saved buffers are on the meta device (no memory);
    buffers a state dict leaves out (a torchvision model's input normalisation) stay real, since
    no checkpoint brings them back. Tied parameters stay tied."""
    mould = copy.deepcopy(model)
    saved = set(mould.state_dict(keep_vars=True))
    moved: dict[int, nn.Parameter] = {}
    for module_name, module in mould.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in list(module.named_parameters(recurse=False)):
            if id(param) not in moved:
                moved[id(param)] = nn.Parameter(param.to("meta"), param.requires_grad)
            setattr(module, name, moved[id(param)])
        for name, buffer in list(module.named_buffers(recurse=False)):
            if prefix + name in saved:
                setattr(module, name, buffer.to("meta"))
    return mould.eval()


class EndedRun(StateView):
    """An ended run whose weights live in the run store (see the module's doc)."""

    def __init__(self, job: JobHandle, stored: Path) -> None:
        if job.is_active():
            raise RuntimeError(f"job {job.id} is {job.state}: it may train again")
        self.id = job.id
        self.owner = job.owner
        self.config = job.config
        self.arch = job.arch
        self.dataset = job.dataset
        self.task_name = job.task_name
        self.device = getattr(job, "device", "cpu")
        self.last_seen = job.last_seen
        self.stored = Path(stored)
        self.machine = StateMachine(job.id, job.state, job.reason)
        published = job.snapshot()
        self._mirror = SnapshotMirror()
        self._mirror.apply(changes_since(published, {}))
        self._mould = weightless(job.model_copy())
        self._held_bytes = payload_bytes(published.get("snapshots", [])) + curve_bytes(
            published.get("losses", {})
        )
        self._lock = threading.Lock()
        self.ended_at = time.monotonic()  # the manager drops the earliest ended first

    # ---- reading ----------------------------------------------------------------------------

    def snapshot(self, owner: str | None = None) -> dict[str, Any]:
        if owner is not None and owner == self.owner:
            self.last_seen = time.monotonic()
        copied = self._mirror.copy()
        copied["state"], copied["reason"] = str(self.state), self.reason
        copied["queue_position"] = 0
        return copied

    def latest_snapshot(self) -> dict[str, Any] | None:
        return self._mirror.latest_snapshot()

    def model_copy(self) -> nn.Module:
        """The run's final weights, read from the store, in a copy of its mould (eval, CPU)."""
        tensors, _ = checkpoint.read_checkpoint(self.stored)
        state, _ = checkpoint.split_tensors(tensors)
        with self._lock:
            model = copy.deepcopy(self._mould)
        checkpoint.load_model_state(model, state, self.arch, assign=True)
        return model.eval()

    def save_checkpoint(self, dir_or_path: str | Path) -> Path:
        target = checkpoint_target(dir_or_path, self.arch, self.dataset)
        return checkpoint.copy_checkpoint(self.stored, target)

    def held_bytes(self) -> int:
        """Bytes it holds: its task snapshots and curves (its weights are on disk)."""
        return self._held_bytes

    # ---- control: it has ended --------------------------------------------------------------

    def pause(self) -> bool:
        return False

    def resume(self) -> bool:
        return False

    def step(self) -> bool:
        return False

    def stop(self, reason: str = "") -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def wait_paused(self, timeout: float | None = None) -> bool:
        return False

    def queue_position(self) -> int:
        return 0
