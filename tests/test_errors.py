"""Errors meant for a student cross into another process (a Ray worker's answer) unchanged."""

import pickle

import pytest

from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError, DatasetUnavailableError, UnknownJobError, UnknownNameError
from deeparch.explore.images import UploadError


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("batch_size", 1, "at least 2", "a batch of one has no spread"),
        ConfigError("arch_config", {"hidden_sizes": (0,)}, "widths of 1 or more"),
        UnknownNameError("optimizer", "lbfgs", ["sgd", "adam"]),
        UnknownJobError("job-1"),
        DatasetUnavailableError("kmnist is not available: put the IDX files in data/KMNIST/raw"),
        UploadError(b"\x00", "broken.png is not a picture", "a PNG or JPEG file"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_error_pickles_as_itself(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again) == vars(error)  # field, value, allowed, hint, ...


def test_an_unknown_job_says_so_plainly_without_an_empty_list():
    with pytest.raises(UnknownJobError) as raised:
        JobManager(max_running=1).get("no-such-job")
    message = str(raised.value)
    assert message.startswith("unknown job 'no-such-job': no job with this id is in memory")
    assert "known jobs" not in message and not message.endswith(": ")
    assert isinstance(raised.value, UnknownNameError)  # callers catching that still do
    assert str(UnknownNameError("stored run", "r1", [])) == "unknown stored run 'r1'"
