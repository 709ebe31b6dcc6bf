"""Every scenario by name: those of scenarios.py, abandonment (abandon.py) and the arrival
figures (arrival.py)."""

from __future__ import annotations

from .abandon import abandon
from .arrival import arrival
from .scenarios import RUNNERS as BASIC_RUNNERS

RUNNERS = {**BASIC_RUNNERS, "abandon": abandon, "arrival": arrival}
SCENARIOS = tuple(RUNNERS)
