"""A drawing arrives from the browser as a PNG data URL: read with an upload's caps."""

import base64

import numpy as np
import pytest

from deeparch.explore.images import (
    MAX_DATA_URL_CHARS,
    PNG_DATA_URL_PREFIX,
    UploadError,
    decode_data_url,
    preprocess_image,
)
from tests.explore.pictures import png


def data_url(pixels: np.ndarray) -> str:
    return PNG_DATA_URL_PREFIX + base64.b64encode(png(pixels)).decode("ascii")


def test_a_drawn_stroke_becomes_a_centred_digit():
    canvas = np.zeros((224, 224, 3), dtype=np.uint8)
    canvas[0:120, 200:218] = 255  # a stroke along the top-right edge, as a corner start draws
    picture = decode_data_url(data_url(canvas))
    assert picture.size == (224, 224)
    digit = preprocess_image(picture, (1, 28, 28), invert="no")[0].numpy()
    rows, cols = np.nonzero(digit > 0.5)
    assert rows.max() - rows.min() + 1 == 20  # the longer side fitted to 20 of 28, like MNIST
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1  # centred
    assert abs((cols.min() + cols.max()) / 2 - 13.5) <= 1


@pytest.mark.parametrize(
    "url, message",
    [
        ("data:image/jpeg;base64,AAAA", "the drawing did not arrive as a PNG picture"),
        (12, "the drawing did not arrive as a PNG picture"),
        (PNG_DATA_URL_PREFIX + "***", "its base64 text is damaged"),
        (PNG_DATA_URL_PREFIX + "A" * MAX_DATA_URL_CHARS, "the drawing is too large"),
        (PNG_DATA_URL_PREFIX + base64.b64encode(b"not a png").decode(), "could not be read"),
    ],
)
def test_a_bad_drawing_is_refused_with_a_message(url, message):
    with pytest.raises(UploadError) as refused:
        decode_data_url(url)
    assert message in str(refused.value)
