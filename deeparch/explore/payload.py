"""What a browser component receives: a JSON header and raw arrays in one bytes object.

A pack is b"DAP1", the header's length (uint32, little-endian), the header as UTF-8 JSON and the
arrays' bytes one after the other. The header's "arrays" entry gives each array's dtype, shape and
byte offset (from the end of the header). Packs may follow one another: a component gets the few
bytes of a session's own state in front of the shared pack computed once for the whole server, so
the shared part stays byte-for-byte the same from one rerun to the next (Streamlit then sends a
reference to the copy the browser already has instead of the megabytes again).
pages/_components/common.js reads the same format.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from deeparch.errors import ConfigError

MAGIC = b"DAP1"
# The dtypes a browser reads as typed arrays without conversion (little-endian).
DTYPES = {"uint8": np.uint8, "int32": np.int32, "float32": np.float32}


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One pack: the header (JSON-serialisable, without an "arrays" key) and named arrays."""
    if "arrays" in header:
        raise ConfigError("header", "arrays", "a header without an 'arrays' key (pack adds it)")
    layout, chunks, offset = {}, [], 0
    for name, array in (arrays or {}).items():
        array = np.asarray(array)
        dtype = array.dtype.name
        if dtype not in DTYPES:
            raise ConfigError(name, dtype, "an array of " + ", ".join(DTYPES))
        data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        layout[name] = {"dtype": dtype, "shape": list(array.shape), "offset": offset}
        chunks.append(data)
        offset += len(data)
    text = json.dumps({**header, "arrays": layout}, separators=(",", ":")).encode("utf-8")
    return MAGIC + struct.pack("<I", len(text)) + text + b"".join(chunks)


def unpack(blob: bytes) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Every pack in a blob, in order: (header, arrays) each (the inverse of pack)."""
    packs, start = [], 0
    view = memoryview(blob)
    while start < len(blob):
        if bytes(view[start : start + 4]) != MAGIC:
            raise ConfigError(
                "payload", bytes(view[start : start + 4]), f"a pack starting {MAGIC!r}"
            )
        (length,) = struct.unpack_from("<I", blob, start + 4)
        header = json.loads(bytes(view[start + 8 : start + 8 + length]).decode("utf-8"))
        base, end = start + 8 + length, start + 8 + length
        arrays = {}
        for name, entry in header.pop("arrays").items():
            dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            first = base + entry["offset"]
            arrays[name] = np.frombuffer(blob, dtype, count, first).reshape(entry["shape"])
            end = max(end, first + count * dtype.itemsize)
        packs.append((header, arrays))
        start = end
    return packs


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] as (N, H, W, C) uint8, what a canvas paints."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
