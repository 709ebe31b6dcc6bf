"""A checkpoint as one zip to download, and an uploaded one (.zip or .safetensors) unpacked safely.

An upload comes from anyone who can reach the server, so the unpacker trusts nothing in it: entries
are read as streams under a cap on the bytes they expand to and on their compression ratio (a zip
bomb is refused before anything is written), only one plain `<name>.safetensors` and its
`<name>.json` are accepted (no folders, `../`, absolute paths or links), and the files are written
under names of deeparch's own, so no name from the upload ever reaches the file system. Every
refusal is a DeeparchError that names the student's file, never a path on the server.
"""

from __future__ import annotations

import io
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from deeparch.checkpoint.files import SUFFIX, checkpoint_paths
from deeparch.errors import DeeparchError

MB = 1_000_000
# About four times the largest checkpoint the registry makes at its defaults: cgan's weights with
# their Adam state, 35.6 MB (tests/checkpoint/test_archive.py computes it for every architecture).
MAX_UNPACKED_BYTES = 150 * MB
# Deflate shrinks float32 weights about 1.1 times and a checkpoint's JSON about 4 times; a file of
# zeros shrinks about 1,000 times. Small files may shrink more without harm.
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1 * MB
CHUNK_BYTES = 1 << 20
DESCRIPTION_SUFFIX = ".json"
UNPACKED_STEM = "upload"  # the stem the unpacked files are written under
SHOWN_NAME_CHARS = 80  # a longer name is shortened in messages

Loaded = TypeVar("Loaded")


def pack(weights_path: str | Path) -> bytes:
    """A checkpoint's .json and .safetensors as one deflated zip, named as they are on disk."""
    weights, description = checkpoint_paths(weights_path)
    if not weights.is_file():
        raise DeeparchError(f"no checkpoint at {weights}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in (description, weights):
            if path.is_file():
                archive.write(path, path.name)
    return buffer.getvalue()


def pack_job(job: Any) -> bytes:
    """A job's checkpoint as the zip the Train page's download gives (`<arch>-<id end>` inside);
    `job` is any handle with save_checkpoint and snapshot (the engine's JobHandle)."""
    return pack_saved(job.save_checkpoint, packed_name(job.snapshot()["arch"], job.id))


def packed_name(arch: str, job_id: str) -> str:
    """The name of a job's files inside its zip."""
    return f"{arch}-{job_id[-6:]}"


def pack_saved(save: Callable[[Path], Path], name: str) -> bytes:
    """The zip of the checkpoint that save(<a temporary folder>/name) writes; returns its bytes."""
    with tempfile.TemporaryDirectory() as folder:
        return pack(save(Path(folder) / name))


def unpack(data: bytes, filename: str, folder: Path) -> Path:
    """Write an uploaded .zip or .safetensors into `folder`; returns the weights' path there.

    A refused upload leaves nothing in `folder`.
    """
    return _unpack(data, filename, Path(folder))[0]


def load_upload(data: bytes, filename: str, load: Callable[[Path], Loaded]) -> Loaded:
    """Unpack an upload into a temporary folder, call `load` on its weights, delete the folder.

    `load` must read everything it needs (the manager's load_checkpoint reads the checkpoint into
    memory): the folder is gone when this returns, whatever happened. Any failure is a
    DeeparchError that names the student's file, never the temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="deeparch-upload-") as temporary:
        folder = Path(temporary)
        weights, shown_names = _unpack(data, filename, folder)
        try:
            return load(weights)
        except (DeeparchError, OSError, ValueError, RuntimeError) as error:
            # RuntimeError too: torch's own, for a combination no check foresaw; a student reads
            # a sentence, never a traceback.
            message = str(error)
            for path, shown in shown_names.items():
                message = message.replace(str(path), shown)
            message = message.replace(f"{folder}/", "").replace(str(folder), "the upload")
            raise DeeparchError(f"Could not load {shown_name(filename)}: {message}") from error


def shown_name(filename: str) -> str:
    """An uploaded file's name as messages show it: on one line, a long one shortened."""
    name = " ".join(str(filename).split())
    if len(name) <= SHOWN_NAME_CHARS:
        return name
    return f"{name[: SHOWN_NAME_CHARS - 20]}…{name[-19:]}"


def _refused(filename: str, problem: str) -> DeeparchError:
    return DeeparchError(f"Could not load {shown_name(filename)}: {problem}")


def _unpack(data: bytes, filename: str, folder: Path) -> tuple[Path, dict[Path, str]]:
    """(weights path, {each file written: the name the student knows it by})."""
    weights = folder / f"{UNPACKED_STEM}{SUFFIX}"
    description = weights.with_suffix(DESCRIPTION_SUFFIX)
    written: list[Path] = []
    try:
        if filename.lower().endswith(".zip"):
            shown_names = _unpack_zip(data, filename, weights, description, written)
        elif filename.lower().endswith(SUFFIX):
            if len(data) > MAX_UNPACKED_BYTES:
                raise _refused(
                    filename, f"it is {_mb(len(data))} (limit {_mb(MAX_UNPACKED_BYTES)})"
                )
            _copy_capped(io.BytesIO(data), weights, MAX_UNPACKED_BYTES, filename, written)
            shown_names = {weights: shown_name(filename)}
        else:
            raise _refused(filename, _wrong_type(filename))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return weights, shown_names


# Suffixes of pickled PyTorch files, which deeparch never opens.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def _wrong_type(filename: str) -> str:
    """What to upload instead of a file of another type."""
    allowed = f"upload a .zip or a {SUFFIX} checkpoint (the Train page's download gives a .zip)"
    if filename.lower().endswith(PICKLE_SUFFIXES):
        return (
            f"it is a pickled PyTorch file, which deeparch never opens because unpickling runs "
            f"any code stored in it; {allowed}"
        )
    return f"it is not a checkpoint; {allowed}"


def _unpack_zip(
    data: bytes, filename: str, weights: Path, description: Path, written: list[Path]
) -> dict[Path, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise _refused(filename, "it is not a zip file, or it is damaged") from None
    with archive:
        weights_entry, description_entry = _checked_entries(archive.infolist(), filename)
        entries = {weights: weights_entry}
        if description_entry is not None:
            entries[description] = description_entry
        total = sum(entry.file_size for entry in entries.values())
        if total > MAX_UNPACKED_BYTES:
            raise _refused(
                filename, f"it expands to {_mb(total)} (limit {_mb(MAX_UNPACKED_BYTES)})"
            )
        for entry in entries.values():
            ratio = entry.file_size / max(entry.compress_size, 1)
            if entry.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
                problem = (
                    f"{shown_name(entry.filename)!r} in it expands {ratio:,.0f} times, to "
                    f"{_mb(entry.file_size)}; a checkpoint expands at most {MAX_RATIO} times"
                )
                raise _refused(filename, problem)
        budget = MAX_UNPACKED_BYTES
        for target, entry in entries.items():
            try:
                with archive.open(entry) as source:
                    budget -= _copy_capped(source, target, budget, filename, written)
            # NotImplementedError is zipfile's answer to a compression method it lacks (an entry
            # packed with a method Python cannot read), not a stub: the upload is refused.
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                problem = f"{shown_name(entry.filename)!r} in it is damaged ({error})"
                raise _refused(filename, problem) from None
    return {target: shown_name(entry.filename) for target, entry in entries.items()}


def _checked_entries(
    entries: list[zipfile.ZipInfo], filename: str
) -> tuple[zipfile.ZipInfo, zipfile.ZipInfo | None]:
    """The zip's one .safetensors entry and its .json (if any); refuses anything else in it."""
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            raise _refused(filename, f"it holds {shown_name(entry.filename)!r}, {problem}")
    weights = [entry for entry in entries if entry.filename.endswith(SUFFIX)]
    descriptions = [entry for entry in entries if entry.filename.endswith(DESCRIPTION_SUFFIX)]
    if len(weights) != 1:
        names = ", ".join(shown_name(entry.filename) for entry in weights)
        found = f"{len(weights)} {SUFFIX} files ({names})" if weights else f"no {SUFFIX} file"
        raise _refused(filename, f"it holds {found}; a checkpoint zip holds exactly one")
    if len(descriptions) > 1:
        names = ", ".join(shown_name(entry.filename) for entry in descriptions)
        raise _refused(filename, f"it holds {len(descriptions)} .json files ({names}); at most one")
    description = descriptions[0] if descriptions else None
    expected = weights[0].filename.removesuffix(SUFFIX) + DESCRIPTION_SUFFIX
    if description is not None and description.filename != expected:
        problem = (
            f"its {shown_name(description.filename)!r} does not belong to "
            f"{shown_name(weights[0].filename)!r}; the description must be named {expected!r}"
        )
        raise _refused(filename, problem)
    return weights[0], description


def _entry_problem(entry: zipfile.ZipInfo) -> str | None:
    """Why a zip entry cannot be part of a checkpoint, or None."""
    name = entry.filename
    if "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        return "a path or a hidden name; zip the checkpoint's files themselves, without folders"
    if stat.S_ISLNK(entry.external_attr >> 16):
        return "a symbolic link; zip the checkpoint's files themselves"
    if not name.endswith((SUFFIX, DESCRIPTION_SUFFIX)):
        return f"which is not part of a checkpoint (one {SUFFIX} file and its .json)"
    if entry.flag_bits & 0x1:
        return "which is encrypted; upload the zip deeparch gave you, as it is"
    return None


def _copy_capped(
    source: BinaryIO, target: Path, budget: int, filename: str, written: list[Path]
) -> int:
    """Copy a stream into a new file, in chunks, refusing it once it passes `budget` bytes."""
    copied = 0
    try:
        with open(target, "xb") as out:  # "x": never follows or replaces what is there
            written.append(target)
            while chunk := source.read(CHUNK_BYTES):
                copied += len(chunk)
                if copied > budget:
                    limit = _mb(MAX_UNPACKED_BYTES)
                    raise _refused(filename, f"it expands to more than {limit} (limit {limit})")
                out.write(chunk)
    except OSError as error:
        problem = f"the server could not store it ({error.strerror or type(error).__name__})"
        raise _refused(filename, problem) from None
    return copied


def _mb(size: int) -> str:
    return f"{size / MB:,.1f} MB" if size < 10 * MB else f"{size / MB:,.0f} MB"
