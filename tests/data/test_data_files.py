"""IDX files and data folders that are wrong in some way: each is refused with the file named and
what is wrong with it, before anything trains on it, and nothing half-written is left behind."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from deeparch.data import dataset_label, dataset_missing, list_datasets
from deeparch.data import files as data_files
from deeparch.data.catalogue import load_dataset
from deeparch.data.files import CIFAR_BINARY_DIR, CIFAR_BINARY_TEST, CIFAR_BINARY_TRAIN, IDX_FILES
from deeparch.errors import DatasetUnavailableError

AGAIN = "; put the original file there again (or delete it to download it once more)"


def idx(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0800 + dimensions, each size, the bytes."""
    return struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.tobytes()


def write_folder(root: Path, train=None, val=None, *, gz: bool = False) -> Path:
    """A KMNIST data folder: train and val are (images bytes, labels bytes)."""
    raw = root / "KMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    labels = (np.arange(20) % 10).astype(np.uint8)
    default = (idx(images), idx(labels))
    for prefix, (image_bytes, label_bytes) in (
        ("train", train or default),
        ("t10k", val or default),
    ):
        for kind, data in (("images-idx3", image_bytes), ("labels-idx1", label_bytes)):
            path = raw / f"{prefix}-{kind}-ubyte"
            if gz:
                path = path.with_name(path.name + ".gz")
                data = gzip.compress(data)
            path.write_bytes(data)
    return raw


def refusal(root: Path) -> str:
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset("kmnist", root=root, download=False)
    return str(raised.value)


def test_more_labels_than_images_is_refused(tmp_path):
    labels = idx((np.arange(400) % 10).astype(np.uint8))
    images = idx(np.zeros((200, 28, 28), dtype=np.uint8))
    raw = write_folder(tmp_path, train=(images, labels))
    assert refusal(tmp_path) == (
        f"kmnist: {raw / 'train-labels-idx1-ubyte'} holds 400 labels for the 200 images in "
        f"train-images-idx3-ubyte{AGAIN}"
    )


@pytest.mark.parametrize("side", [14, 32])
def test_images_of_another_size_are_refused_not_reshaped(tmp_path, side):
    images = idx(np.zeros((20, side, side), dtype=np.uint8))
    labels = idx((np.arange(20) % 10).astype(np.uint8))
    raw = write_folder(tmp_path, val=(images, labels))
    assert refusal(tmp_path) == (
        f"kmnist: {raw / 't10k-images-idx3-ubyte'} holds {side}x{side} images, but kmnist "
        f"images are 28x28{AGAIN}"
    )


def test_a_label_above_9_is_refused(tmp_path):
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[3] = 12
    raw = write_folder(tmp_path, train=(idx(np.zeros((20, 28, 28), np.uint8)), idx(labels)))
    assert refusal(tmp_path) == (
        f"kmnist: {raw / 'train-labels-idx1-ubyte'} holds the label 12, but kmnist's labels are "
        f"0 to 9{AGAIN}"
    )


def test_a_wrong_magic_number_is_named(tmp_path):
    images = bytearray(idx(np.zeros((20, 28, 28), dtype=np.uint8)))
    images[3] = 0x01  # says one dimension
    raw = write_folder(tmp_path, train=(bytes(images), idx((np.arange(20) % 10).astype(np.uint8))))
    assert refusal(tmp_path) == (
        f"kmnist: {raw / 'train-images-idx3-ubyte'} starts with the magic number 0x00000801, not "
        f"0x00000803 (an IDX file of 3-dimensional unsigned bytes){AGAIN}"
    )


def test_a_cut_off_idx_file_is_named(tmp_path):
    images = idx(np.zeros((20, 28, 28), dtype=np.uint8))[:-100]
    raw = write_folder(tmp_path, train=(images, idx((np.arange(20) % 10).astype(np.uint8))))
    assert refusal(tmp_path) == (
        f"kmnist: {raw / 'train-images-idx3-ubyte'} holds 15,580 bytes after its header, but the "
        f"header announces 20 x 28 x 28 = 15,680 (the file was cut off?){AGAIN}"
    )


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda data: b"not a gzip file at all", "is not a gzip file (Not a gzipped file"),
        (lambda data: data[: len(data) // 2], "is cut off (Compressed file ended before"),
    ],
    ids=["not gzip", "cut off"],
)
def test_a_broken_gz_leaves_no_partial_file_behind(tmp_path, damage, problem):
    raw = write_folder(tmp_path, gz=True)
    packed = raw / "train-images-idx3-ubyte.gz"
    packed.write_bytes(damage(packed.read_bytes()))
    for _ in range(2):  # the second run meets the same .gz, not a half-written file
        message = refusal(tmp_path)
        assert message.startswith(f"kmnist: {packed} {problem}")
        assert message.endswith(AGAIN)
    # nothing half-written, no temporary file: the folder holds the four downloads alone
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{f}.gz" for f in data_files.IDX_FILES)


@pytest.mark.parametrize(("name", "shown"), [("kmnist", "kmnist"), ("cifar10", "cifar10")])
def test_a_data_folder_that_is_a_file_says_so(tmp_path, name, shown):
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset(name, root=a_file, download=False)
    assert str(raised.value) == (
        f"{shown} is not available: the data folder {a_file} is a file, not a folder; set "
        "DEEPARCH_DATA_DIR to a folder (or unset it to use the repository's data/)"
    )


def test_the_reader_checks_the_header_against_the_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\0\0")
    with pytest.raises(DatasetUnavailableError, match="is only 2 bytes long, shorter than"):
        data_files.read_idx("kmnist", path, 1)


def test_an_idx_path_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    raw = write_folder(tmp_path)
    fifo = raw / "train-labels-idx1-ubyte"
    fifo.unlink()
    os.mkfifo(fifo)
    assert refusal(tmp_path) == (
        f"kmnist: {fifo} is not a plain file (a FIFO, a device or a folder){AGAIN}"
    )


# ---- availability before loading (the dataset pickers) ------------------------------------------


def test_bundled_datasets_are_always_available(tmp_path):
    for name in ("mnist", "digits", "mnist1d", "moons", "blobs"):
        assert name in list_datasets()
        assert dataset_missing(name, tmp_path) == ""
        assert dataset_label(name, tmp_path) == name


@pytest.mark.parametrize(
    ("name", "folder"),
    [("mnist_full", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")],
)
def test_an_idx_dataset_is_unavailable_until_its_four_files_are_there(tmp_path, name, folder):
    note = dataset_missing(name, tmp_path)
    raw = tmp_path / folder / "raw"
    assert str(raw) in note and all(f in note for f in IDX_FILES)
    assert dataset_label(name, tmp_path) == f"{name} (needs files)"
    raw.mkdir(parents=True)
    for index, file_name in enumerate(IDX_FILES):
        (raw / (file_name + (".gz" if index % 2 else ""))).write_bytes(b"x")
        assert bool(dataset_missing(name, tmp_path)) == (index < len(IDX_FILES) - 1)
    assert dataset_label(name, tmp_path) == name


def test_cifar10_is_available_from_any_of_its_forms(tmp_path):
    assert "cifar-10-python.tar.gz" in dataset_missing("cifar10", tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"x")
    assert dataset_missing("cifar10", tmp_path) == ""
    other = tmp_path / "other"
    (other / CIFAR_BINARY_DIR).mkdir(parents=True)
    for file_name in (*CIFAR_BINARY_TRAIN, CIFAR_BINARY_TEST):
        assert dataset_missing("cifar10", other) != ""
        (other / CIFAR_BINARY_DIR / file_name).write_bytes(b"x")
    assert dataset_missing("cifar10", other) == ""
