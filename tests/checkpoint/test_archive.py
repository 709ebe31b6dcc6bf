"""Checkpoint zips: a round trip, and uploads that could harm the server refused with a reason."""

import io
import stat
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch

from deeparch.checkpoint import archive
from deeparch.checkpoint.archive import MAX_RATIO, MAX_UNPACKED_BYTES, load_upload, pack, unpack
from deeparch.checkpoint.files import read_checkpoint
from deeparch.checkpoint.optimizer import optimizer_state
from deeparch.engine.manager import JobManager, TrainConfig
from deeparch.engine.optim import make_optimizer
from deeparch.errors import DeeparchError
from deeparch.models import create_model, get_arch, list_archs

# torchvision's transfer models (resnet18: 11 million parameters, 134 MB with Adam's moments) are
# larger than a browser upload may be (maxUploadSize 64 MB): their checkpoints load from the CLI
# (--resume, evaluate), and the Train page says so beside their download.
BROWSER_ARCHS = [arch for arch in list_archs() if get_arch(arch).family != "transfer"]

GB = 2**30
LIMIT = "150 MB"
PICKLED = (
    "it is a pickled PyTorch file, which deeparch never opens because unpickling runs any code "
    "stored in it; upload a .zip or a .safetensors checkpoint (the Train page's download gives "
    "a .zip)"
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A real checkpoint: weights, Adam's moments and a history."""
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=3))
    assert job.wait(60) and job.state == "finished", job.reason
    return job.save_checkpoint(tmp_path_factory.mktemp("saved"))


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "unpacked"
    path.mkdir()
    return path


@pytest.fixture
def server_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary folder load_upload works in, so a test can see what it leaves behind."""
    path = tmp_path / "server-tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def zipped(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as out:
        for name, data in entries.items():
            out.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def refusal(data: bytes, filename: str, folder: Path) -> str:
    with pytest.raises(DeeparchError) as refused:
        unpack(data, filename, folder)
    assert list(folder.iterdir()) == []  # a refused upload leaves nothing behind
    assert str(folder) not in str(refused.value)
    return str(refused.value)


# ---------------------------------------------------------------- the cap


def checkpoint_bytes(arch: str) -> int:
    """Bytes of tensors in a checkpoint of `arch` at its defaults: weights and Adam's state."""
    model, _ = create_model(arch)
    optimizer = make_optimizer("adam", model.parameters(), lr=1e-3)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # Adam makes its moments on the first step
    tensors = {**model.state_dict(), **optimizer_state({"model": optimizer})[0]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def test_the_cap_is_a_few_times_the_largest_checkpoint_at_defaults():
    sizes = {arch: checkpoint_bytes(arch) for arch in BROWSER_ARCHS}
    largest = max(sizes, key=sizes.get)
    # At the time of writing: cgan, 35.6 MB (11.9 million parameters, three floats each).
    assert 3 * sizes[largest] < MAX_UNPACKED_BYTES < 10 * sizes[largest], (largest, sizes[largest])


def test_the_estimate_matches_a_real_checkpoint(weights):
    tensors, _ = read_checkpoint(weights)
    model, _ = create_model("mlp", {"hidden_sizes": (8,)})
    parameters = sum(p.numel() for p in model.parameters())
    stored = sum(t.numel() * t.element_size() for t in tensors.values())
    assert stored == 3 * 4 * parameters + 4 * len(list(model.parameters()))  # + Adam's steps


# ---------------------------------------------------------------- round trips


def test_pack_unpack_read_gives_the_same_tensors_and_description(weights, folder):
    data = pack(weights)
    with zipfile.ZipFile(io.BytesIO(data)) as packed:
        assert packed.namelist() == ["mlp-mnist.json", "mlp-mnist.safetensors"]
    unpacked = unpack(data, "deeparch-mlp-job-1.zip", folder)
    assert unpacked.parent == folder
    expected_tensors, expected_meta = read_checkpoint(weights)
    tensors, meta = read_checkpoint(unpacked)
    assert meta == expected_meta
    assert tensors.keys() == expected_tensors.keys()
    for name, tensor in expected_tensors.items():
        assert torch.equal(tensors[name], tensor), name
    assert sorted(path.suffix for path in folder.iterdir()) == [".json", ".safetensors"]


def test_a_bare_safetensors_upload_is_accepted(weights, folder):
    unpacked = unpack(weights.read_bytes(), "my run.SAFETENSORS", folder)
    assert unpacked.read_bytes() == weights.read_bytes()
    assert list(folder.iterdir()) == [unpacked]


def test_load_upload_deletes_its_folder_after_loading(weights, server_tmp):
    seen = []

    def load(path: Path):
        seen.append(path)
        return read_checkpoint(path)

    tensors, meta = load_upload(pack(weights), "run.zip", load)
    assert meta["arch"] == "mlp" and tensors
    assert seen[0].parent.parent == server_tmp
    assert list(server_tmp.iterdir()) == []  # read into memory, then deleted


def test_load_upload_names_the_students_file_never_the_server_folder(server_tmp):
    def load(path: Path):
        return read_checkpoint(path)

    with pytest.raises(DeeparchError) as refused:
        load_upload(b"\x80\x04 a pickle", "weights.safetensors", load)
    message = str(refused.value)
    assert message.startswith(
        "Could not load weights.safetensors: weights.safetensors is a pickled PyTorch file"
    )
    assert "deeparch-upload-" not in message and "upload.safetensors" not in message
    assert list(server_tmp.iterdir()) == []

    def fails(path: Path):
        raise OSError(f"[Errno 5] Input/output error: '{path}'")

    with pytest.raises(DeeparchError) as failed:
        load_upload(zipped({"a.safetensors": b"x"}), "run.zip", fails)
    assert (
        str(failed.value) == "Could not load run.zip: [Errno 5] Input/output error: 'a.safetensors'"
    )
    assert list(server_tmp.iterdir()) == []


def test_a_name_longer_than_a_file_system_allows_is_no_problem(weights, server_tmp):
    long_name = "é" * 200 + ".safetensors"  # 412 bytes: more than the 255 a file name may have
    assert len(long_name.encode()) > 255
    _, meta = load_upload(weights.read_bytes(), long_name, read_checkpoint)
    assert meta["arch"] == "mlp"
    inside = zipped({"x" * 300 + ".safetensors": weights.read_bytes()})
    _, meta = load_upload(inside, "run.zip", read_checkpoint)
    assert meta["arch"] == "mlp"
    with pytest.raises(DeeparchError) as refused:
        load_upload(b"", "é" * 200 + ".pt", read_checkpoint)
    assert str(refused.value) == (f"Could not load {'é' * 60}…{'é' * 16}.pt: {PICKLED}")
    assert list(server_tmp.iterdir()) == []


# ---------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> bytes:
    """2 GiB of zeros in a zip of about 9 MB, streamed in: never 2 GiB in memory."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    chunk = bytes(2**24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        with out.open("weights.safetensors", "w", force_zip64=True) as entry:
            for _ in range(2 * GB // len(chunk)):
                entry.write(chunk)
    return path.read_bytes()


def test_a_zip_bomb_is_refused_at_once_and_nothing_is_written(zip_bomb, folder):
    assert len(zip_bomb) < 20_000_000  # it fits under the page's upload limit
    started = time.perf_counter()
    message = refusal(zip_bomb, "bomb.zip", folder)
    assert time.perf_counter() - started < 2.0
    assert message == f"Could not load bomb.zip: it expands to 2,147 MB (limit {LIMIT})"


def test_a_zip_that_shrinks_too_well_is_refused_below_the_cap(folder):
    zeros = zipped({"w.safetensors": bytes(50_000_000)})  # 50 MB of zeros in about 50 kB
    message = refusal(zeros, "zeros.zip", folder)
    assert message.startswith("Could not load zeros.zip: 'w.safetensors' in it expands ")
    assert message.endswith(f"times, to 50 MB; a checkpoint expands at most {MAX_RATIO} times")


def test_a_zip_that_understates_its_size_stops_at_the_stated_size(folder):
    data = bytearray(zipped({"w.safetensors": bytes(3_000_000)}))
    # Claim 1,000 bytes in the local header and the central directory: zipfile stops there and
    # the checksum of the part read is wrong.
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    message = refusal(bytes(data), "liar.zip", folder)
    assert message.startswith("Could not load liar.zip: 'w.safetensors' in it is damaged (")


@pytest.mark.parametrize(
    "name",
    [
        "../w.safetensors",
        "../../etc/w.json",
        "/tmp/w.safetensors",
        "run/w.safetensors",
        "..\\w.safetensors",
        ".w.safetensors",
        "notes.txt",
        "run/",
    ],
)
def test_names_with_paths_or_of_other_files_are_refused(name, folder):
    message = refusal(zipped({name: b"x", "w.safetensors": b"y"}), "evil.zip", folder)
    assert message.startswith(f"Could not load evil.zip: it holds {name!r}, ")


def test_a_symbolic_link_is_refused(folder):
    link = zipfile.ZipInfo("w.safetensors")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr(link, "/etc/passwd")
    message = refusal(buffer.getvalue(), "link.zip", folder)
    assert message == (
        "Could not load link.zip: it holds 'w.safetensors', a symbolic link; zip the checkpoint's "
        "files themselves"
    )


@pytest.mark.parametrize(
    "entries, problem",
    [
        (
            {"a.safetensors": b"1", "b.safetensors": b"2"},
            "it holds 2 .safetensors files (a.safetensors, b.safetensors); a checkpoint zip "
            "holds exactly one",
        ),
        ({"a.json": b"{}"}, "it holds no .safetensors file; a checkpoint zip holds exactly one"),
        (
            {"a.safetensors": b"1", "a.json": b"{}", "b.json": b"{}"},
            "it holds 2 .json files (a.json, b.json); at most one",
        ),
        (
            {"a.safetensors": b"1", "b.json": b"{}"},
            "its 'b.json' does not belong to 'a.safetensors'; the description must be named "
            "'a.json'",
        ),
    ],
)
def test_a_zip_holds_one_safetensors_and_its_own_json(entries, problem, folder):
    assert refusal(zipped(entries), "run.zip", folder) == f"Could not load run.zip: {problem}"


def test_what_is_no_zip_or_no_checkpoint_is_refused(folder):
    assert refusal(b"not a zip", "run.zip", folder) == (
        "Could not load run.zip: it is not a zip file, or it is damaged"
    )
    assert refusal(b"\x80\x04", "model.pt", folder) == f"Could not load model.pt: {PICKLED}"
    assert refusal(b"hello", "notes.txt", folder) == (
        "Could not load notes.txt: it is not a checkpoint; upload a .zip or a .safetensors "
        "checkpoint (the Train page's download gives a .zip)"
    )


def test_the_copy_stops_at_the_cap_whatever_the_zip_declared(folder):
    # The stream is counted as it is written, so a size the zip misstates cannot pass the cap.
    written = []
    with pytest.raises(DeeparchError) as refused:
        archive._copy_capped(io.BytesIO(bytes(3 * 2**20)), folder / "w", 2**20, "x.zip", written)
    assert (
        str(refused.value)
        == f"Could not load x.zip: it expands to more than {LIMIT} (limit {LIMIT})"
    )
    assert written == [folder / "w"] and (folder / "w").stat().st_size <= 2**20
