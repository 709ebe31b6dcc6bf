"""Shared test setup: a small, deterministic torch on two threads, a run store of its own."""

import os
import tempfile

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
# The app's run store (ended runs on disk) goes to a folder of this test session, not ./runs;
# servers the tests start inherit it.
os.environ.setdefault("DEEPARCH_RUN_STORE", tempfile.mkdtemp(prefix="deeparch-test-runs-"))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
