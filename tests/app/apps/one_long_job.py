"""A Streamlit script for the shutdown test: the first visit starts one long job through the
process-wide manager (as the Train page does) and reports its id."""

import streamlit as st

from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import get_manager

LONG = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (16,)}, batch_size=32, epochs=200)

manager = get_manager()
if not manager.jobs():
    manager.submit(LONG, owner="f" * 32)
job = manager.jobs()[0]
st.write(f"job {job.id}: {job.state}, step {job.snapshot().get('step', 0)}")
