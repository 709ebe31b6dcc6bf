"""The README's Security section states the limits the code enforces, with the code's figures."""

import re
from pathlib import Path

import pytest

from deeparch.checkpoint import archive, files
from deeparch.config import DEFAULT_MAX_ITEMS
from deeparch.data import files as data_files
from deeparch.explore import images
from deeparch.settings import ClassSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Security\n", 1)[1].split("\n## ", 1)[0]
SETTINGS = ClassSettings()
UPLOAD_MB = int(re.search(r"^maxUploadSize = (\d+)", (ROOT / ".streamlit/config.toml").read_text(),
                          flags=re.MULTILINE).group(1))  # fmt: skip


def figure(limit: str) -> str:
    row = re.search(rf"^\| {re.escape(limit)} \| ([^|]+) \|", SECTION, flags=re.MULTILINE)
    assert row is not None, f"the Security section has no row {limit!r}"
    return row.group(1).strip()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("upload size (Streamlit's `maxUploadSize`)", f"{UPLOAD_MB} MB"),
        ("what a checkpoint upload may expand to", f"{archive.MAX_UNPACKED_BYTES // 10**6} MB"),
        ("compression ratio of a zip entry over 1 MB", f"{archive.MAX_RATIO}x"),
        ("safetensors header, or a `.json` description", f"{files.MAX_HEADER_BYTES // 10**6} MB"),
        ("picture upload", f"{images.MAX_UPLOAD_BYTES // 2**20} MB"),
        ("an IDX file, also once decompressed", f"{data_files.MAX_IDX_BYTES // 10**6} MB"),
        ("entries in a list of layer widths", str(DEFAULT_MAX_ITEMS)),
        ("epochs one job trains (counting `max_steps`)", str(SETTINGS.max_epochs)),
        ("entries in a list of layer widths, per class", str(SETTINGS.max_depth)),
        ("widest entry in such a list", str(SETTINGS.max_width)),
        ("parameters of one job's model", f"{SETTINGS.max_parameters:,}"),
    ],
)
def test_each_limit_in_the_readme_is_the_codes(limit, expected):
    assert figure(limit) == expected


def test_the_picture_limit_is_the_codes():
    side, jpeg = images.MAX_UPLOAD_SIDE, images.MAX_UPLOAD_SIDE * images.JPEG_DRAFT_SCALE
    shown = figure("pixels decoded from a picture")
    assert shown.startswith(f"{side} x {side} (a JPEG up to {jpeg} x {jpeg}")


def test_the_section_says_what_is_never_done():
    for words in ("unpickled", "symbolic links", "nothing is followed out of the upload folder"):
        assert words in SECTION.replace("\n", " ")
