"""Shared test setup: a small, deterministic torch on two threads."""

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
