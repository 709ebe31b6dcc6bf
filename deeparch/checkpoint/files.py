"""Checkpoints as safetensors weights plus JSON, written atomically; nothing is ever unpickled.

<stem>.safetensors holds the model's tensors under their state_dict names and the optimizer's tensor
state under `optimizer/<name>/<param index>/<key>`; its header metadata holds the JSON description
(architecture, configs, dataset, metrics, versions), so the one file is complete on its own.
<stem>.json repeats that description for people and tools that read JSON.
Reading checks that the path is a plain file (a FIFO would block, a device never ends), the file's
bytes, the description's structure and every optimizer tensor (deeparch.checkpoint.optimizer), so
a cut-off or edited checkpoint is refused with one message that names the file and the problem.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

import deeparch
from deeparch.checkpoint.meta import check_description
from deeparch.checkpoint.optimizer import (
    OPTIMIZER_PREFIX,
    CheckpointMismatchError,
    check_optimizer_tensors,
)
from deeparch.errors import DeeparchError

SUFFIX = ".safetensors"
METADATA_KEY = "deeparch"
# A safetensors header is JSON of at most 100 MB (the format's own limit, which safe_open checks).
MAX_HEADER_BYTES = 100_000_000


def library_versions() -> dict[str, str]:
    return {
        "deeparch": deeparch.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights file, JSON file) for a path given as <stem>, <stem>.safetensors or <stem>.json."""
    if not str(path).strip():
        blank = "only spaces" if str(path) else "empty"
        raise DeeparchError(f"the checkpoint path is {blank}; give the path of a {SUFFIX} file")
    path = Path(path)
    if not path.name:  # "/" or ".": no stem to add the suffix to
        raise DeeparchError(
            f"{path} is a folder, not a checkpoint; give the path of a {SUFFIX} file"
        )
    if path.suffix == ".json":
        path = path.with_suffix(SUFFIX)
    elif path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX) if not path.suffix else path
    return path, path.with_suffix(".json")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(final: Path, write: Any) -> None:
    """Write to a temporary file beside `final`, fsync it, then rename it over `final`.

    A crash at any point leaves either the old file or the new one, never a torn mix.
    """
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        # Created here first, so a place that cannot be written fails with the OS's own reason.
        temporary.touch(exist_ok=False)
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        if temporary.exists():
            temporary.unlink()
    _fsync_dir(final.parent)


def _unwritable(path: Path, reason: str) -> DeeparchError:
    return DeeparchError(
        f"cannot write the checkpoint {path}: {reason}; choose another place to save it"
    )


def _make_folder(weights_path: Path) -> None:
    """Create the checkpoint's folder, or say why it cannot be (a file in the way, the OS)."""
    folder = weights_path.parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise _unwritable(weights_path, f"{ancestor} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(weights_path, error.strerror or str(error)) from error


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write tensors and their JSON description atomically; returns the .safetensors path.

    A place that cannot be written raises DeeparchError and leaves the previous checkpoint whole.
    """
    weights_path, json_path = checkpoint_paths(path)
    _make_folder(weights_path)
    meta = {**meta, "library_versions": library_versions()}
    meta_text = json.dumps(meta)
    # safetensors wants contiguous tensors that share no memory: copy each one.
    prepared = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    writes = (
        (
            weights_path,
            lambda tmp: safetensors.torch.save_file(prepared, str(tmp), {METADATA_KEY: meta_text}),
        ),
        (json_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n")),
    )
    for final, write in writes:
        try:
            _atomic_write(final, write)
        except OSError as error:
            raise _unwritable(final, error.strerror or str(error)) from error
        except safetensors.SafetensorError as error:  # a header over the format's 100 MB, say
            raise _unwritable(final, str(error)) from error
    return weights_path


def copy_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a checkpoint's two files to target (written atomically); returns the .safetensors
    path. For a run whose checkpoint is already on disk (the run store)."""
    sources, targets = checkpoint_paths(source), checkpoint_paths(target)
    _make_folder(targets[0])
    for source_file, final in zip(sources, targets, strict=True):
        try:
            _atomic_write(
                final, lambda tmp, source_file=source_file: shutil.copyfile(source_file, tmp)
            )
        except OSError as error:
            raise _unwritable(final, error.strerror or str(error)) from error
    return targets[0]


def _damaged(path: Path, problem: str) -> DeeparchError:
    return DeeparchError(f"{path} is damaged: {problem}; save or download it again")


def _parse_json(text: str | bytes, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        # Python's parser recurses once per level of nesting; no description nests beyond a few.
        raise _damaged(path, f"{what} is nested too deeply to be a deeparch description") from None
    except json.JSONDecodeError as error:
        problem = f"{what} is not valid JSON ({error.msg} at character {error.pos})"
        raise _damaged(path, problem) from None
    except ValueError as error:  # bytes that are not UTF-8
        raise _damaged(path, f"{what} is not valid JSON ({error})") from None


# What a path that is no plain file is, for the message (stat's file types).
FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _plain_file_problem(path: Path) -> str | None:
    """Why `path` (after links) is not a plain file to read, or None when it is one.

    Reading a FIFO blocks until someone writes to it, and a device such as /dev/urandom never
    ends: neither is ever opened.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    for test, kind in FILE_KINDS:
        if test(mode):
            return kind
    return "not a plain file"


def _check_plain_file(path: Path) -> None:
    problem = _plain_file_problem(path)
    if problem == "missing":
        raise DeeparchError(f"no checkpoint at {path}")
    if problem is not None:
        shown = f"{path} (a link to {path.resolve()})" if path.is_symlink() else str(path)
        raise DeeparchError(
            f"{shown} is {problem}, not a checkpoint file; give the path of a {SUFFIX} file"
        )


def _first_bytes(path: Path) -> tuple[bytes, int]:
    """(the first nine bytes, the size) of a file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            return handle.read(9), size
    except OSError as error:
        raise DeeparchError(f"cannot read {path}: {error.strerror or error}") from error


def _pickled(head: bytes, size: int) -> bool:
    """Whether a file's first bytes are a pickle (protocol 2 and later: 0x80 and the protocol) or
    torch.save's zip, and not a safetensors header that happens to start with the same byte.

    A safetensors file starts with its header's length (8 bytes, little-endian) and the header's
    "{": a header of 640 bytes (0x280) starts with 0x80 0x02, as a pickle of protocol 2 does.
    """
    length = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and 8 + length <= size:
        return False
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or (
        head[:4] == b"PK\x03\x04"
    )


def _foreign(path: Path, kind: str) -> DeeparchError:
    return DeeparchError(
        f"{path} is {kind}; deeparch loads only .safetensors checkpoints and never unpickles "
        "a file, because unpickling runs any code stored in it. Re-save the weights with "
        "safetensors.torch.save_file, or train with deeparch to get a checkpoint."
    )


# What safetensors reports (the texts of its errors since 0.6), as the problem a student reads.
# safetensors reports bytes appended after the last tensor as an incomplete file too; a file cut
# off on the way is by far the likelier cause.
SAFETENSORS_PROBLEMS = (
    ("invalid header length", "its header ends early (the file was cut off?)"),
    ("incomplete metadata", "its tensor data ends early (the file was cut off?)"),
    ("invalid JSON in header: ", "its header is not valid JSON ({detail})"),
    ("invalid UTF-8 in header: ", "its header is not UTF-8 text ({detail})"),
)
# The first 8 bytes, read as the header's length, exceed the format's 100 MB: another kind of file.
NOT_SAFETENSORS = "header too large"


def _unreadable(path: Path, error: safetensors.SafetensorError) -> DeeparchError:
    """The DeeparchError for a file safetensors refused to open, naming the file and the problem."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    message = message.removeprefix("Error while deserializing header: ")
    if message.startswith(NOT_SAFETENSORS):
        return _foreign(path, "not a safetensors file")
    for start, problem in SAFETENSORS_PROBLEMS:
        if message.startswith(start):
            return _damaged(path, problem.format(detail=message[len(start) :]))
    return _damaged(path, f"safetensors cannot read it ({message})")


def _read_metadata(path: Path) -> dict[str, str]:
    """The header metadata of a safetensors file, checked by safetensors itself; never unpickles.

    safe_open checks the header's length (at most the format's 100 MB), its JSON, the tensors'
    offsets and the file's size. Two checks stay here, because its errors cannot tell them from
    others: a pickle or a zip is named for what it is (safetensors sees only a header length that
    makes no sense), and a file too short to hold a header is given its size ("header too small").
    """
    head, size = _first_bytes(path)
    if _pickled(head, size):  # pickle protocol 2+; torch.save's zip since 1.6
        raise _foreign(path, "a pickled PyTorch file")
    if size < 9:  # 8 bytes of header length and at least the header's "{"
        length = "it is empty" if size == 0 else f"it is only {size} bytes long"
        raise _damaged(path, f"{length} (the file was cut off?)")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except safetensors.SafetensorError as error:
        raise _unreadable(path, error) from error


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, description) of a checkpoint; a pickle or a foreign file is rejected unread.

    A cut-off or edited file raises DeeparchError naming the file and what is wrong with it; the
    description returned has the structure `check_description` asks for.
    """
    # A foreign suffix (.pt, .pth, .bin) is kept, so its first bytes are checked and it is refused.
    weights_path, json_path = checkpoint_paths(path)
    _check_plain_file(weights_path)
    metadata = _read_metadata(weights_path)
    if isinstance(metadata.get(METADATA_KEY), str):
        source = weights_path
        meta = _parse_json(metadata[METADATA_KEY], source, "its deeparch metadata")
    elif _plain_file_problem(json_path) is None:
        source = json_path
        meta = _parse_json(_read_description(json_path), source, "its deeparch metadata")
    else:
        raise DeeparchError(
            f"{weights_path} holds tensors but no deeparch description (architecture, configs); "
            "it was not written by deeparch"
        )
    check_description(meta, source)
    try:
        tensors = safetensors.torch.load_file(str(weights_path))
    except (safetensors.SafetensorError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _damaged(weights_path, f"safetensors cannot read it ({reason})") from error
    check_optimizer_tensors(tensors, meta, weights_path)
    return tensors, meta


def _read_description(path: Path) -> bytes:
    """A .json description's bytes, refusing one larger than a safetensors header may be."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_HEADER_BYTES + 1)
    except OSError as error:
        raise DeeparchError(f"cannot read {path}: {error.strerror or error}") from error
    if len(data) > MAX_HEADER_BYTES:
        raise _damaged(path, f"it is over {MAX_HEADER_BYTES // 1_000_000} MB, not a description")
    return data


def split_tensors(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model state, optimizer tensors) from a checkpoint's tensors."""
    model_state = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    return model_state, optimizer_tensors


def load_model_state(
    model: nn.Module, state: dict[str, torch.Tensor], arch: str, assign: bool = False
) -> None:
    """Load weights into a model after checking every name, shape and dtype, explaining a
    mismatch (load_state_dict would cast bool, integer or complex weights without a word).
    `assign` puts the tensors themselves in the model (one with its weights on the meta device
    has nothing to copy into)."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:5])}")
        raise CheckpointMismatchError(
            f"the checkpoint's tensors do not match architecture {arch!r}: {'; '.join(detail)}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointMismatchError(
                f"tensor {name!r} has shape {tuple(state[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in architecture {arch!r} as configured; use the same "
                "architecture settings the checkpoint was trained with"
            )
        if state[name].dtype != tensor.dtype:
            saved, wanted = (str(t.dtype).removeprefix("torch.") for t in (state[name], tensor))
            raise CheckpointMismatchError(
                f"tensor {name!r} is {saved} in the checkpoint but {wanted} in architecture "
                f"{arch!r}; deeparch writes every tensor in its model's own dtype, so the file "
                "was edited or written by another program"
            )
    model.load_state_dict(state, assign=assign)
