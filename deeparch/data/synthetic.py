"""Generated sequence sets, the same for the same seed: noisy sines to forecast, digit strings to
reverse or sort (a sequence-to-sequence task, Sutskever et al. 2014 reverse their inputs), and
noise sequences whose label is the sign of their first value (a dependency as long as the
sequence, for vanishing gradients)."""

from __future__ import annotations

import numpy as np

from deeparch.data.sources import Splits, seeded_split, split_arrays

SERIES_STEPS = 64  # values per window; the forecast view predicts the last `horizon` of them
SERIES_COUNT = 3000  # windows generated before the split
DIGIT_STEPS = 8  # digits per string
DIGIT_COUNT = 6000  # strings generated before the split
DIGIT_OPERATIONS = ("reverse", "sort")
# first_sign: 60 steps, so the label sits 59 steps before the last (where a plain RNN's gradient
# has shrunk by about 0.5^59 at initialisation, and a gated cell's keeps a usable size).
FIRST_SIGN_STEPS = 60
FIRST_SIGN_COUNT = 2500  # sequences generated before the split (2,000 train / 500 validation)


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


def first_sign_sequences(count: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x float32 (count, steps, 2): channel 0 is N(0, 1) noise, channel 1 marks t = 0 (the
    marker of Hochreiter & Schmidhuber's 1997 adding problem, which tells a gate when to write);
    y int64 (count,): 1 where the first value is positive, else 0."""
    rng = np.random.default_rng(seed)
    x = np.zeros((count, steps, 2), dtype=np.float32)
    x[:, :, 0] = rng.standard_normal((count, steps), dtype=np.float32)
    x[:, 0, 1] = 1.0
    return x, (x[:, 0, 0] > 0).astype(np.int64)


def load_first_sign(seed: int, val_fraction: float) -> Splits:
    """FIRST_SIGN_COUNT sequences (N, 60, 2), split stratified by label."""
    x, y = first_sign_sequences(FIRST_SIGN_COUNT, FIRST_SIGN_STEPS, seed)
    return split_arrays(x, y, val_fraction, seed)
