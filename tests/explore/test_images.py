"""Uploaded pictures: sizes read from the header before decoding, inflating chunks, orientation and
transparency, so a crafted file costs the server nothing and a real photo looks as it should."""

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from deeparch.explore.images import (
    MAX_UPLOAD_SIDE,
    UploadError,
    decode_upload,
    header_size,
    preprocess_image,
)

ROOT = Path(__file__).resolve().parents[2]
TOO_LARGE = "crop or shrink it first (a digit needs no more than a few hundred pixels)"


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_size(width: int, height: int) -> bytes:
    """A PNG whose header says width x height grey pixels, with only its first rows in it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(4096, 4096), (20000, 20000), (2049, 2048)])
def test_a_png_too_large_is_named_with_its_size_before_it_is_decoded(width, height):
    data = png_of_size(width, height)
    assert header_size(data) == (width, height)
    with pytest.raises(UploadError) as refused:
        decode_upload(data, "big.png")
    assert str(refused.value) == (
        f"big.png is too large: {width} x {height} pixels, at most 2048 x 2048; {TOO_LARGE}"
    )


def test_a_16_kb_png_of_4096_squared_costs_no_memory():
    # It took 811 MB and 3 s to prepare before; now it is refused from its header. Measured in a
    # process of its own, whose peak memory is its own.
    script = (
        "import io, resource, numpy as np; from PIL import Image\n"
        "from deeparch.explore.images import decode_upload\n"
        "buffer = io.BytesIO(); Image.fromarray(np.zeros((4096, 4096), np.uint8)).save(buffer, "
        "'PNG'); data = buffer.getvalue(); assert len(data) < 20_000\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decode_upload(data, 'x.png')\nexcept ValueError as error:\n"
        "    print(error)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    message, grown_kb = ran.stdout.splitlines()
    assert "too large: 4096 x 4096 pixels" in message
    assert int(grown_kb) < 10_000  # encoding it cost 16 MB; checking it adds nothing


def test_the_largest_png_allowed_is_decoded_and_shrunk():
    side = MAX_UPLOAD_SIDE
    image = decode_upload(encoded(Image.new("L", (side, side), 255)), "ok.png")
    assert image.size == (512, 512)


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size():
    photo = encoded(Image.new("RGB", (8000, 6000), (250, 250, 250)), "JPEG")
    assert header_size(photo) == (8000, 6000)
    assert decode_upload(photo, "phone.jpg").size == (512, 384)
    # a JPEG's frame header with a size too large even at 1/8: SOF0, length, precision, h, w
    frame = b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 20000, 20000) + b"\x01" * 10
    with pytest.raises(UploadError, match="too large: 20000 x 20000 pixels, at most 16384 x 16384"):
        decode_upload(frame, "scan.jpg")


def test_a_text_chunk_that_inflates_past_pils_limit_is_refused_in_words():
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * 20_000_000, zip=True)  # 20 MB of text in a 20 KB file
    data = encoded(Image.new("L", (8, 8)), pnginfo=info)
    assert len(data) < 50_000
    with pytest.raises(UploadError) as refused:
        decode_upload(data, "notes.png")
    assert str(refused.value) == (
        "notes.png could not be read as a picture: a text or colour-profile chunk in it expands "
        "too far; save it as PNG or JPEG and upload it again"
    )


def test_a_colour_profile_that_inflates_past_pils_limit_is_refused_in_words():
    plain = encoded(Image.new("L", (8, 8)))
    profile = chunk(b"iCCP", b"profile\0\0" + zlib.compress(b"\0" * 20_000_000))
    data = plain[:33] + profile + plain[33:]  # after the signature and IHDR
    with pytest.raises(UploadError, match="a text or colour-profile chunk in it expands too far"):
        decode_upload(data, "profile.png")


def test_exif_orientation_turns_a_photo_upright():
    # A phone stores the sensor's rows and an orientation tag: 6 means "turn 90 degrees clockwise".
    sideways = np.zeros((40, 80), dtype=np.uint8)
    sideways[:, :20] = 255  # a bright band on the left of the stored picture
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.fromarray(sideways), "JPEG", exif=exif, quality=95)
    upright = np.asarray(decode_upload(data, "photo.jpg").convert("L"))
    assert upright.shape == (80, 40)  # turned: taller than wide
    assert upright[:20].mean() > 200 and upright[30:].mean() < 30  # the band is now on top


def test_a_dark_digit_on_transparency_stays_visible_for_a_colour_model():
    # Drawing apps save black strokes on a transparent canvas whose hidden colour is black too:
    # turned into RGB without compositing, the digit vanished into a black picture.
    drawing = np.zeros((60, 60, 4), dtype=np.uint8)
    drawing[10:50, 26:34] = (0, 0, 0, 255)
    picture = decode_upload(encoded(Image.fromarray(drawing)), "digit.png")
    colour = preprocess_image(picture, (3, 32, 32)).numpy()
    assert colour[:, 16, 2] == pytest.approx([1.0, 1.0, 1.0])  # the background is white
    assert colour[:, 16, 16].max() < 0.2  # the stroke stays dark
    light = drawing.copy()
    light[10:50, 26:34] = (255, 255, 255, 255)
    colour = preprocess_image(decode_upload(encoded(Image.fromarray(light))), (3, 32, 32)).numpy()
    assert colour[:, 16, 2] == pytest.approx([0.0, 0.0, 0.0]) and colour[:, 16, 16].min() > 0.8


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\0" * 13),  # zero width and height
        png_of_size(8, 8)[:40],  # cut off in the image data
        b"\xff\xd8\xff\xc0\x00\x11\x08",  # a JPEG cut off in its frame header
    ],
    ids=["zero size", "cut off", "jpeg cut off"],
)
def test_damaged_pictures_are_refused_in_words(data):
    with pytest.raises(UploadError) as refused:
        decode_upload(data, "broken.png")
    assert str(refused.value).startswith("broken.png could not be read as a picture: ")
