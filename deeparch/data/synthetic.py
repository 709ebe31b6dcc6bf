"""Generated sequence sets, the same for the same seed: noisy sines to forecast, digit strings to
reverse or sort (a sequence-to-sequence task, Sutskever et al. 2014 reverse their inputs)."""

from __future__ import annotations

import numpy as np

from deeparch.data.sources import Splits, seeded_split

SERIES_STEPS = 64  # values per window; the forecast view predicts the last `horizon` of them
SERIES_COUNT = 3000  # windows generated before the split
DIGIT_STEPS = 8  # digits per string
DIGIT_COUNT = 6000  # strings generated before the split
DIGIT_OPERATIONS = ("reverse", "sort")


def sines_with_trend(count: int, steps: int, noise: float, seed: int) -> np.ndarray:
    """`count` series of `steps + 1` values: two or three sines of random period (8 to 40 steps),
    amplitude and phase, plus a linear trend and Gaussian noise of std `noise`. float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1, dtype=np.float64)
    series = np.zeros((count, steps + 1))
    components = rng.integers(2, 4, count)  # 2 or 3 sines each
    for k in range(3):
        period = rng.uniform(8.0, 40.0, (count, 1))
        amplitude = rng.uniform(0.2, 1.0, (count, 1)) * (components[:, None] > k)
        phase = rng.uniform(0.0, 2 * np.pi, (count, 1))
        series += amplitude * np.sin(2 * np.pi * t / period + phase)
    slope = rng.uniform(-1.0, 1.0, (count, 1)) / steps  # at most 1 over the window
    series += slope * t + rng.normal(0.0, noise, series.shape)
    return series.astype(np.float32)


def load_sines(noise: float, seed: int, val_fraction: float) -> Splits:
    """Windows float32 (N, 64, 1) and their next values (N, 64, 1): y[t] = x[t + 1], so a model
    that outputs at every step learns one step ahead (many-to-many)."""
    series = sines_with_trend(SERIES_COUNT, SERIES_STEPS, noise, seed)[:, :, None]
    x, y = series[:, :-1], series[:, 1:]
    train, val = seeded_split(len(series), val_fraction, seed)
    return Splits(x[train], y[train], x[val], y[val])


def transform_digits(digits: np.ndarray, operation: str) -> np.ndarray:
    """The target of each digit string (N, L): reversed, or sorted ascending."""
    if operation == "reverse":
        return digits[:, ::-1].copy()
    return np.sort(digits, axis=1)


def load_digit_strings(operation: str, seed: int, val_fraction: float) -> Splits:
    """Random strings of DIGIT_STEPS digits int64 (N, 8) and their transformation (N, 8)."""
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, (DIGIT_COUNT, DIGIT_STEPS)).astype(np.int64)
    train, val = seeded_split(DIGIT_COUNT, val_fraction, seed)
    targets = transform_digits(digits, operation)
    return Splits(digits[train], targets[train], digits[val], targets[val])
