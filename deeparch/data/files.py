"""Full image sets from a data folder: MNIST, Fashion-MNIST, KMNIST (IDX files, read and checked
here), CIFAR-10; torchvision downloads them when online."""

from __future__ import annotations

import gzip
import logging
import math
import os
import socket
import stat
import struct
import threading
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from deeparch.data.sources import Splits
from deeparch.errors import DatasetUnavailableError

logger = logging.getLogger(__name__)

# The four uncompressed IDX files torchvision reads from <root>/<ClassName>/raw/.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_IMAGE_SIZE = (28, 28)
IDX_CLASSES = 10  # MNIST, Fashion-MNIST and KMNIST have ten classes each
# MNIST's largest file, the training images, is 47,040,016 bytes; anything far larger is not one.
MAX_IDX_BYTES = 100_000_000
CIFAR_PYTHON_DIR = "cifar-10-batches-py"
CIFAR_PYTHON_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR_PYTHON_ARCHIVE = "cifar-10-python.tar.gz"
# The binary version of CIFAR-10: fixed-size records, read with numpy (no pickle involved).
CIFAR_BINARY_DIR = "cifar-10-batches-bin"
CIFAR_BINARY_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_BINARY_TEST = "test_batch.bin"
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes

# Fail fast offline: a DNS lookup or connect that takes longer than this counts as "no network".
NETWORK_PROBE_SECONDS = 3.0


def _host_reachable(url: str, timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the url's host (or the proxy) opens within `timeout`."""
    parsed = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy:
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    reached = threading.Event()

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reached.set()
        except OSError:
            pass

    # A thread, because a DNS lookup ignores socket timeouts and can hang for much longer.
    probe = threading.Thread(target=connect, daemon=True, name="deeparch-network-probe")
    probe.start()
    probe.join(timeout)
    return reached.is_set()


def _try_download(dataset_cls: type, root: Path, urls: list[str]) -> str:
    """Let torchvision download into root; return "" on success, else why it failed."""
    if not any(_host_reachable(url) for url in urls):
        hosts = ", ".join(sorted({urllib.parse.urlparse(u).hostname or u for u in urls}))
        return f"the download failed: no network connection to {hosts}"
    try:
        logger.info("downloading %s into %s", dataset_cls.__name__, root)
        dataset_cls(str(root), train=True, download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        return f"the download failed: {error}"
    return ""


def _torchvision_class(class_name: str) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, class_name)


def _cap(split: Splits, limit: int) -> Splits:
    # The files come in random order, so the first `limit` examples keep the classes balanced.
    if limit <= 0:
        return split
    return Splits(
        split.x_train[:limit], split.y_train[:limit], split.x_val[:limit], split.y_val[:limit]
    )


# ---------------------------------------------------------------------------------------------
# The MNIST family (IDX files)


def _unavailable(name: str, path: Path, problem: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"{name}: {path} {problem}; put the original file there again (or delete it to download "
        "it once more)"
    )


def _gunzip(name: str, packed: Path, target: Path) -> None:
    """Decompress packed into target through a temporary file, so a gzip that is cut off or not a
    gzip at all leaves no half-written target behind to break the next run."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    logger.info("decompressing %s", packed)
    try:
        written = 0
        with gzip.open(packed, "rb") as source, open(temporary, "wb") as destination:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > MAX_IDX_BYTES:
                    raise _unavailable(
                        name, packed, f"expands to more than {MAX_IDX_BYTES // 10**6} MB"
                    )
                destination.write(chunk)
        os.replace(temporary, target)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        kind = "is cut off" if isinstance(error, EOFError) else "is not a gzip file"
        raise _unavailable(name, packed, f"{kind} ({error})") from None
    except OSError as error:
        raise _unavailable(name, packed, f"cannot be decompressed ({error})") from None
    finally:
        temporary.unlink(missing_ok=True)


def _gunzip_missing(name: str, raw_dir: Path) -> None:
    """Decompress <file>.gz for any IDX file that is only there compressed (as downloaded)."""
    for file_name in IDX_FILES:
        target, packed = raw_dir / file_name, raw_dir / f"{file_name}.gz"
        if not target.exists() and packed.is_file():
            _gunzip(name, packed, target)


def read_idx(name: str, path: Path, dimensions: int) -> np.ndarray:
    """An IDX file of unsigned bytes (LeCun's MNIST format) as a numpy array, checked.

    The header is two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions,
    then each dimension as a big-endian 32-bit number; the bytes follow, exactly as many as the
    dimensions multiply to.
    """
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO would block, a device never end
            raise _unavailable(name, path, "is not a plain file (a FIFO, a device or a folder)")
        size = status.st_size
        if size > MAX_IDX_BYTES:
            raise _unavailable(name, path, f"is {size:,} bytes, more than an IDX file of MNIST's")
        data = path.read_bytes()
    except OSError as error:
        raise _unavailable(name, path, f"cannot be read ({error.strerror or error})") from None
    header = 4 + 4 * dimensions
    expected_magic = 0x0800 + dimensions
    if len(data) < header:
        raise _unavailable(name, path, f"is only {len(data)} bytes long, shorter than its header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise _unavailable(
            name,
            path,
            f"starts with the magic number 0x{magic:08x}, not 0x{expected_magic:08x} (an IDX file "
            f"of {dimensions}-dimensional unsigned bytes)",
        )
    shape = struct.unpack(f">{dimensions}I", data[4:header])
    count = math.prod(shape)
    if len(data) - header != count:
        raise _unavailable(
            name,
            path,
            f"holds {len(data) - header:,} bytes after its header, but the header announces "
            f"{' x '.join(str(n) for n in shape)} = {count:,} (the file was cut off?)",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(
    name: str, images_path: Path, labels_path: Path, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,)) from an IDX pair, checked
    against each other: as many labels as images, 28x28 images, labels from 0 to classes - 1."""
    images = read_idx(name, images_path, 3)
    labels = read_idx(name, labels_path, 1)
    if images.shape[1:] != IDX_IMAGE_SIZE:
        height, width = images.shape[1:]
        raise _unavailable(
            name, images_path, f"holds {height}x{width} images, but {name} images are 28x28"
        )
    if len(labels) != len(images):
        raise _unavailable(
            name,
            labels_path,
            f"holds {len(labels):,} labels for the {len(images):,} images in {images_path.name}",
        )
    if len(labels) and int(labels.max()) >= classes:
        raise _unavailable(
            name,
            labels_path,
            f"holds the label {int(labels.max())}, but {name}'s labels are 0 to {classes - 1}",
        )
    pixels = images.astype(np.float32) / 255.0
    return pixels.reshape(-1, 1, *IDX_IMAGE_SIZE), labels.astype(np.int64)  # (N,28,28)->(N,1,28,28)


def check_data_root(name: str, root: Path) -> None:
    """The data folder must be a folder: DEEPARCH_DATA_DIR=/etc/passwd names a file."""
    if root.exists() and not root.is_dir():
        raise DatasetUnavailableError(
            f"{name} is not available: the data folder {root} is a file, not a folder; set "
            "DEEPARCH_DATA_DIR to a folder (or unset it to use the repository's data/)"
        )


def load_mnist_family(name: str, class_name: str, root: Path, limit: int, download: bool) -> Splits:
    """torchvision's MNIST / FashionMNIST / KMNIST: its train/test split as train/validation.

    Images float32 (N, 1, 28, 28) in [0, 1]. Reads <root>/<class_name>/raw/ (with read_idx, which
    checks every count and size); downloads through torchvision only when files are missing,
    `download` is true and the mirror answers.
    """
    check_data_root(name, root)
    raw_dir = root / class_name / "raw"
    _gunzip_missing(name, raw_dir)
    missing = [f for f in IDX_FILES if not (raw_dir / f).exists()]
    why = "downloading is off (download=False)"
    if missing and download:
        dataset_cls = _torchvision_class(class_name)
        urls = [mirror + dataset_cls.resources[0][0] for mirror in dataset_cls.mirrors]
        why = _try_download(dataset_cls, root, urls)
        missing = [f for f in IDX_FILES if not (raw_dir / f).exists()]
    if missing:
        still_missing = (
            "" if len(missing) == len(IDX_FILES) else f" (missing: {', '.join(missing)})"
        )
        raise DatasetUnavailableError(
            f"{name} is not available: put the uncompressed IDX files {', '.join(IDX_FILES)} "
            f"(or the same names ending in .gz) in the folder {raw_dir}{still_missing}; "
            f"{why or 'the download left files missing'}. "
            "Set DEEPARCH_DATA_DIR to use another data folder."
        )
    train_images, train_labels, val_images, val_labels = (raw_dir / f for f in IDX_FILES)
    x_train, y_train = read_idx_pair(name, train_images, train_labels, IDX_CLASSES)
    x_val, y_val = read_idx_pair(name, val_images, val_labels, IDX_CLASSES)
    return _cap(Splits(x_train, y_train, x_val, y_val), limit)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _read_cifar_binary(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    records = []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR_RECORD_BYTES:
            raise DatasetUnavailableError(
                f"cifar10: {path} is not a CIFAR-10 binary batch "
                f"({raw.size} bytes is not a multiple of {CIFAR_RECORD_BYTES})"
            )
        records.append(raw.reshape(-1, CIFAR_RECORD_BYTES))
    table = np.concatenate(records)
    labels = table[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetUnavailableError(f"cifar10: label {labels.max()} above 9 in {paths}")
    images = table[:, 1:].reshape(-1, 3, 32, 32)  # (N, 3072) -> (N, C, H, W), planes R, G, B
    return images.astype(np.float32) / 255.0, labels


def _cifar_from_torchvision(root: Path) -> Splits:
    # torchvision checks each batch file's md5 against the official archive before unpickling it.
    cifar_cls = _torchvision_class("CIFAR10")
    arrays = []
    for train in (True, False):
        try:
            loaded = cifar_cls(str(root), train=train, download=False)
        except Exception as error:
            raise DatasetUnavailableError(
                f"cifar10: could not read {root / CIFAR_PYTHON_DIR}: {error}"
            ) from error
        images = np.ascontiguousarray(loaded.data.transpose(0, 3, 1, 2))  # (N,H,W,C) -> (N,C,H,W)
        arrays.append(images.astype(np.float32) / 255.0)
        arrays.append(np.asarray(loaded.targets, dtype=np.int64))
    return Splits(*arrays)


def load_cifar10(root: Path, limit: int, download: bool) -> Splits:
    """CIFAR-10 float32 (N, 3, 32, 32) in [0, 1]: 50,000 train and 10,000 validation images.

    Looks in order for <root>/cifar-10-batches-bin (read with numpy), <root>/cifar-10-batches-py
    (read by torchvision), <root>/cifar-10-python.tar.gz (extracted by torchvision), then downloads.
    """
    check_data_root("cifar10", root)
    binary_dir = root / CIFAR_BINARY_DIR
    binary_train = [binary_dir / f for f in CIFAR_BINARY_TRAIN]
    if all(p.is_file() for p in binary_train + [binary_dir / CIFAR_BINARY_TEST]):
        x_train, y_train = _read_cifar_binary(binary_train)
        x_val, y_val = _read_cifar_binary([binary_dir / CIFAR_BINARY_TEST])
        return _cap(Splits(x_train, y_train, x_val, y_val), limit)

    python_dir = root / CIFAR_PYTHON_DIR
    why = "downloading is off (download=False)"
    have_python = all((python_dir / f).is_file() for f in CIFAR_PYTHON_FILES)
    if not have_python and (root / CIFAR_PYTHON_ARCHIVE).is_file():
        # torchvision verifies the archive's md5 and extracts it without touching the network.
        why = _extract_cifar_archive(root)
    elif not have_python and download:
        cifar_cls = _torchvision_class("CIFAR10")
        why = _try_download(cifar_cls, root, [cifar_cls.url])
    if all((python_dir / f).is_file() for f in CIFAR_PYTHON_FILES):
        return _cap(_cifar_from_torchvision(root), limit)
    raise DatasetUnavailableError(
        f"cifar10 is not available: put the folder {CIFAR_PYTHON_DIR} "
        f"({', '.join(CIFAR_PYTHON_FILES)}, "
        f"from {CIFAR_PYTHON_ARCHIVE}) or the archive {CIFAR_PYTHON_ARCHIVE} itself in {root}, "
        f"or the folder {CIFAR_BINARY_DIR} ({', '.join(CIFAR_BINARY_TRAIN)}, {CIFAR_BINARY_TEST}, "
        f"from cifar-10-binary.tar.gz) there; {why or 'the download left files missing'}. "
        "Set DEEPARCH_DATA_DIR to use another data folder."
    )


def _extract_cifar_archive(root: Path) -> str:
    from torchvision.datasets.utils import check_integrity

    cifar_cls = _torchvision_class("CIFAR10")
    archive = root / CIFAR_PYTHON_ARCHIVE
    # Checked here because torchvision would otherwise try to download over a mismatching archive.
    if not check_integrity(str(archive), cifar_cls.tgz_md5):
        return f"{archive} does not match the official archive's md5 (incomplete or another file)"
    try:
        cifar_cls(str(root), train=True, download=True)
    except Exception as error:
        return f"could not extract {root / CIFAR_PYTHON_ARCHIVE}: {error}"
    return ""


def mnist_family_missing(class_name: str, root: Path) -> str:
    """'' when <root>/<class_name>/raw holds the four IDX files (or their .gz), else where to
    put which files: what a dataset picker says before anything is loaded."""
    raw_dir = root / class_name / "raw"
    missing = [
        f for f in IDX_FILES if not ((raw_dir / f).is_file() or (raw_dir / f"{f}.gz").is_file())
    ]
    if not missing:
        return ""
    return f"put {', '.join(missing)} (or the same names ending in .gz) in {raw_dir}"


def cifar10_missing(root: Path) -> str:
    """'' when one of the forms load_cifar10 reads is in `root`, else where to put what."""
    binary_dir, python_dir = root / CIFAR_BINARY_DIR, root / CIFAR_PYTHON_DIR
    binary = [binary_dir / f for f in (*CIFAR_BINARY_TRAIN, CIFAR_BINARY_TEST)]
    if all(p.is_file() for p in binary) or (root / CIFAR_PYTHON_ARCHIVE).is_file():
        return ""
    if all((python_dir / f).is_file() for f in CIFAR_PYTHON_FILES):
        return ""
    return (
        f"put {CIFAR_PYTHON_ARCHIVE}, its folder {CIFAR_PYTHON_DIR} or the folder "
        f"{CIFAR_BINARY_DIR} (from cifar-10-binary.tar.gz) in {root}"
    )
