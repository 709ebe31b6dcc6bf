"""Live views rerun slower when the class is large: each rerun is Python under the interpreter
lock that training and an arriving student's first page need too."""

import pytest

from pages import _shared


class Counting:
    def __init__(self, running: int) -> None:
        self.running = running

    def running_count(self) -> int:
        return self.running


@pytest.mark.parametrize(
    ("running", "expected"),
    [(0, 1.0), (1, 1.0), (10, 1.0), (15, 1.5), (29, 2.9), (30, 3.0)],
)
def test_the_refresh_stretches_in_proportion_beyond_ten_training_jobs(
    monkeypatch, running, expected
):
    monkeypatch.setattr(_shared, "manager", lambda: Counting(running))
    assert _shared.paced_refresh_s(1.0) == pytest.approx(expected)
    assert _shared.paced_refresh_s(_shared.SIDEBAR_REFRESH_S) == pytest.approx(2 * expected)
