"""The Train page's results: the run's final and best metrics, and a classifier's confusion matrix
whose cells show their examples on a click."""

from __future__ import annotations

from typing import Any

import streamlit as st

from deeparch.data import load_dataset
from deeparch.engine.handle import JobHandle
from deeparch.engine.summary import format_epoch, format_metric, summarize_run
from deeparch.errors import DeeparchError
from deeparch.figures import classification as confusion_figs
from deeparch.figures.text import escape_markdown
from deeparch.tasks.classify import cell_examples

CONFUSION_KEY = "train_confusion_chart"


def run_results(snap: dict[str, Any]) -> None:
    """The final metrics and those of the best epoch, as numbers."""
    summary = summarize_run(snap)
    if summary is None or not summary.metrics:
        return
    heading = f"after epoch {format_epoch(summary.final_epoch)}"
    if summary.best_epoch is not None:
        best_label = summary.metric(summary.best_by).label
        heading += f"; best epoch {format_epoch(summary.best_epoch)} (by {best_label})"
    st.markdown(f"**Results** {escape_markdown(heading)}")
    columns = st.columns(max(4, len(summary.metrics)))
    for column, result in zip(columns, summary.metrics):
        column.metric(f"final {result.label}", format_metric(result.name, result.final))
        if summary.best_epoch is not None:
            column.metric(f"{result.label}, best epoch", format_metric(result.name, result.at_best))


def chosen_cell(job_id: str, confusion) -> tuple[int, int] | None:
    """The cell the student clicked last (kept across refreshes), else the most confused one."""
    cell_key = f"train_cell_{job_id}"
    event = st.session_state.get(CONFUSION_KEY)
    points = event.get("selection", {}).get("points", []) if event else []
    clicked = confusion_figs.selected_cell(points)
    if clicked is not None:
        st.session_state[cell_key] = clicked
    cell = st.session_state.get(cell_key)
    k = confusion.shape[0]
    if cell is not None and cell[0] < k and cell[1] < k:
        return cell
    return confusion_figs.most_confused_cell(confusion)


# Built once per snapshot and chosen cell, for the whole class: a live panel refreshes every second
# or few while the matrix changes once an epoch, and building its two figures took more than half
# of the server's interpreter time with 29 students training (py-spy, arrival scenario). Keyed by
# the job's id, so two students never share an entry; the figures are not changed by drawing them.
FIGURES_KEPT = 64


@st.cache_resource(max_entries=FIGURES_KEPT, show_spinner=False)
def confusion_figures(
    job_id: str, step: int, epoch: int, cell: tuple[int, int] | None, _payload: dict, _data
) -> tuple:
    """(matrix figure, the cell's caption, its examples' figure or None, its examples); a
    snapshot is known by its job, step and epoch."""
    confusion, info = _payload["confusion"], _data.info
    names = confusion_figs.class_labels(confusion.shape[0], info.class_names)
    matrix = confusion_figs.confusion_figure(
        confusion, names, cell, f"Confusion matrix at step {step}"
    )
    if cell is None:
        return matrix, "", None, None
    true_class, predicted = cell
    examples = cell_examples(_payload, _data.x_val, true_class, predicted).numpy()
    count = int(confusion[true_class, predicted])
    text = (
        f"true {names[true_class]}, predicted {names[predicted]}: {count} of the "
        f"{int(confusion.sum())} validation examples"
    )
    if count > len(examples):
        text += f"; the first {len(examples)} shown"
    return matrix, text, confusion_figs.cell_examples_figure(examples, info.kind), examples


def confusion_section(job: JobHandle, snap: dict[str, Any]) -> None:
    """The latest snapshot's confusion matrix; a click on a cell shows that cell's examples."""
    payload = job.latest_snapshot()
    if not payload or "confusion" not in payload or "cell_examples" not in payload:
        return
    try:
        data = load_dataset(str(snap.get("dataset")))
    except DeeparchError as error:
        st.warning(escape_markdown(f"The examples cannot be shown: {error}"))
        return
    cell = chosen_cell(job.id, payload["confusion"])
    matrix, text, examples_figure, examples = confusion_figures(
        job.id, int(payload.get("step", 0)), int(payload.get("epoch", 0)), cell, payload, data
    )
    chart_col, examples_col = st.columns([3, 4])
    with chart_col:
        st.plotly_chart(
            matrix,
            key=CONFUSION_KEY,
            on_select="rerun",
            selection_mode="points",
            width="content",
            config={"displayModeBar": False},
        )
    with examples_col:
        st.markdown("**Click a cell to see its examples**")
        if cell is None:
            st.caption("No validation example is misclassified.")
            return
        st.caption(escape_markdown(text))
        if examples_figure is not None:
            st.plotly_chart(examples_figure, key="train_cell_examples")
        elif len(examples):
            st.code("\n".join(" ".join(map(str, row.tolist())) for row in examples), language=None)
