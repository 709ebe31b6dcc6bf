"""JobHandle: exactly what pages and the CLI use of a job, whatever runs it.

The thread backend (deeparch.engine.job.ThreadJob) trains in a thread of this process; another
backend (Ray actors) implements the same protocol, so pages and the CLI never change with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from deeparch.engine.config import TrainConfig
from deeparch.engine.state import JobState


@runtime_checkable
class JobHandle(Protocol):
    """A training run seen from outside: identity, state, what it published, and its controls."""

    id: str
    owner: str | None  # the session that started it (None for the CLI and tests)
    config: TrainConfig
    arch: str
    dataset: str
    task_name: str
    last_seen: float  # time.monotonic() of the owner's last look (the heartbeat)

    @property
    def state(self) -> JobState: ...

    @property
    def reason(self) -> str: ...

    def is_active(self) -> bool:
        """Queued, running or paused."""
        ...

    def snapshot(self, owner: str | None = None) -> dict[str, Any]:
        """A copy of everything published so far (losses, epoch metrics, snapshots, counters,
        state, reason, queue position); reading it as the owner counts as a heartbeat."""
        ...

    def latest_snapshot(self) -> dict[str, Any] | None:
        """The task's most recent snapshot payload (what the explore views draw), or None."""
        ...

    def model_copy(self) -> nn.Module:
        """A consistent CPU copy of the current weights in eval mode, taken between two steps."""
        ...

    def save_checkpoint(self, dir_or_path: str | Path) -> Path:
        """Write <stem>.safetensors and <stem>.json here; returns the weights file."""
        ...

    def pause(self) -> bool:
        """Ask to pause after the current step; False when the job is not running."""
        ...

    def resume(self) -> bool:
        """Continue a paused job; False when it is not paused (or pausing)."""
        ...

    def step(self) -> bool:
        """Train exactly one batch while paused, then stay paused; False when not paused."""
        ...

    def stop(self, reason: str = "") -> bool:
        """Stop after the current step (a queued job never starts); False when already ended."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended; False on timeout."""
        ...

    def wait_paused(self, timeout: float | None = None) -> bool:
        """Block until the job really sits paused between steps; False on timeout."""
        ...

    def queue_position(self) -> int:
        """1 for the next job to start, 2 after it, ...; 0 when not queued."""
        ...
