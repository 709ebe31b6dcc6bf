"""What the command line shows people: rich tables on stdout, the training progress on stderr."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

BAR_WIDTH = 24
# A pipe or a file has no width of its own: a table keeps its natural width there, never wrapped.
UNBOUNDED_WIDTH = 10_000


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> Table:
    """Aligned columns under a ruled header; the indices in `right` are right-aligned (numbers)."""
    shown = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for index, header in enumerate(headers):
        shown.add_column(header, justify="right" if index in right else "left")
    for row in rows:
        shown.add_row(*("" if value is None else str(value) for value in row))
    return shown


def print_table(shown: Table) -> None:
    """Print a table on stdout: fitted to a terminal, at its natural width anywhere else."""
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(shown)
        return
    console.width = UNBOUNDED_WIDTH
    with console.capture() as captured:
        console.print(shown)
    # rich pads every cell to its column's width; a file gets no trailing blanks.
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def progress_text(snap: dict[str, Any]) -> str:
    """`step 62/124 epoch 1/2 loss 0.4123 24000 samples/s ETA 3s` from a job's snapshot."""
    total = max(1, snap.get("total_steps") or 1)
    losses = snap.get("losses", {}).get("loss")
    loss_text = f" loss {losses[-1][1]:.4f}" if losses else ""
    eta = snap.get("eta_s")
    eta_text = f" ETA {eta:.0f}s" if eta is not None else ""
    return (
        f"step {snap.get('step', 0)}/{total} epoch {snap.get('epoch', 0)}/{snap.get('epochs', 0)}"
        f"{loss_text} {snap.get('samples_per_s', 0.0):.0f} samples/s{eta_text}"
    )


def epoch_text(entry: dict[str, Any], snap: dict[str, Any]) -> str:
    """`epoch 1/2 (step 62/124): train_loss 0.5213 val_loss 0.4102 ...` for one finished epoch."""
    total = max(1, snap.get("total_steps") or 1)
    metrics = " ".join(
        f"{name} {value:.4g}"
        for name, value in entry.items()
        if name not in ("epoch", "step") and isinstance(value, int | float)
    )
    epoch, step = entry.get("epoch"), entry.get("step")
    return f"epoch {epoch}/{snap.get('epochs', 0)} (step {step}/{total}): {metrics}"


class TrainingProgress:
    """The progress of one training job on stderr.

    On a terminal, a live bar redrawn in place. Anywhere else (a CI log, a file) redrawn lines
    would pile up, so there it prints a line per finished epoch with its metrics, and one at the
    end. `epochs_done`: epochs already in the job's history (a resumed run), not printed again;
    `console`: where to draw (stderr by default).
    """

    def __init__(self, epochs_done: int = 0, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._epochs_printed = epochs_done

    def __enter__(self) -> TrainingProgress:
        if self.console.is_terminal:
            self._bar = Progress(
                BarColumn(bar_width=BAR_WIDTH),
                TextColumn("{task.description}", markup=False),
                console=self.console,
                auto_refresh=False,  # redrawn on each update, four times a second
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=None)
        return self

    def update(self, snap: dict[str, Any]) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=snap.get("step", 0),
                total=max(1, snap.get("total_steps") or 1),
                description=progress_text(snap),
            )
            self._bar.refresh()
            return
        finished = snap.get("epoch_metrics", [])
        for entry in finished[self._epochs_printed :]:
            self._print_line(epoch_text(entry, snap))
        self._epochs_printed = max(self._epochs_printed, len(finished))

    def finish(self, snap: dict[str, Any]) -> None:
        """The final state: the bar drawn once more and kept, or the last epochs and a last line."""
        self.update(snap)
        if self._bar is None:
            self._print_line(progress_text(snap))
        self._stop()

    def _print_line(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()
