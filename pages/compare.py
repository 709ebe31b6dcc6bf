"""Compare: the session's runs (in memory and in the run store) and loaded checkpoints, curves
overlaid, settings side by side."""

import pandas as pd
import streamlit as st

from deeparch.engine.run_names import common_description, run_names
from deeparch.figures import training as viz
from deeparch.figures.text import escape_markdown
from pages._shared import LOADED_JOBS_KEY, keep, keep_fitting, session_jobs, stored_snapshots

MAX_DEFAULT_RUNS = 4


def settings_column(snap: dict) -> dict:
    """One run's final metrics, then its settings, as flat name -> value pairs."""
    config = dict(snap.get("config") or {})
    arch_config = config.pop("arch_config", {}) or {}
    column = {"arch": snap.get("arch"), "dataset": snap.get("dataset"), "state": snap.get("state")}
    column["steps"] = snap.get("step")
    final = (snap.get("epoch_metrics") or [{}])[-1]
    column.update({f"final {k}": v for k, v in final.items() if k not in ("epoch", "step")})
    column.update({f"{snap.get('arch')}.{k}": v for k, v in arch_config.items()})
    column.update({k: v for k, v in config.items() if k not in ("arch", "dataset")})
    return {k: _text(v) for k, v in column.items()}


def _text(value: object) -> str:
    if value is None:
        return "—"  # a metric a diverged run never reached
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


st.title("Compare runs")
jobs = session_jobs(include_loaded=True)
# Runs that left memory come from the run store: their curves and settings are in its summaries.
stored = stored_snapshots()
if not jobs and not stored:
    st.info("No runs yet. Train something on the Train page, or load a checkpoint there.")
    st.stop()

snaps = {snap["id"]: snap for snap in [*(job.snapshot() for job in jobs), *stored]}
ids = list(snaps)
loaded_ids = set(st.session_state.get(LOADED_JOBS_KEY, []))
# Options are job ids, named by what differs among all the session's runs; the legend names the
# chosen ones by what differs among them.
all_names = dict(zip(ids, run_names(list(snaps.values()), [i in loaded_ids for i in ids])))
# The student's pick stays across pages (keep); runs that are gone since drop out of it, and a
# pick with none left starts again from the newest runs.
runs_key = keep("compare_runs", ids[:MAX_DEFAULT_RUNS])
still_there = [r for r in st.session_state[runs_key] if r in snaps]
st.session_state[runs_key] = still_there or ids[:MAX_DEFAULT_RUNS]
chosen = st.multiselect("runs", ids, key=runs_key, format_func=all_names.get)
if not chosen:
    st.info("Pick at least one run.")
    st.stop()

chosen_snaps = [snaps[job_id] for job_id in chosen]
names = run_names(chosen_snaps, [job_id in loaded_ids for job_id in chosen])
picked = dict(zip(names, chosen_snaps))
common = common_description(chosen_snaps)
if common and len(chosen) > 1:
    st.caption(f"All of them: {escape_markdown(common)}; each is named by what it changes.")
terms = list(dict.fromkeys(t for s in picked.values() for t in s.get("losses", {})))
metrics = list(
    dict.fromkeys(
        k
        for s in picked.values()
        for row in s.get("epoch_metrics", [])
        for k in row
        if k != "epoch"
    )
)
curves = st.columns(2)
with curves[0]:
    if terms:
        term = st.selectbox(
            "loss term", terms, key=keep_fitting("compare_term", lambda t: t in terms)
        )
        runs = {label: s.get("losses", {}) for label, s in picked.items()}
        wide = viz.spans_decades(runs, term)
        log_y = st.toggle(
            "log scale",
            key=keep(
                f"compare_log_{term}_{wide}", wide
            ),  # re-decided when a blown-up run joins or leaves
            help="losses spanning many powers of ten (a run that blew up) are readable on a "
            "log axis",
        )
        st.plotly_chart(viz.compare_figure(runs, term, log_y=log_y), key="compare_loss_chart")
with curves[1]:
    if metrics:
        default = metrics.index("val_accuracy") if "val_accuracy" in metrics else 0
        metric = st.selectbox(
            "epoch metric",
            metrics,
            key=keep_fitting("compare_metric", lambda m: m in metrics, metrics[default]),
        )
        rows = {label: s.get("epoch_metrics", []) for label, s in picked.items()}
        st.plotly_chart(viz.compare_epoch_figure(rows, metric), key="compare_epoch_chart")

table = pd.DataFrame({label: settings_column(s) for label, s in picked.items()})
only_different = st.toggle("only settings that differ", key=keep("compare_only_different", False))
if only_different and len(chosen) > 1:
    table = table[table.astype(str).nunique(axis=1) > 1]
st.dataframe(table, width="stretch", key="compare_table", height=35 * (len(table) + 1) + 3)
