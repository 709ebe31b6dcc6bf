"""Train's export buttons: the current run as a standalone PyTorch script and as a notebook."""

import json

import streamlit as st

from deeparch.engine.config import TrainConfig
from deeparch.errors import ConfigError
from deeparch.export.notebook import export_notebook
from deeparch.export.script import export_script
from deeparch.figures.text import escape_markdown


@st.cache_data(max_entries=256, show_spinner=False)
def exported(config_json: str, kind: str) -> tuple[str, str]:
    """(text, error) of one run's export, once per distinct settings for the whole server."""
    config = TrainConfig.from_dict(json.loads(config_json))
    try:
        return (export_script(config) if kind == "script" else export_notebook(config)), ""
    except ConfigError as error:
        return "", str(error)


def export_downloads(job) -> None:
    """Two download buttons for the job's settings, or why this run cannot be exported."""
    st.markdown("**Export**")
    if job is None:
        st.caption("Start a run to export it as a PyTorch script or notebook.")
        return
    items = json.dumps(job.config.to_dict(), sort_keys=True)
    script, error = exported(items, "script")
    if error:
        st.caption(escape_markdown(f"No export for this run: {error}"))
        return
    notebook, _ = exported(items, "notebook")
    name = f"deeparch-{job.arch}-{job.dataset}"
    left, right = st.columns(2)
    left.download_button(
        "PyTorch script (.py)", script, file_name=f"{name}.py", mime="text/x-python",
        key="train_export_script", on_click="ignore",
    )  # fmt: skip
    right.download_button("Notebook (.ipynb)", notebook, file_name=f"{name}.ipynb",
                          mime="application/x-ipynb+json", key="train_export_notebook",
                          on_click="ignore")  # fmt: skip
    st.caption("The same data split, seed, layers and loop, without deeparch.")
