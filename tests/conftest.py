"""Shared test setup: a small, deterministic torch on two threads, a run store of its own."""

import os
import tempfile

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
# The app's run store (ended runs on disk) goes to a folder of this test session, not ./runs;
# servers the tests start inherit it.
os.environ.setdefault("DEEPARCH_RUN_STORE", tempfile.mkdtemp(prefix="deeparch-test-runs-"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models (`pytestmark = usefixtures(...)`): oneDNN's
    thread barriers stall for whole scheduler time slices when the 2 cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
